"""Reads a causal-LM folder written by kd::save_causal_lm with transformers and compares it with kd.

Usage: check_llm_folder.py FOLDER EXPECT.json EXPECT.safetensors

CausalLmParityTest writes the folder and kd's own results: EXPECT.json holds {"texts": [...], "ids":
[[...], ...]} (kd's token ids of each text), "prompts" (token ids) whose kd logits are "logits.<i>"
(T, V) in EXPECT.safetensors, "logits_relative_bound" (the float32 rounding bound c·eps·√n·depth that the
C++ test derives from the model's widths and depth: tests/tolerance.h), "special" (bos/eos/pad token
strings) and "chat" {"user", "prompt"} (kd's chat prompt for one user message). Checked here:
LlamaForCausalLM.from_pretrained loads every weight (nothing missing or unexpected), AutoTokenizer gives a
fast tokenizer with the same ids for every text and decodes them back, the same special tokens and chat
prompt, and logits within the bound of kd's: |transformers − kd| <= bound · (|kd| + rms(kd)) for every
logit. Prints what it compared; exits 1 on the first mismatch.
"""
import json
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, LlamaForCausalLM, PreTrainedTokenizerFast


def fail(msg):
    print(f"check_llm_folder: {msg}", flush=True)
    sys.exit(1)


@torch.no_grad()
def main():
    folder, expect_json, expect_st = sys.argv[1:4]
    with open(expect_json, encoding="utf-8") as f:
        expect = json.load(f)
    logits = load_file(expect_st)

    tok = AutoTokenizer.from_pretrained(folder)
    if not isinstance(tok, PreTrainedTokenizerFast):
        fail(f"AutoTokenizer gave {type(tok).__name__}, not a fast tokenizer")
    for name, want in expect["special"].items():
        got = getattr(tok, name)
        if got != want:
            fail(f"{name}: transformers has {got!r}, kd {want!r}")
    bad = 0
    for text, ids in zip(expect["texts"], expect["ids"]):
        got = tok(text, add_special_tokens=False)["input_ids"]
        if got != ids:
            bad += 1
            if bad <= 3:
                print(f"ids differ for {text!r}:\n  transformers {got}\n  kd           {ids}")
        elif tok.decode(got, clean_up_tokenization_spaces=False) != text:
            fail(f"decoding does not give the text back: {text!r}")
    if bad:
        fail(f"token ids differ on {bad} of {len(expect['texts'])} texts")
    print(f"check_llm_folder: token ids identical on {len(expect['texts'])} texts")
    chat = expect.get("chat")
    if chat:
        got = tok.apply_chat_template([{"role": "user", "content": chat["user"]}], tokenize=False,
                                      add_generation_prompt=True)
        if got != chat["prompt"]:
            fail(f"chat prompt differs:\n  transformers {got!r}\n  kd           {chat['prompt']!r}")
        print("check_llm_folder: chat prompt identical")

    model, info = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32, output_loading_info=True)
    if any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")):
        fail(f"weights not loaded cleanly: {info}")
    model.eval()
    bound = float(expect["logits_relative_bound"])
    for i, ids in enumerate(expect["prompts"]):
        out = model(torch.tensor([ids])).logits[0].double()
        ref = logits[f"logits.{i}"].double()
        diff = (out - ref).abs()
        used = float((diff / (bound * (ref.abs() + ref.square().mean().sqrt()))).max())
        print(f"check_llm_folder: prompt {i} ({len(ids)} tokens): logits max abs diff {float(diff.max()):.3g}, "
              f"{used:.3g} of the rounding bound", flush=True)
        if not used <= 1.0:
            fail(f"prompt {i}: logits differ by {float(diff.max())}, {used} times the rounding bound")


if __name__ == "__main__":
    main()
