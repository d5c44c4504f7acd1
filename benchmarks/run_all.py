"""Every saat benchmark in one run, printed as ONE table (``make bench``).

Rows (cnn-small = the reference CNN of the project brief, batch 64, 32 bits, 2 threads):
  forward; forward + backward to the input; PGD-10 (l-inf 8/255, step 2/255, random start);
  one SAAT adversarial-training step (PGD-7 inner attack + stacked clean/adversarial forward and
  backward with parameter gradients + SGD); the peak memory of that step; MAP@5000 of 1,000
  queries over 100,000 64-bit codes; conv-layer GFLOP/s against sgemm GFLOP/s.
The peers (PyTorch for the network rows, faiss-cpu and numpy for MAP) are optional: a row
without its peer says so. The network rows run each side in a fresh process of its own, the
processes alternating (saat, torch, saat, torch, ...; ``--rounds``), because the two libraries'
thread pools spin after each call and slow each other down when interleaved in one process; the
MAP and conv rows alternate run by run in one process. Every figure is a median: on a shared
2-core machine trust the ratios over absolute ms.

    PYTHONPATH=python python benchmarks/run_all.py [--repeats 9] [--rounds 3] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import saat  # noqa: E402

BITS, BATCH = 32, 64
EPS, STEP = 8 / 255, 2 / 255


# --------------------------------------------------------------------------- helpers

def alternate(fns: dict, repeats: int, warmup: int = 1) -> dict:
    """Median seconds of each callable, run in turns (a, b, a, b, ...) after `warmup` runs each."""
    for f in fns.values():
        for _ in range(warmup):
            f()
    ts = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            ts[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in ts.items()}


def blocks(fns: dict, repeats: int, pause: float = 0.3) -> dict:
    """Median seconds of each callable, each timed in a block of its own (warm-up, then `repeats`
    runs) with a pause before it. For callables that use different thread pools in one process:
    OpenBLAS's workers keep spinning for ~0.1 s after a multi-threaded sgemm, which slowed saat's
    own two-thread conv (run next, in turn) by up to 2x on these 2 cores."""
    out = {}
    for k, f in fns.items():
        time.sleep(pause)
        out[k] = alternate({k: f}, repeats, warmup=2)[k]
    return out


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def import_torch():
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(2)
    return torch


def data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((BATCH, 3, 32, 32), dtype=np.float32)
    g = rng.standard_normal((BATCH, BITS)).astype(np.float32)
    labels = np.eye(10, dtype=np.float32)[rng.integers(0, 10, BATCH)]
    return x, g, labels


def torch_net(torch, model):
    from bench_core import torch_peer
    _, net = torch_peer(model, BITS)
    return net


def torch_pgd(torch, net, xt, codes, steps):
    """PyTorch peer of saat's PGD loop: l-inf PGD minimising mean(F(x') * codes) from a uniform
    random start, step STEP, projected onto the EPS-ball around xt and [0, 1]. Returns x'."""
    xa = (xt + torch.empty_like(xt).uniform_(-EPS, EPS)).clamp(0, 1)
    for _ in range(steps):
        xa.requires_grad_(True)
        loss = (net(xa) * codes).mean()
        (grad,) = torch.autograd.grad(loss, xa)
        xa = torch.min(torch.max(xa.detach() - STEP * grad.sign(), xt - EPS), xt + EPS).clamp(0, 1)
    return xa


# --------------------------------------------------------------------------- the AT step, both sides

def saat_at_step(model, x, labels):
    """One SAAT adversarial-training step: SAATTraining.fit on exactly one batch of 64 images.
    fit also encodes the 64 images once (U_ben = sign F(x), eval mode) before the step."""
    t = saat.defences.SAATTraining(model, epochs=1, batch_size=BATCH)

    def step():
        t.fit(x, labels, progress=False)
    return step


