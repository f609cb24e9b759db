"""Golden files for BertParityTest (written into <out>/bert/).

golden.safetensors     one padded batch of real sentences run through Hugging Face's BertModel (fp32,
                       eval, eager attention): input_ids, token_type_ids, attention_mask (int64),
                       hidden.0 .. hidden.N, attn.1 .. attn.N, last_hidden, pooled. The texts are in
                       the file's metadata ("texts", a JSON list; pairs as [a, b]).
cls_model/             BertForSequenceClassification (3 labels) on the same encoder, with a seeded
                       head, saved with save_pretrained (config.json + model.safetensors).
cls_golden.safetensors its logits (B, 3) for the same batch.

The batch mixes SST-2 dev sentences (every 18th row plus the shortest and the longest), TREC-6
questions, a few longer AG News texts and some sentence pairs, so padding, segment ids and lengths
up to ~80 tokens are all exercised. The choice is deterministic; the attention tensors grow with
B * T^2, which is why the batch stays under 80 tokens.
"""
import csv
import json
import pathlib

import torch
from safetensors.torch import save_file
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

MAX_LENGTH = 128


def _read_tsv(path):
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [r[0] for r in rows[1:]]


def _read_ag_news(path):
    with open(path, encoding="utf-8", newline="") as f:
        return [r[0] for r in csv.reader(f)]


def _texts(data, tok):
    data = pathlib.Path(data)
    sst2 = _read_tsv(data / "sst2" / "dev.tsv")
    trec = _read_tsv(data / "trec6" / "test.tsv")
    ag = _read_ag_news(data / "ag_news" / "test.csv")

    def n_tokens(t):
        return len(tok(t)["input_ids"])

    picked = sst2[::18][:48]
    lengths = [n_tokens(s) for s in sst2]
    picked.append(sst2[lengths.index(min(lengths))])
    picked.append(sst2[lengths.index(max(lengths))])
    picked += trec[::80][:6]
    picked += [t for t in ag if 64 <= n_tokens(t) <= 80][:4]
    pairs = [(trec[1 + 7 * i], sst2[5 + 11 * i]) for i in range(4)]
    return picked + pairs


def make(args):
    out = pathlib.Path(args.out) / "bert"
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    tok = AutoTokenizer.from_pretrained(args.model)
    texts = _texts(args.data, tok)
    # A list mixing strings and (a, b) tuples tokenizes as one batch of singles and pairs.
    enc = tok(texts, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
    batch = {k: enc[k].to(torch.int64).contiguous() for k in ("input_ids", "token_type_ids", "attention_mask")}

    model = AutoModel.from_pretrained(args.model, attn_implementation="eager", dtype=torch.float32).eval()
    with torch.no_grad():
        o = model(**batch, output_hidden_states=True, output_attentions=True)
    tensors = dict(batch)
    for i, h in enumerate(o.hidden_states):
        tensors[f"hidden.{i}"] = h.contiguous()
    for i, a in enumerate(o.attentions):
        tensors[f"attn.{i + 1}"] = a.contiguous()
    tensors["last_hidden"] = o.last_hidden_state.clone()  # same storage as hidden.N
    if o.pooler_output is not None:
        tensors["pooled"] = o.pooler_output.contiguous()
    meta = {"texts": json.dumps([list(t) if isinstance(t, tuple) else t for t in texts]),
            "model": str(args.model), "max_length": str(MAX_LENGTH)}
    save_file(tensors, str(out / "golden.safetensors"), metadata=meta)

    # Classifier: the same encoder with a seeded 3-way head. The head is re-drawn with a larger std
    # than Hugging Face's 0.02 so that the logits are O(1) and a wrong head would show.
    cls = AutoModelForSequenceClassification.from_pretrained(
        args.model, num_labels=3, attn_implementation="eager", dtype=torch.float32).eval()
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        cls.classifier.weight.copy_(torch.randn(cls.classifier.weight.shape, generator=g) * 0.5)
        cls.classifier.bias.copy_(torch.randn(cls.classifier.bias.shape, generator=g) * 0.1)
    cls.save_pretrained(str(out / "cls_model"), safe_serialization=True)
    with torch.no_grad():
        logits = cls(**batch).logits
    save_file({"logits": logits.contiguous(), **batch}, str(out / "cls_golden.safetensors"))
    print(f"[golden] bert: batch {tuple(batch['input_ids'].shape)}, "
          f"{len(o.hidden_states)} hidden states, pooled={'pooled' in tensors}")
