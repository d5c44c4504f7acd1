"""sgemm through the saat bridge (Debian OpenBLAS) vs numpy's matmul (its bundled OpenBLAS), 1024³.
Run: python benchmarks/bench_sgemm.py [--n 1024] [--repeats 15]"""
import argparse
import statistics
import time

import numpy as np

import saat


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=15)
    a = ap.parse_args()
    n = a.n
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, n)).astype(np.float32)
    y = rng.standard_normal((n, n)).astype(np.float32)
    out = np.empty((n, n), np.float32)
    flop = 2 * n ** 3
    res = {"saat.kernels.sgemm": [], "numpy matmul": []}
    saat.kernels.sgemm(x, y, out)
    np.matmul(x, y, out=out)
    for _ in range(a.repeats):   # alternate to share the machine's noise
        t = time.perf_counter(); saat.kernels.sgemm(x, y, out); res["saat.kernels.sgemm"].append(time.perf_counter() - t)
        t = time.perf_counter(); np.matmul(x, y, out=out); res["numpy matmul"].append(time.perf_counter() - t)
    np.testing.assert_allclose(saat.kernels.sgemm(x, y), x @ y, rtol=1e-3, atol=1e-2)
    med = {k: statistics.median(v) for k, v in res.items()}
    for k, v in med.items():
        print(f"{k:22s} {1e3 * v:8.2f} ms  {flop / v / 1e9:7.1f} GFLOP/s")
    print(f"ratio saat/numpy time: {med['saat.kernels.sgemm'] / med['numpy matmul']:.2f}")


if __name__ == "__main__":
    main()