def torch_at_step(torch, net, x, labels):
    """The same step in PyTorch: U_ben = sign F(x) (as fit's prepare), mainstay codes b,
    PGD-7 on mean(F(x')*b) from a random start, then one stacked forward of [x'; x], DPSH-like
    clean loss - mean(F(x') * b) + 1e-4 * quantisation, backward, SGD (lr 0.05, wd 1e-5)."""
    xt = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
    yt = torch.from_numpy(labels)
    train_codes = np.where(np.random.default_rng(1).random((BATCH, BITS)) > 0.5, 1, -1).astype(np.int8)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.0, weight_decay=1e-5)
    n = x.shape[0]

    def step():
        net.eval()
        with torch.no_grad():
            u_ben = torch.sign(net(xt))
        b = torch.from_numpy(saat.codes.mainstay(labels, train_codes, labels).astype(np.float32))
        net.train()
        xa = torch_pgd(torch, net, xt, b, 7)
        out = net(torch.cat([xa, xt]).contiguous(memory_format=torch.channels_last))
        o_adv, o_ben = out[:n], out[n:]
        s = (yt @ yt.T > 0).float()
        th = 0.5 * o_ben @ u_ben.T
        l_hash = (torch.nn.functional.softplus(th) - s * th).mean() + 50 * ((o_ben - o_ben.sign()) ** 2).sum() / (n * n)
        loss = l_hash - (o_adv * b).mean() + 1e-4 * ((o_adv - o_adv.sign()) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def time_probe(side: str, reps: int) -> dict:
    """Run in a subprocess: median seconds of forward, forward+backward to the input, PGD-10 and
    one SAAT AT step for ONE side. Each side gets a process of its own because the two libraries'
    thread pools (OpenBLAS pthreads for saat, OpenMP for PyTorch) keep spinning for a while after
    a call: interleaving them in one process slows whichever runs second (measured here: PyTorch's
    forward 11.5 ms alone, ~40 ms interleaved with saat), which made the ratios meaningless."""
    x, g, labels = data()
    model = saat.HashingModel("cnn-small", BITS, seed=0)
    at_model = saat.HashingModel("cnn-small", BITS, seed=0)
    if side == "saat":
        pgd = saat.attacks.PGD(model, eps=EPS, step=STEP, steps=10)
        fns = {"forward": lambda: model.forward(x),
               "forward+backward to input": lambda: model.input_gradient(x, g),
               "PGD-10": lambda: pgd(x),
               "SAAT AT step (PGD-7 + fwd/bwd + SGD)": saat_at_step(at_model, x, labels)}
    else:
        torch = import_torch()
        net = torch_net(torch, model)
        xt = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
        gt = torch.from_numpy(g)

        def fwd():
            with torch.no_grad():
                net(xt)

        def fwdbwd():
            # gradient to the input only (as saat's input_gradient): parameter gradients skipped
            xi = xt.clone().requires_grad_(True)
            torch.autograd.grad(net(xi), xi, gt)

        def pgd10():
            with torch.no_grad():
                codes = torch.sign(net(xt))
            torch_pgd(torch, net, xt, codes, 10)
        fns = {"forward": fwd, "forward+backward to input": fwdbwd, "PGD-10": pgd10,
               "SAAT AT step (PGD-7 + fwd/bwd + SGD)": torch_at_step(torch, torch_net(torch, at_model), x, labels)}
    out = {}
    for name, fn in fns.items():
        r = max(3, reps // 2) if name.startswith(("PGD", "SAAT")) else reps
        out[name] = alternate({name: fn}, r, warmup=3)[name]   # 3: allocator and page warm-up
    return out


def run_probe(flag: str, side: str, reps: int = 0) -> dict:
    """Run this script with ``flag side`` in a fresh interpreter and return its JSON line."""
    cmd = [sys.executable, os.path.abspath(__file__), flag, side, "--repeats", str(reps or 1)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory_probe(side: str) -> dict:
    """Run in a subprocess: peak RSS growth (MiB) during one AT step (the first, so workspace
    allocation counts). Linux: VmRSS before, reset VmHWM through /proc/self/clear_refs ("5"),
    VmHWM after. Elsewhere: ru_maxrss after minus ru_maxrss before."""
    import resource
    x, _, labels = data()
    model = saat.HashingModel("cnn-small", BITS, seed=0)
    if side == "torch":
        torch = import_torch()
        if torch is None:
            return {"error": "PyTorch not installed"}
        step = torch_at_step(torch, torch_net(torch, model), x, labels)
        torch.zeros(1).sum()  # initialise the runtime before the baseline
    else:
        step = saat_at_step(model, x, labels)
    saat.codes.mainstay(labels, np.ones((BATCH, BITS), np.int8), labels)

    def status(key):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])  # kB
        raise KeyError(key)
    try:
        before = status("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        step()
        peak = status("VmHWM")
        method = "VmHWM after - VmRSS before (clear_refs reset)"
    except (OSError, KeyError):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        step()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        method = "ru_maxrss delta"
    return {"mib": (peak - before) / 1024, "method": method}


def run_memory(side: str) -> dict:
    env = dict(os.environ)
    try:
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--memory-probe", side],
                             capture_output=True, text=True, env=env, timeout=600, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])
    except Exception as e:  # noqa: BLE001 - reported in the table
        return {"error": str(e).splitlines()[0][:80]}


# --------------------------------------------------------------------------- conv vs sgemm

CONVS = [("conv1 3->32 3x3 p1 @32x32", (BATCH, 3, 32, 32), 32), ("conv2 32->64 3x3 p1 @16x16", (BATCH, 32, 16, 16), 64)]


