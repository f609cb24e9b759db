"""Golden files for StudentParityTest (written into <out>/students/).

The student architectures of kd (src/models/bilstm.cpp, src/models/text_cnn.cpp) rebuilt in PyTorch
from their description, seeded, and run on real SST-2 dev sentences:

batch.safetensors      input_ids, attention_mask (int64, BertTokenizerFast of args.model, padded to the
                       longest row) and logits.<name> (B, C) for every model below; the texts are in the
                       metadata ("texts", a JSON list).
<name>.safetensors     the model's weights under kd's parameter names (embedding.weight,
                       projection.weight, lstm.weight_ih_l0[_reverse], ..., hidden.*, convs.<i>.*,
                       classifier.*); metadata "type" (bilstm | textcnn) and "options" (kd's JSON options).

Sizes are tiny (the vocabulary is the real one, since the ids are real) so the files stay small. The
batch holds the shortest dev sentences (shorter than the largest convolution kernel, so the TextCNN's
short-row rule is exercised) and sentences of every length up to the longest of a spread sample.
"""
import csv
import json
import pathlib

import torch
from safetensors.torch import save_file
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from transformers import BertTokenizerFast

NUM_CLASSES = 2


class RefBiLstm(nn.Module):
    def __init__(self, o):
        super().__init__()
        self.o = o
        table = o["projection"] or o["embedding_dim"]
        self.embedding = nn.Embedding(o["vocab_size"], table, padding_idx=o["padding_idx"])
        if o["projection"]:
            self.projection = nn.Linear(o["projection"], o["embedding_dim"], bias=False)
        self.lstm = nn.LSTM(o["embedding_dim"], o["hidden"], num_layers=o["layers"], bidirectional=True,
                            batch_first=True)
        self.hidden = nn.Linear(2 * o["hidden"], o["hidden"])
        self.classifier = nn.Linear(o["hidden"], o["num_classes"])

    def forward(self, ids, mask):
        x = self.embedding(ids)
        if self.o["projection"]:
            x = self.projection(x)
        lengths = mask.sum(1)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, (h_n, _) = self.lstm(packed)
        if self.o["pooling"] == "last":
            pooled = torch.cat([h_n[-2], h_n[-1]], dim=1)
        else:
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
            valid = mask.bool().unsqueeze(2)
            if self.o["pooling"] == "max":
                pooled = out.masked_fill(~valid, float("-inf")).max(dim=1).values
            else:
                pooled = (out * valid).sum(1) / lengths.unsqueeze(1)
        return self.classifier(torch.relu(self.hidden(pooled)))


class RefTextCnn(nn.Module):
    def __init__(self, o):
        super().__init__()
        self.o = o
        table = o["projection"] or o["embedding_dim"]
        self.embedding = nn.Embedding(o["vocab_size"], table, padding_idx=o["padding_idx"])
        if o["projection"]:
            self.projection = nn.Linear(o["projection"], o["embedding_dim"], bias=False)
        self.convs = nn.ModuleList(nn.Conv1d(o["embedding_dim"], o["filters"], k) for k in o["kernel_sizes"])
        self.classifier = nn.Linear(len(o["kernel_sizes"]) * o["filters"], o["num_classes"])

    def forward(self, ids, mask):
        x = self.embedding(ids)
        if self.o["projection"]:
            x = self.projection(x)
        x = (x * mask.unsqueeze(2).float()).transpose(1, 2)  # (B, E, T)
        kmax = max(self.o["kernel_sizes"])
        if x.shape[2] < kmax:
            x = nn.functional.pad(x, (0, kmax - x.shape[2]))
        lengths = mask.sum(1)
        feats = []
        for k, conv in zip(self.o["kernel_sizes"], self.convs):
            h = torch.relu(conv(x))  # (B, F, W)
            # per row, windows fully inside the row; at least the first one
            n = (lengths - k + 1).clamp(min=1)
            rows = [h[b, :, : int(n[b])].max(dim=1).values for b in range(h.shape[0])]
            feats.append(torch.stack(rows))
        return self.classifier(torch.cat(feats, dim=1))


def _models(vocab, pad):
    base = {"vocab_size": vocab, "num_classes": NUM_CLASSES, "padding_idx": pad, "dropout": 0.0}
    return {
        "bilstm_max": ("bilstm", dict(base, embedding_dim=16, hidden=12, layers=1, pooling="max", projection=0)),
        "bilstm_mean": ("bilstm", dict(base, embedding_dim=16, hidden=12, layers=2, pooling="mean", projection=0)),
        "bilstm_last": ("bilstm", dict(base, embedding_dim=16, hidden=12, layers=2, pooling="last", projection=24)),
        "textcnn": ("textcnn", dict(base, embedding_dim=16, kernel_sizes=[3, 4, 5], filters=8, projection=0)),
        "textcnn_proj": ("textcnn", dict(base, embedding_dim=12, kernel_sizes=[2, 7], filters=6, projection=20)),
    }


def _texts(data):
    with open(pathlib.Path(data) / "sst2" / "dev.tsv", encoding="utf-8", newline="") as f:
        rows = [r[0] for r in list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]]
    shortest = sorted(rows, key=len)[:4]
    spread = rows[::70][:12]
    return shortest + spread


def make(args):
    out = pathlib.Path(args.out) / "students"
    out.mkdir(parents=True, exist_ok=True)
    tok = BertTokenizerFast.from_pretrained(args.model)
    texts = _texts(args.data)
    enc = tok(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    ids = enc["input_ids"].to(torch.int64).contiguous()
    mask = enc["attention_mask"].to(torch.int64).contiguous()
    batch = {"input_ids": ids, "attention_mask": mask}
    for i, (name, (kind, o)) in enumerate(_models(tok.vocab_size, tok.pad_token_id).items()):
        torch.manual_seed(100 + i)
        model = (RefBiLstm(o) if kind == "bilstm" else RefTextCnn(o)).eval()
        with torch.no_grad():  # larger head weights so the logits are O(1) and a wrong layer shows
            model.classifier.weight.mul_(4.0 if kind == "textcnn" else 8.0)
            if kind == "bilstm":
                model.hidden.weight.mul_(3.0)
            batch["logits." + name] = model(ids, mask).contiguous()
        weights = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        save_file(weights, str(out / f"{name}.safetensors"), metadata={"type": kind, "options": json.dumps(o)})
    lengths = mask.sum(1).tolist()
    save_file(batch, str(out / "batch.safetensors"), metadata={"texts": json.dumps(texts)})
    print(f"[golden] students: batch {tuple(ids.shape)}, lengths {min(lengths)}..{max(lengths)}, "
          f"{len(_models(0, 0))} models")
