"""Golden files for TokenizerParityTest (written into <out>/tokenizer/).

Every reference value comes from Hugging Face's fast tokenizer (the Rust `tokenizers` crate) loaded
from the real checkpoint; the C++ side only reads these files, so it needs no CSV parser.

sst2_dev.jsonl, trec6_test.jsonl, ag_news_test.jsonl, hard_cases.jsonl
    one {"text", "ids"} per line: every sentence of the set, ids with special tokens, no truncation.
pairs.jsonl
    {"a", "b" (or null), "max_length" (0 = none), "ids", "type_ids"}: pairs and truncation.
random_mix.jsonl
    {"text", "ids", "words"}: random strings over a pool of tricky characters (combining marks of
    every class, letters with decompositions, CJK, emoji, controls, odd whitespace), in a fixed seed.
unicode_sweep.jsonl
    {"first", "last", "text", "words": {config: [...]}}: runs of consecutive code points through the
    normalizer + pre-tokenizer under a few settings. The `tokenizers` crate classifies characters with
    old Unicode tables, so this sweep is what pins down every code point's behaviour.
fast_slow.json
    where the slow (pure Python) BertTokenizer disagrees with the fast one, per set: count and examples.
meta.json
    package versions and line counts.
"""
import csv
import json
import pathlib
import random

import tokenizers
import transformers
from tokenizers import normalizers, pre_tokenizers
from transformers import AutoTokenizer, BertTokenizer

# Settings for the code-point sweep; the C++ test builds the same options by name.
SWEEP_CONFIGS = {
    "default": dict(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True),
    "cased": dict(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=False),
    "lower_keep_accents": dict(clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=True),
    "raw_strip": dict(clean_text=False, handle_chinese_chars=False, strip_accents=True, lowercase=False),
}


def _hard_cases():
    long_word = "pneumonoultramicroscopicsilicovolcanoconiosis" * 3  # 135 letters
    return [
        "", " ", "     ", "\t\n\r", "\u00a0\u2002\u3000", "a\u00a0b", "a\u2028b\u2029c", "a\u1680b\u205fc",
        "Café crème brûlée, naïve façade, Ångström, São Paulo, Zürich, Øresund, Łódź",
        "e\u0301 a\u0308 o\u0302\u0323 n\u0303", "\u0301\u0302 leading marks",
        "İstanbul ıi IJssel İİ", "Straße STRASSE ẞ groß", "ﬁnance ﬂow ﬀ ﬃ Ⅻ ① ㎏ ＡＢＣ ｶﾀｶﾅ",
        "ΟΔΥΣΣΕΥΣ Σίσυφος ΣΑΣ", "Привет, МИР! Ёлка", "日本語のテキストと中文字符混合", "한국어 텍스트 漢字",
        "𠀀𠀁 𪜀 豈更 \U0002F800", "emoji 😀👍🏽 👨‍👩‍👧 🇫🇷 ❤️ 🥰", "control\x00chars\x01\x07\x1b[0m\x7f\x85here",
        "zero\u200bwidth\u200c\u200djoiner\ufeffbom\u2060wj", "soft\u00adhyphen", "\ufffdreplacement\ufffd",
        "a" * 100, "b" * 101, long_word, "x" + "é" * 100, "é" * 101, "word " * 50 + long_word,
        "!!!???...,,,;;;", "--- *** ((( ))) [[[ ]]] {{{ }}} ~~~ ```", "«guillemets» „quotes“ ‘single’ — dash – ·",
        "e-mail: test@example.com, url: https://example.org/a?b=c&d=e#f", "$1,234.56 €99 ¥500 £3 ₹10 50% 3.14159",
        "1st 2nd 3rd 10,000 1e-10 0x1F 007", "mixed Русский English العربية עברית हिन्दी ไทย",
        "سلام دنیا", "שָׁלוֹם", "नमस्ते दुनिया", "สวัสดีครับ", "Ελληνικά", "ℌ𝔢𝔩𝔩𝔬 𝐁𝐨𝐥𝐝",
        "tab\tseparated\tvalues", "line\nbreaks\r\nand\rreturns", "vertical\x0btab\x0cform feed",
        "[CLS] [SEP] [MASK] [PAD] [UNK] inside text", "x[SEP]y [mask] [Sep]", "##ing ## #",
        "unaffable unbelievable supercalifragilistic", "don't can't won't it's", "U.S.A. e.g. i.e.",
        "\U000e0041 tag chars \U000e007f", "private\ue000use\U000f0000", "\u0890\u08e2 \u061d \u166d \u1734",
        "Ǆ ǅ ǆ ǈ Ǌ", "ᾈ ᾼ ῌ", "K Å Ω", "\u1c89\ua7cb\U00010d50",
        # Characters whose class changed after Unicode 8 (the fast tokenizer's tables), one per text.
        "x\u0890y", "x\u1734y", "x\u061dy", "x\u166dy", "x\U000111c9y", "x\u08d3y", "x\u0e33y",
    ]


