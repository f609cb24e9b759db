"""Golden files for GgufParityTest (written into <out>/gguf/).

Every reference comes from the `gguf` package (llama.cpp's own Python reader/writer and quantizers).

synthetic.gguf, synthetic_a64.gguf
    small files written by gguf.GGUFWriter: a metadata value of every type (arrays of integers, floats,
    strings and arrays included) and tensors of every type kd decodes (F32, F16, BF16, Q8_0, Q4_0, Q4_1),
    quantized by gguf.quants; the second file uses general.alignment = 64.
synthetic.json, synthetic_a64.json
    what GGUFReader sees: version, alignment, data offset, metadata {key: {type, value}}, tensors.
synthetic_expected.safetensors, synthetic_a64_expected.safetensors
    each tensor dequantized by gguf.quants.dequantize (float32, PyTorch order).
model.json
    the real SmolLM2 file: header numbers, scalar metadata, array lengths and first elements, every
    tensor's type, shape, offset and float64 sum of its dequantized values.
model_expected.safetensors
    exact dequantized values of a few tensors of each type in the real file (rows of the embedding).
"""
import json
import pathlib

import numpy as np
import torch
from gguf import GGMLQuantizationType as Q
from gguf import GGUFReader, GGUFWriter
from gguf.quants import dequantize, quantize
from safetensors.torch import save_file

SYNTH_TYPES = {"t_f32": (Q.F32, (3, 64)), "t_f16": (Q.F16, (2, 64)), "t_bf16": (Q.BF16, (4, 32)),
               "t_q8_0": (Q.Q8_0, (3, 64)), "t_q4_0": (Q.Q4_0, (5, 64)), "t_q4_1": (Q.Q4_1, (2, 96)),
               "t_vec": (Q.F32, (7,)), "t_3d": (Q.Q8_0, (2, 3, 32))}


def _describe(reader):
    meta = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        types = [t.name for t in field.types]
        meta[key] = {"types": types, "value": field.contents()}
    tensors = [{"name": t.name, "type": t.tensor_type.name, "shape": [int(d) for d in reversed(t.shape)],
                "offset": int(t.data_offset - reader.data_offset)} for t in reader.tensors]
    align = reader.fields.get("general.alignment")
    return {"version": int(reader.fields["GGUF.version"].contents()),
            "alignment": int(align.contents()) if align else 32,
            "data_offset": int(reader.data_offset), "metadata": meta, "tensors": tensors}


def _dequantized(t):
    return torch.from_numpy(np.ascontiguousarray(
        dequantize(t.data, t.tensor_type).reshape([int(d) for d in reversed(t.shape)]).astype(np.float32)))


def _synthetic(out, name, alignment):
    rng = np.random.default_rng(2024 + alignment)
    path = out / f"{name}.gguf"
    w = GGUFWriter(str(path), "kdtest")
    if alignment != 32:
        w.add_custom_alignment(alignment)
    w.add_uint8("kd.u8", 250)
    w.add_int8("kd.i8", -100)
    w.add_uint16("kd.u16", 65000)
    w.add_int16("kd.i16", -32000)
    w.add_uint32("kd.u32", 4000000000)
    w.add_int32("kd.i32", -2000000000)
    w.add_float32("kd.f32", 0.1)
    w.add_uint64("kd.u64", 2 ** 62 + 5)
    w.add_int64("kd.i64", -(2 ** 62) - 7)
    w.add_float64("kd.f64", 1.0 / 3.0)
    w.add_bool("kd.yes", True)
    w.add_bool("kd.no", False)
    w.add_string("kd.str", "héllo wörld ✓ 😀")
    w.add_string("kd.empty", "")
    w.add_array("kd.strs", ["a", "Ġb c", "日本", "", "<|im_start|>"])
    w.add_array("kd.ints", [1, -2, 3, 2 ** 31 - 1])
    w.add_array("kd.floats", [0.5, -1.25, 3.0e10])
    w.add_array("kd.nested", [[1, 2], [3]])
    for tname, (qtype, shape) in SYNTH_TYPES.items():
        data = rng.standard_normal(shape).astype(np.float32) * rng.uniform(0.01, 3.0)
        if qtype == Q.F32:
            w.add_tensor(tname, data)
        elif qtype == Q.F16:
            w.add_tensor(tname, data.astype(np.float16))
        else:
            q = quantize(data, qtype)
            w.add_tensor(tname, q, raw_shape=q.shape, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    reader = GGUFReader(str(path))
    with open(out / f"{name}.json", "w", encoding="utf-8") as f:
        json.dump(_describe(reader), f, ensure_ascii=False, indent=1)
    save_file({t.name: _dequantized(t) for t in reader.tensors}, str(out / f"{name}_expected.safetensors"))


def _model(out, gguf_path):
    reader = GGUFReader(gguf_path)
    desc = _describe(reader)
    for key, m in desc["metadata"].items():
        v = m["value"]
        if isinstance(v, list):
            m["value"] = None
            m["count"] = len(v)
            m["head"] = v[:8]
            m["tail"] = v[-8:]
    sums = {t.name: float(_dequantized(t).double().sum()) for t in reader.tensors}
    for t in desc["tensors"]:
        t["sum"] = sums[t["name"]]
    with open(out / "model.json", "w", encoding="utf-8") as f:
        json.dump(desc, f, ensure_ascii=False, indent=1)

    by_name = {t.name: t for t in reader.tensors}
    emb = _dequantized(by_name["token_embd.weight"])
    picks = {
        "token_embd.weight[:16]": emb[:16].clone(),
        "token_embd.weight[-16:]": emb[-16:].clone(),
        "token_embd.weight[1000:1016]": emb[1000:1016].clone(),
    }
    for name in ["blk.0.attn_k.weight", "blk.0.attn_q.weight", "blk.29.ffn_down.weight", "blk.0.attn_norm.weight",
                 "output_norm.weight"]:
        picks[name] = _dequantized(by_name[name])
    save_file(picks, str(out / "model_expected.safetensors"))


def make(args):
    out = pathlib.Path(args.out) / "gguf"
    out.mkdir(parents=True, exist_ok=True)
    _synthetic(out, "synthetic", 32)
    _synthetic(out, "synthetic_a64", 64)
    _model(out, args.gguf)
    print(f"[golden] gguf: synthetic files and the listing of {args.gguf}")
