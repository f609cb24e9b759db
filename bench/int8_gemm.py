"""How much faster this CPU multiplies in int8 than in float32, outside kd: PyTorch's own dynamic int8 Linear
(`torch.ao` quantize_dynamic, the fbgemm kernels kd also calls) against float32 nn.Linear on a MiniLM
feed-forward shape, with the same threads. It bounds what `kd quantize` can give on the host at hand.
  .venv/bin/python bench/int8_gemm.py [--rows 1600 --in 384 --out 1536 --threads 2]
"""
import argparse
import statistics
import time
import warnings

import common


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1600)
    p.add_argument("--in", dest="n_in", type=int, default=384)
    p.add_argument("--out", type=int, default=1536)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()
    torch = common.set_threads(args.threads)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    x = torch.randn(args.rows, args.n_in)
    lin = torch.nn.Sequential(torch.nn.Linear(args.n_in, args.out)).eval()
    q = torch.ao.quantization.quantize_dynamic(
        lin, {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}, dtype=torch.qint8)
    flop = 2 * args.rows * args.n_in * args.out
    rates = {}
    with torch.inference_mode():
        for name, model in (("float32", lin), ("int8", q)):
            for _ in range(5):
                model(x)
            times = []
            for _ in range(7):
                t = time.perf_counter()
                for _ in range(args.repeats):
                    model(x)
                times.append((time.perf_counter() - t) / args.repeats)
            rates[name] = flop / statistics.median(times) / 1e9
            print(f"{name}: {rates[name]:.0f} GFLOP/s (median of 7 x {args.repeats})")
    print(f"int8 / float32: {rates['int8'] / rates['float32']:.2f}x ({args.rows}x{args.n_in} @ {args.n_in}x{args.out}, "
          f"{args.threads} threads)")


if __name__ == "__main__":
    main()