def _write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def _read_sets(data):
    data = pathlib.Path(data)
    sets = {}
    with open(data / "sst2" / "dev.tsv", encoding="utf-8", newline="") as f:
        sets["sst2_dev"] = [r["sentence"] for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]
    with open(data / "trec6" / "test.tsv", encoding="utf-8", newline="") as f:
        sets["trec6_test"] = [r["text"] for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]
    with open(data / "ag_news" / "test.csv", encoding="utf-8", newline="") as f:
        sets["ag_news_test"] = [r[0] for r in csv.reader(f)]
    sets["hard_cases"] = _hard_cases()
    return sets


def _pairs(sets):
    rng = random.Random(20240607)
    sst = sets["sst2_dev"]
    rows = []
    # Hand-made lengths around the tie-breaking and "only one side too long" cases.
    for a_len, b_len in [(5, 5), (6, 6), (7, 6), (6, 7), (10, 2), (2, 10), (1, 12), (0, 8), (8, 0), (20, 20)]:
        a = " ".join(["alpha"] * a_len)
        b = " ".join(["beta"] * b_len)
        for max_length in [0, 3, 4, 5, 8, 9, 10, 11, 12, 13, 64]:
            rows.append((a, b, max_length))
    for _ in range(300):
        a, b = rng.choice(sst), rng.choice(sst)
        rows.append((a, b, rng.choice([0, 8, 16, 17, 24, 32, 33, 64, 128])))
    for text in sets["ag_news_test"][:100]:
        rows.append((text, None, rng.choice([2, 3, 10, 32, 33, 64])))
    rows.append(("", "", 0))
    rows.append(("", "", 3))
    rows.append(("only a", None, 0))
    return rows


def _encode_pairs(fast, rows):
    out = []
    for a, b, max_length in rows:
        kw = dict(truncation="longest_first", max_length=max_length) if max_length else {}
        enc = fast(a, b, **kw) if b is not None else fast(a, **kw)
        out.append({"a": a, "b": b, "max_length": max_length, "ids": enc["input_ids"],
                    "type_ids": enc["token_type_ids"]})
    return out


def _random_mix(fast, n=3000):
    pool = (list(range(0x20, 0x7F)) + list(range(0xA0, 0x250)) + list(range(0x300, 0x370)) +
            list(range(0x370, 0x400)) + list(range(0x591, 0x5C8)) + list(range(0x610, 0x670)) +
            list(range(0x900, 0x980)) + list(range(0xE00, 0xE60)) + list(range(0x1E00, 0x1F00)) +
            list(range(0x2000, 0x2070)) + list(range(0x3000, 0x3040)) + list(range(0x4E00, 0x4E40)) +
            list(range(0xAC00, 0xAC40)) + list(range(0xF900, 0xF910)) + list(range(0xFB00, 0xFB50)) +
            list(range(0xFE00, 0xFE10)) + list(range(0xFF00, 0xFF70)) + list(range(0x1F600, 0x1F650)) +
            [0, 1, 9, 10, 11, 12, 13, 0x7F, 0x85, 0xAD, 0x200B, 0x200D, 0x2028, 0xFEFF, 0xFFFD, 0xE000, 0x130,
             0x1734, 0x1715, 0x0890, 0x08D3, 0x0898, 0x1DF6, 0x1DFB, 0x166D, 0x061D, 0x11938, 0x1C89, 0xA7CB])
    rng = random.Random(7)
    pre = fast.backend_tokenizer.pre_tokenizer
    norm = fast.backend_tokenizer.normalizer
    rows = []
    for _ in range(n):
        text = "".join(chr(rng.choice(pool)) for _ in range(rng.randint(1, 40)))
        words = [w for w, _ in pre.pre_tokenize_str(norm.normalize_str(text))]
        rows.append({"text": text, "ids": fast(text)["input_ids"], "words": words})
    return rows