def conv_rows(repeats, torch):
    rng = np.random.default_rng(0)
    rows = []
    for name, xs, o in CONVS:
        n, c, h, w = xs
        x = rng.random(xs, dtype=np.float32)
        wt = rng.standard_normal((o, c, 3, 3)).astype(np.float32)
        b = rng.standard_normal(o).astype(np.float32)
        y = np.empty((n, o, h, w), np.float32)
        m, k, cols = o, c * 9, n * h * w
        flop = 2 * m * k * cols
        A = rng.standard_normal((m, k)).astype(np.float32)
        B = rng.standard_normal((k, cols)).astype(np.float32)
        C = np.empty((m, cols), np.float32)
        fns = {"conv": lambda: saat.kernels.conv2d(x, wt, b, y, stride=1, padding=1),
               "gemm": lambda: saat.kernels.sgemm(A, B, C)}
        if torch is not None:
            xt = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
            wtt, bt = torch.from_numpy(wt), torch.from_numpy(b)

            def tconv():
                with torch.no_grad():
                    torch.nn.functional.conv2d(xt, wtt, bt, padding=1)
            fns["torch"] = tconv
        t = blocks(fns, repeats)
        if torch is not None:
            ref = torch.nn.functional.conv2d(torch.from_numpy(x), wtt, bt, padding=1).numpy()
            np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
        rows.append((name, flop, t))
    a = rng.standard_normal((1024, 1024)).astype(np.float32)
    c = np.empty_like(a)
    t1024 = blocks({"gemm": lambda: saat.kernels.sgemm(a, a, c)}, repeats)["gemm"]
    return rows, 2 * 1024 ** 3 / t1024 / 1e9


# --------------------------------------------------------------------------- MAP@5000

def map_rows(repeats):
    from bench_map import ap_from_ranking, numpy_rank
    from saat import metrics
    nq, nd, bits, classes, k = 1000, 100_000, 64, 20, 5000
    rng = np.random.default_rng(0)
    q = np.where(rng.random((nq, bits)) > 0.5, 1, -1).astype(np.int8)
    d = np.where(rng.random((nd, bits)) > 0.5, 1, -1).astype(np.int8)
    ql = (rng.random((nq, classes)) < 0.1).astype(np.uint8)
    dl = (rng.random((nd, classes)) < 0.1).astype(np.uint8)
    out = {}
    res = {}

    def s_map():
        res["saat"] = metrics.map_at_k(q, d, ql, dl, k, return_ap=True)
    fns = {"saat": s_map}
    try:
        import faiss
    except ImportError:
        faiss = None
    if faiss is not None:
        index = faiss.IndexBinaryFlat(bits)
        index.add(np.packbits(d > 0, axis=1))
        qp = np.packbits(q > 0, axis=1)

        def f_map():
            _, ids = index.search(qp, k)
            res["faiss"] = (ids, ap_from_ranking(ids, ql, dl))
        fns["faiss"] = f_map
    t = alternate(fns, repeats)
    t0 = time.perf_counter()
    res["np"] = numpy_rank(q, d, k)
    t_np = time.perf_counter() - t0
    r_saat = metrics.hamming_rank(q, d, k)
    np.testing.assert_array_equal(r_saat, res["np"])
    out["saat"] = t["saat"]
    out["numpy"] = t_np
    out["identical"] = "saat == numpy stable argsort"
    m_saat, ap_saat = res["saat"]
    if faiss is not None:
        ids, ap_f = res["faiss"]
        np.testing.assert_array_equal(r_saat, ids)
        np.testing.assert_allclose(ap_saat, ap_f, rtol=1e-12, atol=1e-15)
        out["faiss"] = t["faiss"]
        out["identical"] += " == faiss (rankings and per-query AP)"
        out["faiss_version"] = faiss.__version__
    out["map"] = m_saat
    return out


