"""Golden files for SafeTensorsParityTest (written into <out>/safetensors/).

mixed.safetensors          written by the python `safetensors` package: every dtype kd reads, with
                           edge values (inf, nan, -0, subnormals, extremes), a scalar and an empty tensor.
mixed_expected.safetensors the same tensors as torch converts them: floats to float32, rest unchanged.
mixed.json                 the header of mixed.safetensors as python sees it (offset order, metadata).
model.json                 listing of the real checkpoint: names in offset order, dtypes, shapes,
                           float64 sums, and exact values of a few tensors and rows.
"""
import json
import pathlib
import struct

import torch
from safetensors import safe_open
from safetensors.torch import save_file

MODEL_FILE = "model.safetensors"


def _header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))


def _listing(path):
    header = _header(path)
    meta = header.pop("__metadata__", {})
    entries = sorted(header.items(), key=lambda kv: (kv[1]["data_offsets"][0], kv[1]["data_offsets"][1]))
    return meta, [{"name": k, "dtype": v["dtype"], "shape": v["shape"], "data_offsets": v["data_offsets"]}
                  for k, v in entries]


def _mixed_tensors():
    g = torch.Generator().manual_seed(1234)
    f32 = torch.randn(3, 5, generator=g)
    f32.view(-1)[:7] = torch.tensor([float("inf"), float("-inf"), float("nan"), -0.0, 1e-45,
                                     torch.finfo(torch.float32).max, torch.finfo(torch.float32).tiny])
    f16 = (torch.randn(4, 3, generator=g) * 100).half()
    f16.view(-1)[:6] = torch.tensor([65504.0, 6e-8, float("inf"), float("nan"), -0.0, -65504.0]).half()
    bf16 = (torch.randn(2, 7, generator=g) * 1e30).bfloat16()
    bf16.view(-1)[:5] = torch.tensor([float("-inf"), 3.0e38, 9.2e-41, float("nan"), -0.0]).bfloat16()
    f64 = torch.randn(2, 3, generator=g, dtype=torch.float64)
    f64.view(-1)[:3] = torch.tensor([1e300, 1e-310, 0.1], dtype=torch.float64)  # rounding / overflow to F32
    i64 = torch.tensor([[-(2**63), 2**63 - 1, 0], [1, -1, 123456789012345]], dtype=torch.int64)
    return {
        "f32": f32,
        "f16": f16,
        "bf16": bf16,
        "f64": f64,
        "i64": i64,
        "i32": torch.tensor([-(2**31), 2**31 - 1, 7], dtype=torch.int32),
        "i16": torch.tensor([-32768, 32767, 5], dtype=torch.int16),
        "i8": torch.tensor([-128, 127, 0, -1], dtype=torch.int8),
        "u8": torch.tensor([0, 255, 128], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True, True]),
        "scalar_f16": torch.tensor(1.5, dtype=torch.float16),
        "empty_bf16": torch.zeros(0, 4, dtype=torch.bfloat16),
        "layer.0.weight": torch.randn(8, 16, generator=g).bfloat16(),
    }


def _tensor_values(t):
    return t.reshape(-1).double().tolist() if t.is_floating_point() else t.reshape(-1).tolist()


def _model_listing(model_file):
    meta, entries = _listing(model_file)
    out = {"metadata": meta, "tensors": entries, "sums": {}, "values": {}, "rows": []}
    with safe_open(model_file, framework="pt") as f:
        for e in entries:
            t = f.get_tensor(e["name"])
            out["sums"][e["name"]] = float(t.double().sum())
        names = [e["name"] for e in entries]
        # Small tensors in full, plus single rows of large ones at the start, middle and end of the file.
        for name in ("embeddings.LayerNorm.weight", "embeddings.position_ids", "pooler.dense.bias"):
            if name in names:
                out["values"][name] = _tensor_values(f.get_tensor(name))
        for name, row in (("embeddings.word_embeddings.weight", 101), ("embeddings.word_embeddings.weight", 30521),
                          (names[0], 0), (names[-1], -1)):
            if name in names:
                t = f.get_tensor(name)
                if t.dim() >= 2:
                    r = row % t.shape[0]
                    out["rows"].append({"name": name, "row": r, "values": _tensor_values(t[r])})
    return out


def make(args):
    out = pathlib.Path(args.out) / "safetensors"
    out.mkdir(parents=True, exist_ok=True)

    tensors = _mixed_tensors()
    meta = {"source": "kd-golden", "note": "ünïcödé ✓", "format": "pt"}
    save_file(tensors, str(out / "mixed.safetensors"), metadata=meta)
    expected = {k: (v.float() if v.is_floating_point() else v) for k, v in tensors.items()}
    save_file(expected, str(out / "mixed_expected.safetensors"))
    m, entries = _listing(out / "mixed.safetensors")
    (out / "mixed.json").write_text(json.dumps({"metadata": m, "tensors": entries}, ensure_ascii=False, indent=1))

    model_file = pathlib.Path(args.model) / MODEL_FILE
    (out / "model.json").write_text(json.dumps(_model_listing(model_file)))
    print(f"[golden] safetensors: {len(tensors)} mixed tensors, listing of {model_file}", flush=True)