def _sweep_ranges():
    # Every code point of the planes in use (0-3 and 14); the edges of the empty and private planes.
    spans = [(0, 0xD7FF), (0xE000, 0x3FFFF), (0xE0000, 0xEFFFF)]
    for plane in list(range(4, 14)) + [15, 16]:
        spans += [(plane << 16, (plane << 16) + 511), ((plane << 16) + 0xFE00, (plane << 16) + 0xFFFF)]
    chunk = 256
    for lo, hi in spans:
        for first in range(lo, hi + 1, chunk):
            yield first, min(first + chunk - 1, hi)


def _sweep():
    pre = pre_tokenizers.BertPreTokenizer()
    norms = {name: normalizers.BertNormalizer(**cfg) for name, cfg in SWEEP_CONFIGS.items()}
    rows = []
    for first, last in _sweep_ranges():
        text = "".join(chr(cp) for cp in range(first, last + 1))
        words = {name: [w for w, _ in pre.pre_tokenize_str(n.normalize_str(text))] for name, n in norms.items()}
        rows.append({"first": first, "last": last, "text": text, "words": words})
    return rows


def _fast_slow(fast, slow, sets, pairs):
    report = {}
    for name, texts in sets.items():
        bad = [t for t in texts if fast(t)["input_ids"] != slow(t)["input_ids"]]
        report[name] = {"n": len(texts), "disagree": len(bad),
                        "examples": [{"text": t, "fast": fast(t)["input_ids"], "slow": slow(t)["input_ids"]}
                                     for t in bad[:20]]}
    bad = []
    for row in pairs:
        kw = dict(truncation="longest_first", max_length=row["max_length"]) if row["max_length"] else {}
        args = (row["a"],) if row["b"] is None else (row["a"], row["b"])
        try:
            ids = slow(*args, **kw)["input_ids"]
        except Exception as e:  # the slow tokenizer refuses some lengths the fast one accepts
            ids = f"error: {e}"
        if ids != row["ids"]:
            bad.append({"a": row["a"], "b": row["b"], "max_length": row["max_length"], "fast": row["ids"],
                        "slow": ids})
    report["pairs"] = {"n": len(pairs), "disagree": len(bad), "examples": bad[:20]}
    return report


def make(args):
    # The slow tokenizer logs a warning or an error for every pair it truncates or cannot truncate.
    transformers.logging.set_verbosity(transformers.logging.CRITICAL)
    out = pathlib.Path(args.out) / "tokenizer"
    out.mkdir(parents=True, exist_ok=True)
    fast = AutoTokenizer.from_pretrained(args.model, use_fast=True)
    slow = BertTokenizer.from_pretrained(args.model)
    assert fast.is_fast and type(fast).__name__ == "BertTokenizerFast", type(fast)

    sets = _read_sets(args.data)
    counts = {}
    for name, texts in sets.items():
        rows = [{"text": t, "ids": fast(t)["input_ids"]} for t in texts]
        _write_jsonl(out / f"{name}.jsonl", rows)
        counts[name] = len(rows)
    pairs = _encode_pairs(fast, _pairs(sets))
    _write_jsonl(out / "pairs.jsonl", pairs)
    counts["pairs"] = len(pairs)
    mix = _random_mix(fast)
    _write_jsonl(out / "random_mix.jsonl", mix)
    counts["random_mix"] = len(mix)
    sweep = _sweep()
    _write_jsonl(out / "unicode_sweep.jsonl", sweep)
    counts["unicode_sweep"] = len(sweep)

    report = _fast_slow(fast, slow, dict(sets, random_mix=[r["text"] for r in mix]), pairs)
    with open(out / "fast_slow.json", "w", encoding="utf-8") as f:
        json.dump(report, f, ensure_ascii=False, indent=1)
    for name, r in report.items():
        print(f"[golden] tokenizer: {name}: {r['n']} examples, slow/fast disagree on {r['disagree']}")
    with open(out / "meta.json", "w", encoding="utf-8") as f:
        json.dump({"transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
                   "counts": counts, "sweep_configs": SWEEP_CONFIGS}, f, indent=1)
