"""Reads a GGUF file written by kd with the `gguf` package (llama.cpp's own Python reader).

Usage: check_gguf_file.py FILE EXPECT_JSON EXPECT_SAFETENSORS. GgufWriterParityTest writes EXPECT_JSON
({"alignment", "keys": [in file order], "metadata": {key: {"types": [...], "value": ...}}, "tensors": [{name, type, shape,
offset}]}) and EXPECT_SAFETENSORS (every tensor as kd decodes it, float32) from kd's own reading of
FILE; GGUFReader must see the same keys in the same order with the same types and values, the same
tensor table, and gguf.quants.dequantize the same values bit for bit. Exits non-zero, naming the first
difference, otherwise.
"""
import json
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize
from safetensors.numpy import load_file


def main():
    path, expect_json, expect_tensors = sys.argv[1:4]
    with open(expect_json, encoding="utf-8") as f:
        expect = json.load(f)
    reader = GGUFReader(path)
    errors = []
    keys = [k for k in reader.fields if not k.startswith("GGUF.")]
    if keys != expect["keys"]:
        errors.append(f"keys {keys} != {expect['keys']}")
    for key, want in expect["metadata"].items():
        field = reader.fields.get(key)
        if field is None:
            continue
        types = [t.name for t in field.types]
        # An empty array has no element to tell its type by; GGUFReader then lists ARRAY alone.
        if types != want["types"][:len(types)] or not types:
            errors.append(f"{key}: types {types} != {want['types']}")
        got = field.contents()
        if got != want["value"]:
            errors.append(f"{key}: value {str(got)[:200]} != {str(want['value'])[:200]}")
    if reader.alignment != expect["alignment"]:
        errors.append(f"alignment {reader.alignment} != {expect['alignment']}")
    values = load_file(expect_tensors)
    names = [t.name for t in reader.tensors]
    if names != [t["name"] for t in expect["tensors"]]:
        errors.append(f"tensor names {names} differ")
    for t, want in zip(reader.tensors, expect["tensors"]):
        shape = [int(d) for d in reversed(t.shape)]
        if (t.tensor_type.name, shape, int(t.data_offset - reader.data_offset)) != (want["type"], want["shape"], want["offset"]):
            errors.append(f"{t.name}: {t.tensor_type.name} {shape} at {t.data_offset - reader.data_offset} != {want}")
            continue
        got = dequantize(t.data, t.tensor_type).reshape(shape).astype(np.float32)
        if not np.array_equal(got.view(np.uint32), values[t.name].view(np.uint32)):
            errors.append(f"{t.name}: dequantized values differ from kd's")
    if errors:
        sys.exit(f"{path}: " + "; ".join(errors[:10]))
    print(f"{path}: {len(keys)} keys and {len(names)} tensors read as kd reads them")


if __name__ == "__main__":
    main()
