"""Golden files for GgufWriterParityTest (written into <out>/gguf_writer/).

quants.safetensors
    for each case NAME: NAME (float32 input, rows of 64) and NAME.q8_0 / NAME.q4_0 (uint8: the bytes
    gguf.quants.quantize writes for it, the reference kd's Q8_0 and Q4_0 encoders must equal).
Cases: standard normal values at three scales, blocks that are all zero or all -0, blocks whose
largest magnitude occurs twice with both signs, values that land exactly on rounding midpoints
(x / d = k + 1/2, where Q8_0 rounds away from zero and Q4_0 rounds up), and tiny and large scales
(subnormal and large fp16 d).
"""
import pathlib

import numpy as np
import torch
from gguf import GGMLQuantizationType as Q
from gguf.quants import quantize
from safetensors.torch import save_file


def _cases():
    rng = np.random.default_rng(17)
    cases = {f"normal_{i}": rng.standard_normal((6, 64)).astype(np.float32) * np.float32(s)
             for i, s in enumerate((0.02, 1.0, 300.0))}
    zeros = np.zeros((2, 64), np.float32)
    zeros[1] = -0.0
    cases["zeros"] = zeros
    ties = rng.uniform(-1, 1, (2, 64)).astype(np.float32)
    ties[0, 3], ties[0, 40] = 2.0, -2.0   # the positive one comes first
    ties[1, 5], ties[1, 33] = -2.0, 2.0   # the negative one comes first
    cases["ties"] = ties
    # Q8_0: amax 127 gives d = 1, so x = k + 1/2 is a midpoint; Q4_0: m = -8 gives d = 1 the same way.
    mid = np.zeros((2, 64), np.float32)
    mid[0, :32] = np.arange(-15.5, 16.5, 1.0)[:32]
    mid[0, 0] = 127.0
    mid[0, 32:] = -np.arange(0.5, 32.5, 1.0)
    mid[0, 63] = -127.0
    mid[1, :32] = np.linspace(-7.5, 7.5, 32)
    mid[1, 10] = -8.0
    mid[1, 32:] = np.arange(-7.5, 8.5, 0.5)
    mid[1, 40] = -8.0
    cases["midpoints"] = mid.astype(np.float32)
    cases["tiny"] = rng.standard_normal((2, 64)).astype(np.float32) * np.float32(1e-6)
    cases["large"] = rng.standard_normal((2, 64)).astype(np.float32) * np.float32(1e5)
    return cases


def make(args):
    out = pathlib.Path(args.out) / "gguf_writer"
    out.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, x in _cases().items():
        tensors[name] = torch.from_numpy(x)
        for qtype, suffix in ((Q.Q8_0, "q8_0"), (Q.Q4_0, "q4_0")):
            tensors[f"{name}.{suffix}"] = torch.from_numpy(np.ascontiguousarray(quantize(x, qtype)).view(np.uint8))
    save_file(tensors, str(out / "quants.safetensors"))
    print(f"[golden] gguf_writer: {len(tensors) // 3} quantization cases")
