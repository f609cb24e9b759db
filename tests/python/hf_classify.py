"""Loads a classification folder with Hugging Face transformers (as a user would) and writes the
logits for the given sentences, so kd's checkpoint compatibility can be checked from C++."""
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402


def main():
    folder, sentences_path, out_path, max_length = sys.argv[1:5]
    sentences = [line.rstrip("\n") for line in open(sentences_path, encoding="utf-8")]
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    enc = tok(sentences, padding=True, truncation=True, max_length=int(max_length), return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc).logits
    json.dump({"input_ids": enc["input_ids"].tolist(), "logits": logits.tolist(),
               "id2label": model.config.id2label}, open(out_path, "w"))


if __name__ == "__main__":
    main()
