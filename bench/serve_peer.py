"""The Python server a user would otherwise write for a classifier: a transformers model behind FastAPI and
uvicorn, speaking kd serve's /v1/classify JSON, so that one load client (`kd bench serve`) measures both.

Written the way the FastAPI and transformers documentation show it: a synchronous endpoint (FastAPI runs it
in its thread pool), the tokenizer and the model called once per request under torch.inference_mode(), no
batching across requests; one uvicorn worker, torch pinned to --threads like kd serve. With --int8 the model
is quantized as PyTorch's documentation shows for a BERT on the CPU: `quantize_dynamic` of every nn.Linear to
qint8 (here with the per-channel weight scales kd quantize uses), activations quantized on every call.
  python bench/serve_peer.py --model runs/sst2-distill-bert-small/student --port 8181 --threads 2 [--int8]
"""
import argparse

import common


def build_app(model_dir, max_length, torch, int8=False):
    from fastapi import FastAPI, HTTPException
    from pydantic import BaseModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    if int8:
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
        model = quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    app = FastAPI()

    class ClassifyRequest(BaseModel):
        texts: list[str]

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.post("/v1/classify")
    def classify(request: ClassifyRequest):
        if not request.texts or any(not t.strip() for t in request.texts):
            raise HTTPException(status_code=400, detail="texts must be non-empty strings")
        with torch.inference_mode():
            enc = tokenizer(request.texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            probs = model(**enc).logits.softmax(-1).tolist()
        results = []
        for p in probs:
            best = max(range(len(p)), key=p.__getitem__)
            results.append({"label": labels[best], "probabilities": dict(zip(labels, p))})
        return {"model": model_dir, "results": results}

    return app


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--int8", action="store_true", help="dynamic int8 quantization of every Linear layer")
    args = p.parse_args()
    torch = common.set_threads(args.threads)
    import uvicorn
    uvicorn.run(build_app(args.model, args.max_length, torch, args.int8), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