# --------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--quick", action="store_true", help="fewer repeats, skip MAP")
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternating saat/torch processes for the network rows (default 3)")
    ap.add_argument("--memory-probe", choices=["saat", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--time-probe", choices=["saat", "torch"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_probe:
        print(json.dumps(memory_probe(args.memory_probe)))
        return
    if args.time_probe:
        print(json.dumps(time_probe(args.time_probe, args.repeats)))
        return
    reps = 3 if args.quick else args.repeats
    torch = import_torch()
    info = saat.info()
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print("machine:", cpu_model(), f"| {os.cpu_count()} logical CPUs | load avg {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}")
    print(f"BLAS: {info['blas']} | core {info['blas_core']} x{info['blas_threads']} threads")
    print("saat.info():", info)
    print("peers: torch " + (f"{torch.__version__} (CPU, channels_last, 2 threads)" if torch else "NOT INSTALLED (rows skipped)"))

    rows = []  # (name, saat, peer, unit, target, note) ; ratio = saat/peer for times

    net_rows = [("forward", 0.7, ""), ("forward+backward to input", None, ""), ("PGD-10", 0.5, ""),
                ("SAAT AT step (PGD-7 + fwd/bwd + SGD)", 0.5,
                 "saat: SAATTraining.fit on 64 images (includes fit's U_ben encode; torch does the same)")]
    sides = ["saat"] + (["torch"] if torch is not None else [])
    per_round = {side: [] for side in sides}
    for _ in range(args.rounds):          # alternate whole processes: saat, torch, saat, torch, ...
        for side in sides:
            per_round[side].append(run_probe("--time-probe", side, reps))
    med = {side: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for side, rs in per_round.items()}
    for name, target, note in net_rows:
        rows.append((name, med["saat"][name] * 1e3, med["torch"][name] * 1e3 if "torch" in med else None, "ms",
                     target, note))

    mem_s = run_memory("saat")
    mem_p = run_memory("torch") if torch is not None else {"error": "PyTorch not installed"}
    rows.append(("AT step peak memory", mem_s.get("mib"), mem_p.get("mib"), "MiB", 1.0,
                 "own subprocess each; " + mem_s.get("method", mem_s.get("error", "")) +
                 ("" if "mib" in mem_p else f"; torch: {mem_p.get('error')}")))

    conv, g1024 = conv_rows(reps, torch)
    conv_notes = []
    for name, flop, t in conv:
        gf = flop / t["conv"] / 1e9
        gg = flop / t["gemm"] / 1e9
        rows.append((f"{name} fwd", gf, gg, "GFLOP/s", None,
                     f"peer = sgemm on the same GEMM shape; {100 * gf / g1024:.0f}% of sgemm 1024^3"
                     + (f"; torch conv {flop / t['torch'] / 1e9:.0f} GFLOP/s" if "torch" in t else "")))
        conv_notes.append(gf / gg)
    rows.append(("sgemm 1024^3 (saat.kernels.sgemm)", g1024, None, "GFLOP/s", None, "OpenBLAS via the bridge"))

    if not args.quick:
        mp = map_rows(max(3, reps // 3))
        rows.append(("MAP@5000 1k q x 100k 64-bit vs faiss", mp["saat"] * 1e3, mp.get("faiss") and mp["faiss"] * 1e3,
                     "ms", 0.2, ("faiss " + mp["faiss_version"] + " IndexBinaryFlat search + numpy AP"
                                 if "faiss" in mp else "faiss NOT INSTALLED") + f"; MAP={mp['map']:.6f}; {mp['identical']}"))
        rows.append(("  ... vs numpy stable-argsort ranking", mp["saat"] * 1e3, mp["numpy"] * 1e3, "ms", None,
                     "numpy = ranking only (GEMM distances + argsort)"))

    print(f"\ncnn-small, batch {BATCH}, {BITS} bits; network rows: each side in its own process, "
          f"{args.rounds} alternating processes per side, median of per-process medians of {reps} runs "
          f"(PGD/AT rows: {max(3, reps // 2)})\n")
    hdr = f"{'benchmark':40s} {'saat':>10s} {'peer':>10s} {'unit':>8s} {'saat/peer':>10s} {'target':>8s} {'met':>4s}  note"
    print(hdr)
    print("-" * len(hdr))
    for name, s, p, unit, target, note in rows:
        ss = "-" if s is None else f"{s:10.2f}"
        ps = "-" if p is None else f"{p:10.2f}"
        if s is None or p is None:
            ratio, met = "-", "-"
        elif unit == "GFLOP/s":
            ratio, met = f"{s / p:10.2f}", "-"
        else:
            ratio = f"{s / p:10.2f}"
            met = "-" if target is None else ("yes" if s / p <= target else "no")
        tg = "-" if target is None else f"<={target:g}"
        print(f"{name:40s} {ss:>10s} {ps:>10s} {unit:>8s} {ratio:>10s} {tg:>8s} {met:>4s}  {note}")
    worst = min(conv_notes) if conv_notes else None
    if worst is not None:
        print(f"\nconv target (>= 60% of sgemm GFLOP/s): conv/sgemm-same-shape min {worst:.2f}; "
              f"conv/sgemm-1024^3: " + ", ".join(f"{flop / t['conv'] / 1e9 / g1024:.2f}" for _, flop, t in conv))
    print("peer = PyTorch for network rows (not installed -> '-'), faiss for MAP (target ratio <= 0.2 = >=5x faster).")
    print("memory: each side runs one AT step in a fresh subprocess after building model and data; "
          "peak = VmHWM after the step (reset via /proc/self/clear_refs) minus VmRSS just before it.")


if __name__ == "__main__":
    main()
