"""Golden files for BpeTokenizerParityTest and LlamaParityTest (written into <out>/llm/).

The reference is Hugging Face transformers reading the same GGUF file (SmolLM2-135M-Instruct, Q4_1):
its GGUF converter builds the tokenizer from the metadata, and `load_gguf_checkpoint` dequantizes the
weights with the `gguf` package and undoes llama.cpp's Q/K row permutation, exactly as
`from_pretrained(gguf_file=...)` does (that entry point also wants `accelerate`, which the model does
not need, so the model is assembled from the same two calls here).

transformers' GGUF converter ignores tokenizer.ggml.pre and always uses a plain ByteLevel
pre-tokenizer (GPT-2's regex). SmolLM2's own tokenizer.json, and llama.cpp for pre = "smollm", first
isolate every digit. Both references are written: `gpt2` is the converter as it is, `smollm` the same
tokenizer with Digits(individual_digits=True) put before ByteLevel (what kd uses for this file).

tokenizer_smollm.json          the smollm reference tokenizer saved as a Hugging Face tokenizer.json
tokens_<pre>_<set>.jsonl       {"text", "ids"} per line, no special tokens added (special-token text is
                               parsed); sets: wiki_test and wiki_valid (every non-empty line of the
                               wikitext-2 files, newline kept) and hard_cases
decode_cases.jsonl             {"ids", "text", "text_skip"}: decoding of id runs (invalid UTF-8 included)
model_prompts.json             for each prompt: text, ids; hidden states of layers 0..L-1 and logits
                               in model_outputs.safetensors; and a 64-token greedy continuation
model_outputs.safetensors      "<prompt>.logits" (T, V), "<prompt>.hidden.<i>" (T, H), "batch.*"
meta.json                      versions, counts, and how many lines the gpt2 and smollm tokenizers disagree on
"""
import json
import pathlib

import numpy as np
import tokenizers
import torch
import transformers
from safetensors.torch import save_file
from tokenizers import Tokenizer, pre_tokenizers
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

HARD_CASES = [
    "", " ", "  ", "   ", "\n", "\n\n", " \n ", "\t\tindent", "a  b   c    d", "trailing   ", "   leading",
    "line one\nline two\r\nline three\rend", "tab\tseparated\tvalues", "x\u00a0y\u2003z\u3000w",
    "Café crème brûlée, naïve façade, Ångström, São Paulo, Zürich, Øresund, Łódź",
    "e\u0301 a\u0308 o\u0302\u0323", "Straße İstanbul ΟΔΥΣΣΕΥΣ Привет, МИР!",
    "日本語のテキストと中文字符混合", "한국어 텍스트", "𠀀𠀁 𪜀", "emoji 😀👍🏽 👨‍👩‍👧 🇫🇷 ❤️ 🥰",
    "1234567890", "3.14159 2,718 1e-10 0x1F 007 $1,234.56 50%", "½ ¼ ² ³ ① Ⅻ ٣ ४ ௫", " 12 345 6789",
    "don't can't won't it's I'm you're we've they'll he'd", "DON'T IT'S 'quoted' ''", "a'sb 's 't",
    "!!!???...,,,;;;", "--- *** ((( ))) [[[ ]]] {{{ }}} ~~~ ```", "«guillemets» „quotes“ ‘single’ — dash – ·",
    "e-mail: test@example.com, url: https://example.org/a?b=c&d=e#f",
    "def f(x):\n    return x ** 2  # square\n", "<html><body class=\"a\">text</body></html>",
    "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n", "<|endoftext|><|endoftext|>x<|im_end|>",
    "<|im_start|><|im_start|", "<|im_start |> <|IM_START|> <im_start>", "text<repo_name>name<file_sep>code",
    "a" * 300, " " * 50 + "x", "ab" * 100, "\u200b\u200c\u200d\ufeff", "\x00\x01\x07\x1b[0m\x7f",
    "mixed Русский English العربية עברית हिन्दी ไทย", "𝐁𝐨𝐥𝐝 ℌ𝔢𝔩𝔩𝔬", "\ufffd",
]

PROMPTS = {
    "wiki": " The game 's battle system , the BliTZ system , is carried over directly from Valkyira Chronicles .",
    "chat": "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "story": "Once upon a time, in a small village by the sea, there lived",
}
GENERATE = ["chat", "story"]
N_NEW = 64


def _write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def _wiki_lines(data, name):
    with open(pathlib.Path(data) / "wikitext2" / name, encoding="utf-8", newline="") as f:
        return [line for line in f if line.strip()]


def _tokenizers(gguf_path):
    """The converter's tokenizer (transformers wrapper, for decoding) and the two backends to encode with."""
    folder, name = str(pathlib.Path(gguf_path).parent), pathlib.Path(gguf_path).name
    wrapper = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    smollm = Tokenizer.from_str(wrapper.backend_tokenizer.to_str())
    smollm.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=True)])
    return wrapper, {"gpt2": wrapper.backend_tokenizer, "smollm": smollm}


def _encode(backend, text):
    return backend.encode(text, add_special_tokens=False).ids


