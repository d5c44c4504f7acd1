"""Neural-core benchmark: cnn-small (the reference CNN of the project brief), batch 64, 32 bits.

Times, in one process and alternating saat / PyTorch runs (medians of repeated runs):
  forward; forward + backward to the input; a training step (forward, DPSH-free L2 objective,
  backward with parameter gradients, SGD) approximated by saat.train on one batch; PGD-10.
PyTorch (channels_last, 2 threads) is optional: without it only saat's figures are printed.
Caveat: saat's OpenBLAS pool and PyTorch's OpenMP pool spin after each call and slow each other
down when both run in one process, so the ratios printed here are distorted (PyTorch's forward
measured ~40 ms here vs 11.5 ms alone). For the reported ratios use ``run_all.py``, which times
each side in its own process; this script stays for the 100-step SAAT attack and training rows.
Run: python benchmarks/bench_core.py [--repeats N]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import saat


def timeit(fn, repeats):
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def torch_peer(model: saat.HashingModel, bits: int):
    """(torch, the PyTorch twin of `model`) with 2 threads, or None without PyTorch."""
    try:
        import torch
    except ImportError:
        return None
    from torch_peers import torch_twin
    torch.set_num_threads(2)
    return torch, torch_twin(torch, model)


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
    rows["forward"] = [timeit(lambda: m.forward(x), args.repeats)]
    rows["forward+backward to input"] = [timeit(lambda: m.input_gradient(x, g), args.repeats)]
    rows["PGD-10"] = [timeit(lambda: pgd(x), max(3, args.repeats // 3))]
    train_codes = np.where(rng.random((500, bits)) > 0.5, 1, -1).astype(np.int8)
    train_labels = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 500)]
    saat_atk = saat.attacks.SAATAttack(m, train_codes, train_labels, steps=100)
    rows["SAAT attack (100 steps)"] = [timeit(lambda: saat_atk(x, labels), 3)]
    rows["train step (DPSH, SGD)"] = [timeit(lambda: saat.train(m, x, labels, epochs=1, batch_size=n, progress=False),
                                             args.repeats)]
    peer = torch_peer(m, bits)
    if peer is not None:
        torch, net = peer
        xt = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
        gt = torch.from_numpy(g)

        def fwd():
            with torch.no_grad():
                net(xt)

        def fwdbwd():
            xi = xt.clone().requires_grad_(True)
            net(xi).backward(gt)

        def pgd10():
            codes = torch.sign(net(xt)).detach()
            delta = torch.empty_like(xt).uniform_(-8 / 255, 8 / 255)
            for _ in range(10):
                delta.requires_grad_(True)
                loss = (net((xt + delta).clamp(0, 1)) * codes).mean()
                (grad,) = torch.autograd.grad(loss, delta)
                delta = (delta.detach() - 2 / 255 * grad.sign()).clamp(-8 / 255, 8 / 255)
                delta = (xt + delta).clamp(0, 1) - xt

        mainstay = torch.from_numpy(saat.codes.mainstay(labels, train_codes, train_labels).astype(np.float32))
        alphas = [0.1] * 5 + [0.2, 0.3, 0.5, 0.7, 1.0]

        def saat100():
            # the same loop as SAAT's evaluation attack: masked loss towards -mainstay, alpha schedule
            delta = torch.empty_like(xt).uniform_(-8 / 255, 8 / 255)
            delta = (xt + delta).clamp(0, 1) - xt
            feats = lambda z: net.hash_layer(net.classifier(torch.flatten(net.features(z), 1)))  # noqa: E731
            for i in range(100):
                delta.requires_grad_(True)
                f = torch.tanh(alphas[i // 10] * feats(xt + delta))
                s = f * mainstay
                msk = (s > -0.5).float().detach()
                loss = (msk * (s + 2) * s).sum() / msk.sum().clamp(min=1)
                (grad,) = torch.autograd.grad(loss, delta)
                delta = (delta.detach() - 1 / 255 * grad.sign()).clamp(-8 / 255, 8 / 255)
                delta = (xt + delta).clamp(0, 1) - xt

        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        yt = torch.from_numpy(labels)

        def step():
            u = net(xt)
            s = (yt @ yt.T > 0).float()
            th = 0.5 * u @ u.detach().T
            loss = (torch.nn.functional.softplus(th) - s * th).mean() + 50 * ((u - u.sign()) ** 2).sum() / (n * n)
            opt.zero_grad()
            loss.backward()
            opt.step()

        rows["forward"].append(timeit(fwd, args.repeats))
        rows["forward+backward to input"].append(timeit(fwdbwd, args.repeats))
        rows["PGD-10"].append(timeit(pgd10, max(3, args.repeats // 3)))
        rows["SAAT attack (100 steps)"].append(timeit(saat100, 3))
        rows["train step (DPSH, SGD)"].append(timeit(step, args.repeats))
    info = saat.info()
    print(f"saat {info['version']} | target {info['target_cpu']} | BLAS {info['blas_core']} x{info['blas_threads']}"
          + ("" if peer is None else f" | torch {peer[0].__version__} (channels_last, 2 threads)"))
    print(f"cnn-small, batch {n}, {bits} bits; median of {args.repeats} runs "
          "(both libraries in one process: ratios distorted by thread-pool interference, see run_all.py)")
    print(f"{'operation':28s} {'saat ms':>9s} {'torch ms':>9s} {'saat/torch':>10s}")
    for k, v in rows.items():
        if len(v) == 2:
            print(f"{k:28s} {1e3 * v[0]:9.2f} {1e3 * v[1]:9.2f} {v[0] / v[1]:10.2f}")
        else:
            print(f"{k:28s} {1e3 * v[0]:9.2f} {'-':>9s} {'-':>10s}   (PyTorch not installed: peer skipped)")


if __name__ == "__main__":
    main()
