"""A steady loop of one network workload, for a profiler (perf, callgrind): not a benchmark.

    .venv/bin/python benchmarks/profile_step.py {forward,fwdbwd,pgd,at} [--iters N]

cnn-small, batch 64, 32 bits (the reference CNN of the benchmarks). Prints the median time per
iteration at the end; run it under `perf record` to see where the time goes (README, Developers).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import saat


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["forward", "fwdbwd", "pgd", "at"])
    ap.add_argument("--iters", type=int, default=0, help="iterations (default: ~10 s of work)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    x = rng.random((64, 3, 32, 32), dtype=np.float32)
    g = rng.standard_normal((64, 32)).astype(np.float32)
    labels = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 64)]
    model = saat.HashingModel("cnn-small", 32, seed=0)
    if args.what == "forward":
        fn = lambda: model.forward(x)  # noqa: E731
    elif args.what == "fwdbwd":
        fn = lambda: model.input_gradient(x, g)  # noqa: E731
    elif args.what == "pgd":
        pgd = saat.attacks.PGD(model, eps=8 / 255, step=2 / 255, steps=10)
        fn = lambda: pgd(x)  # noqa: E731
    else:
        t = saat.defences.SAATTraining(model, epochs=1, batch_size=64)
        fn = lambda: t.fit(x, labels, progress=False)  # noqa: E731
    for _ in range(3):
        fn()
    t0 = time.perf_counter()
    fn()
    per = time.perf_counter() - t0
    iters = args.iters or max(5, int(10 / max(per, 1e-4)))
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    print(f"{args.what}: {iters} iterations, median {statistics.median(ts) * 1e3:.2f} ms, min {min(ts) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
