"""Golden files for Int8ParityTest (written into <out>/int8/): PyTorch's own dynamic int8 kernels, called the
way torch.ao.nn.quantized.dynamic calls them, on weights quantized by kd's rule (kd/io/int8_rows.h: symmetric
int8, one scale per output row, scale = max|row| / 127, 1 for a zero row).

linear.safetensors   weight (N, K), bias (N), x (B, T, K), y = quantized::linear_dynamic(x, packed,
                     reduce_range=True), as torch.ao.nn.quantized.dynamic.Linear.forward.
lstm.safetensors     a 2-layer bidirectional LSTM's weights under nn.LSTM's names, x (B, T, E); y, h, c from
                     torch.quantized_lstm over x (batch-first); lengths (B) and y_packed, h_packed from the
                     packed-sequence form over the rows cut to their lengths (data order, sorted by length).
"""
import pathlib

import torch
from safetensors.torch import save_file
from torch.nn.utils.rnn import pack_padded_sequence


def kd_rows(w):
    s = w.abs().amax(1) / 127.0
    s = torch.where(s > 0, s, torch.ones_like(s))
    for _ in range(4):  # the fixed point of s -> (127 s) / 127, as kd takes it
        nxt = (s * 127.0) / 127.0
        if torch.equal(nxt, s):
            break
        s = nxt
    q = torch.round(w / s.unsqueeze(1)).clamp(-127, 127).to(torch.int8)
    return torch._make_per_channel_quantized_tensor(q, s.double(), torch.zeros_like(s, dtype=torch.long), 0)


def pack(w, b):
    return torch.ops.quantized.linear_prepack(kd_rows(w), b)


def make(args):
    out = pathlib.Path(args.out) / "int8"
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(31)
    w, b = torch.randn(20, 48) * 0.3, torch.randn(20) * 0.1
    x = torch.randn(3, 7, 48) * 2 + 0.3
    y = torch.ops.quantized.linear_dynamic(x, pack(w, b), reduce_range=True)
    save_file({"weight": w, "bias": b, "x": x, "y": y.contiguous()}, str(out / "linear.safetensors"))

    E, H, L = 24, 16, 2
    lstm = torch.nn.LSTM(E, H, num_layers=L, bidirectional=True, batch_first=True)
    p = {k: v.detach().clone() for k, v in lstm.named_parameters()}
    cells = []
    for layer in range(L):
        for d in ("", "_reverse"):
            s = f"_l{layer}{d}"
            wi, wh, bi, bh = p["weight_ih" + s], p["weight_hh" + s], p["bias_ih" + s], p["bias_hh" + s]
            cells.append(torch.ops.quantized.make_quantized_cell_params_dynamic(pack(wi, bi), pack(wh, bh), bi, bh, True))
    x = torch.randn(4, 9, E)
    hx = [torch.zeros(2 * L, 4, H), torch.zeros(2 * L, 4, H)]
    y, h, c = torch.quantized_lstm(x, hx, cells, True, L, 0.0, False, True, True, dtype=torch.qint8, use_dynamic=True)
    lengths = torch.tensor([9, 4, 7, 3])
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    yp, hp, _ = torch.quantized_lstm(packed.data, packed.batch_sizes, hx, cells, True, L, 0.0, False, True,
                                     dtype=torch.qint8, use_dynamic=True)
    tensors = {f"lstm.{k}": v.contiguous() for k, v in p.items()}
    tensors.update({"x": x, "y": y.contiguous(), "h": h.contiguous(), "c": c.contiguous(), "lengths": lengths,
                    "y_packed": yp.contiguous(), "h_packed": hp.contiguous()})
    save_file(tensors, str(out / "lstm.safetensors"))
