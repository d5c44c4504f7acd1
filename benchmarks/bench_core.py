"""Neural-core benchmark: cnn-small (the reference CNN of the project brief), batch 64, 32 bits.

saat's own times (medians of repeated runs): forward; forward + backward to the input; PGD-10;
the 100-step SAAT attack; one DPSH training step (saat.train on one batch). No PyTorch peer here:
two libraries' thread pools in one process distort both, so the ratios against PyTorch come from
``run_all.py``, which times each side in its own process.
Run: python benchmarks/bench_core.py [--repeats N]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import saat
from run_all import cpu_flags


def timeit(fn, repeats):
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    bits, n = 32, args.batch
    rng = np.random.default_rng(0)
    x = rng.random((n, 3, 32, 32), dtype=np.float32)
    g = rng.standard_normal((n, bits)).astype(np.float32)
    m = saat.HashingModel("cnn-small", bits, seed=0)
    pgd = saat.attacks.PGD(m, eps=8 / 255, step=2 / 255, steps=10)
    labels = np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)]
    rows = {}
    rows["forward"] = timeit(lambda: m.forward(x), args.repeats)
    rows["forward+backward to input"] = timeit(lambda: m.input_gradient(x, g), args.repeats)
    rows["PGD-10"] = timeit(lambda: pgd(x), max(3, args.repeats // 3))
    train_codes = np.where(rng.random((500, bits)) > 0.5, 1, -1).astype(np.int8)
    train_labels = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 500)]
    saat_atk = saat.attacks.SAATAttack(m, train_codes, train_labels, steps=100)
    rows["SAAT attack (100 steps)"] = timeit(lambda: saat_atk(x, labels), 3)
    rows["train step (DPSH, SGD)"] = timeit(lambda: saat.train(m, x, labels, epochs=1, batch_size=n, progress=False),
                                             args.repeats)
    info = saat.info()
    print(f"saat {info['version']} | target {info['target_cpu']} | BLAS {info['blas_core']} x{info['blas_threads']}")
    print(f"CPU flags: {cpu_flags()}")
    print(f"cnn-small, batch {n}, {bits} bits; median of {args.repeats} runs (saat only: run_all.py gives the "
          "ratios against PyTorch, each side in its own process)")
    print(f"{'operation':28s} {'saat ms':>9s}")
    for k, v in rows.items():
        print(f"{k:28s} {1e3 * v:9.2f}")


if __name__ == "__main__":
    main()