def _decode_cases(tok):
    rng = np.random.default_rng(5)
    cases = [[], [1, 2], [28, 29, 30], [216, 216], [1, 19556, 2], [2, 0, 16]]
    # Tokens that are lone UTF-8 pieces (e.g. the first byte of a multi-byte character).
    cases += [[int(i) for i in rng.integers(0, 49152, size=n)] for n in (1, 3, 8, 20, 50)]
    cases += [[int(i)] for i in rng.integers(0, 49152, size=30)]
    return [{"ids": ids, "text": tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False),
             "text_skip": tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)}
            for ids in cases]


def _model(gguf_path):
    parsed = load_gguf_checkpoint(gguf_path, return_tensors=False)
    config = LlamaConfig(**{k: v for k, v in parsed["config"].items() if k not in ("model_type", "architectures")})
    model = LlamaForCausalLM(config).eval()
    tensors = load_gguf_checkpoint(gguf_path, return_tensors=True, model_to_load=model)["tensors"]
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    assert set(missing) <= {"lm_head.weight"} and not unexpected, (missing, unexpected)
    model.tie_weights()
    assert torch.equal(model.lm_head.weight, model.model.embed_tokens.weight)
    return model.float()


@torch.no_grad()
def _greedy(model, ids, n):
    out, margins, past, cur = [], [], None, torch.tensor([ids])
    for _ in range(n):
        o = model(cur, past_key_values=past, use_cache=True)
        past = o.past_key_values
        top = o.logits[0, -1].topk(2)
        out.append(int(top.indices[0]))
        margins.append(float(top.values[0] - top.values[1]))
        cur = top.indices[:1].view(1, 1)
    return out, margins


@torch.no_grad()
def _model_goldens(out, gguf_path, tok, wrapper):
    model = _model(gguf_path)
    tensors, prompts = {}, {}
    for name, text in PROMPTS.items():
        ids = _encode(tok, text)
        o = model(torch.tensor([ids]), output_hidden_states=True)
        tensors[f"{name}.logits"] = o.logits[0].float().contiguous()
        # hidden_states[i] is layer i's output for i < L; the last entry is after the final norm.
        for i, h in enumerate(o.hidden_states[:-1]):
            tensors[f"{name}.hidden.{i}"] = h[0].contiguous()
        entry = {"text": text, "ids": ids}
        if name in GENERATE:
            entry["greedy"], entry["margins"] = _greedy(model, ids, N_NEW)
            entry["greedy_text"] = wrapper.decode(entry["greedy"], skip_special_tokens=False,
                                                  clean_up_tokenization_spaces=False)
        prompts[name] = entry
    # A right-padded batch of two prompts with an attention mask.
    a, b = prompts["story"]["ids"], prompts["wiki"]["ids"]
    T = max(len(a), len(b))
    ids = torch.full((2, T), 2, dtype=torch.long)
    mask = torch.zeros((2, T), dtype=torch.long)
    for r, seq in enumerate([a, b]):
        ids[r, :len(seq)] = torch.tensor(seq)
        mask[r, :len(seq)] = 1
    tensors["batch.ids"] = ids
    tensors["batch.mask"] = mask
    tensors["batch.logits"] = model(ids, attention_mask=mask).logits.float().contiguous()
    save_file(tensors, str(out / "model_outputs.safetensors"))
    with open(out / "model_prompts.json", "w", encoding="utf-8") as f:
        json.dump({"prompts": prompts, "config": {k: v for k, v in model.config.to_dict().items()
                                                   if isinstance(v, (int, float, str, bool))}},
                  f, ensure_ascii=False, indent=1)


def make(args):
    out = pathlib.Path(args.out) / "llm"
    out.mkdir(parents=True, exist_ok=True)
    wrapper, toks = _tokenizers(args.gguf)
    toks["smollm"].save(str(out / "tokenizer_smollm.json"))
    sets = {"wiki_test": _wiki_lines(args.data, "wiki.test.tokens"),
            "wiki_valid": _wiki_lines(args.data, "wiki.valid.tokens"), "hard_cases": HARD_CASES}
    counts, disagree = {}, {}
    for set_name, texts in sets.items():
        per_pre = {}
        for pre, tok in toks.items():
            rows = [{"text": t, "ids": _encode(tok, t)} for t in texts]
            _write_jsonl(out / f"tokens_{pre}_{set_name}.jsonl", rows)
            per_pre[pre] = rows
        counts[set_name] = len(texts)
        disagree[set_name] = sum(x["ids"] != y["ids"] for x, y in zip(per_pre["gpt2"], per_pre["smollm"]))
    _write_jsonl(out / "decode_cases.jsonl", _decode_cases(wrapper))
    _model_goldens(out, args.gguf, toks["smollm"], wrapper)
    with open(out / "meta.json", "w", encoding="utf-8") as f:
        json.dump({"transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
                   "torch": torch.__version__, "counts": counts, "gpt2_vs_smollm_disagree": disagree}, f, indent=1)
    print(f"[golden] llm: {counts} lines; gpt2 vs smollm pre-tokenizer disagree on {disagree}")
