"""Every saat benchmark in one run (``make bench``): the cnn-small table, then the paper-scale ones.

Paper scale (``paper_part``): alexnet and vgg11 at 224×224, batch 16, 32 bits: forward, forward +
backward to the input, PGD-10, one SAAT adversarial-training step and its peak memory, each side
in processes of its own (PyTorch: the twin model of ``torch_peers.py``); then every convolution of
the two backbones (at the network rows' batch, 16 by default) in GFLOP/s of direct-convolution
FLOPs against sgemm 2048³. Each call goes through ``saat.kernels.conv2d``, which transforms a
Winograd layer's filters and allocates its scratch on every call (a model's layers keep both
between calls): at batch 4 those fixed costs were half of a 13 or 14 px layer's time.

Rows of the first table (cnn-small = the reference CNN of the project brief, batch 64, 32 bits, 2 threads):
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

    PYTHONPATH=python python benchmarks/run_all.py [--repeats 9] [--rounds 3] [--quick] [--only toy|paper]
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
# the network rows, in table order
NET_ROWS = ("forward", "forward+backward to input", "PGD-10", "SAAT AT step (PGD-7 + fwd/bwd + SGD)")


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


def data(shape=(3, 32, 32), batch=BATCH, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((batch, *shape), dtype=np.float32)
    g = rng.standard_normal((batch, BITS)).astype(np.float32)
    labels = np.eye(10, dtype=np.float32)[rng.integers(0, 10, batch)]
    return x, g, labels


def torch_net(torch, model):
    from torch_peers import torch_twin
    return torch_twin(torch, model)


def cpu_flags() -> str:
    """The CPU's SIMD flags that decide the kernels OpenBLAS and saat's code run."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return " ".join(sorted(f for f in have if f.startswith(("avx", "fma", "sse4", "f16c", "amx"))))
    except OSError:
        pass
    return "unknown"


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
    """One SAAT adversarial-training step: SAATTraining.fit on exactly one batch (all of x).
    fit also encodes the images once (U_ben = sign F(x), eval mode) before the step."""
    t = saat.defences.SAATTraining(model, epochs=1, batch_size=x.shape[0])

    def step():
        t.fit(x, labels, progress=False)
    return step


def torch_at_step(torch, net, x, labels):
    """The same step in PyTorch: U_ben = sign F(x) (as fit's prepare), mainstay codes b,
    PGD-7 on mean(F(x')*b) from a random start, then one stacked forward of [x'; x], DPSH-like
    clean loss - mean(F(x') * b) + 1e-4 * quantisation, backward, SGD (lr 0.05, wd 1e-5)."""
    xt = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
    yt = torch.from_numpy(labels)
    train_codes = np.where(np.random.default_rng(1).random((x.shape[0], BITS)) > 0.5, 1, -1).astype(np.int8)
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


def time_probe(side: str, reps: int, backbone: str = "cnn-small", batch: int = BATCH, rows=None) -> dict:
    """Run in a subprocess: median seconds of forward, forward+backward to the input, PGD-10 and
    one SAAT AT step for ONE side. Each side gets a process of its own because the two libraries'
    thread pools (OpenBLAS pthreads for saat, OpenMP for PyTorch) keep spinning for a while after
    a call: interleaving them in one process slows whichever runs second (measured here: PyTorch's
    forward 11.5 ms alone, ~40 ms interleaved with saat), which made the ratios meaningless.
    The 224×224 backbones run PGD and the AT step `reps` times after one warm-up run."""
    model = saat.HashingModel(backbone, BITS, seed=0)
    at_model = saat.HashingModel(backbone, BITS, seed=0)
    x, g, labels = data(model.input_shape, batch)
    paper = backbone != "cnn-small"
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
        if rows is not None and name not in rows:
            continue
        if paper:
            r, warm = reps, 1
        else:
            r, warm = (max(3, reps // 2) if name.startswith(("PGD", "SAAT")) else reps), 3  # allocator, pages
        out[name] = alternate({name: fn}, r, warmup=warm)[name]
    return out


def run_probe(flag: str, side: str, reps: int = 0, backbone: str = "cnn-small", batch: int = BATCH,
              rows=NET_ROWS) -> dict:
    """Run this script with ``flag side`` in a fresh interpreter and return its JSON line."""
    cmd = [sys.executable, os.path.abspath(__file__), flag, side, "--repeats", str(reps or 1),
           "--backbone", backbone, "--batch", str(batch), "--rows", *rows]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory_probe(side: str, backbone: str = "cnn-small", batch: int = BATCH) -> dict:
    """Run in a subprocess: peak RSS growth (MiB) during one AT step (the first, so workspace
    allocation counts). Linux: VmRSS before, reset VmHWM through /proc/self/clear_refs ("5"),
    VmHWM after. Elsewhere: ru_maxrss after minus ru_maxrss before."""
    import resource
    model = saat.HashingModel(backbone, BITS, seed=0)
    x, _, labels = data(model.input_shape, batch)
    if side == "torch":
        torch = import_torch()
        if torch is None:
            return {"error": "PyTorch not installed"}
        step = torch_at_step(torch, torch_net(torch, model), x, labels)
        torch.zeros(1).sum()  # initialise the runtime before the baseline
    else:
        step = saat_at_step(model, x, labels)
    saat.codes.mainstay(labels, np.ones((batch, BITS), np.int8), labels)

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


def run_memory(side: str, backbone: str = "cnn-small", batch: int = BATCH) -> dict:
    env = dict(os.environ)
    try:
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--memory-probe", side,
                              "--backbone", backbone, "--batch", str(batch)],
                             capture_output=True, text=True, env=env, timeout=1800, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])
    except Exception as e:  # noqa: BLE001 - reported in the table
        return {"error": str(e).splitlines()[0][:80]}


# --------------------------------------------------------------------------- conv vs sgemm

CONVS = [("conv1 3->32 3x3 p1 @32x32", (BATCH, 3, 32, 32), 32), ("conv2 32->64 3x3 p1 @16x16", (BATCH, 32, 16, 16), 64)]


def time_conv(x, wt, b, stride, padding, gemm, repeats, torch):
    """Seconds of saat's conv2d, of `gemm` (the sgemm peer) and of torch's conv2d when installed,
    each timed in a block of its own; torch's output must equal saat's within 1e-4."""
    n, o = x.shape[0], wt.shape[0]
    oh = (x.shape[2] + 2 * padding - wt.shape[2]) // stride + 1
    y = np.empty((n, o, oh, oh), np.float32)
    fns = {"conv": lambda: saat.kernels.conv2d(x, wt, b, y, stride=stride, padding=padding), "gemm": gemm}
    if torch is not None:
        xt = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
        wtt, bt = torch.from_numpy(wt), torch.from_numpy(b)

        def tconv():
            with torch.no_grad():
                return torch.nn.functional.conv2d(xt, wtt, bt, stride=stride, padding=padding)
        fns["torch"] = tconv
    t = blocks(fns, repeats)
    if torch is not None:
        np.testing.assert_allclose(y, tconv().numpy(), rtol=1e-4, atol=1e-4)
    return t


def sgemm_gflops(n, repeats):
    """GFLOP/s of saat.kernels.sgemm on n×n×n."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    c = np.empty_like(a)
    return 2 * n ** 3 / blocks({"gemm": lambda: saat.kernels.sgemm(a, a, c)}, repeats)["gemm"] / 1e9


def conv_rows(repeats, torch):
    """cnn-small's two convolutions (batch 64) against sgemm on the batch's whole im2col shape
    (O × C·9 × N·H·W); also returns sgemm 1024³."""
    rng = np.random.default_rng(0)
    rows = []
    for name, xs, o in CONVS:
        n, c, h, w = xs
        x = rng.random(xs, dtype=np.float32)
        wt = rng.standard_normal((o, c, 3, 3)).astype(np.float32)
        b = rng.standard_normal(o).astype(np.float32)
        A = rng.standard_normal((o, c * 9)).astype(np.float32)
        B = rng.standard_normal((c * 9, n * h * w)).astype(np.float32)
        C = np.empty((o, n * h * w), np.float32)
        t = time_conv(x, wt, b, 1, 1, lambda: saat.kernels.sgemm(A, B, C), repeats, torch)
        rows.append((name, 2 * o * c * 9 * n * h * w, t))
    return rows, sgemm_gflops(1024, repeats)


# (name, C, O, H, k, stride, padding): every convolution of the two paper backbones at 224×224.
PAPER_CONVS = [
    ("alexnet c1 3->64 11x11/4 @224", 3, 64, 224, 11, 4, 2), ("alexnet c2 64->192 5x5 @27", 64, 192, 27, 5, 1, 2),
    ("alexnet c3 192->384 3x3 @13", 192, 384, 13, 3, 1, 1), ("alexnet c4 384->256 3x3 @13", 384, 256, 13, 3, 1, 1),
    ("alexnet c5 256->256 3x3 @13", 256, 256, 13, 3, 1, 1),
    ("vgg11 c1 3->64 @224", 3, 64, 224, 3, 1, 1), ("vgg11 c2 64->128 @112", 64, 128, 112, 3, 1, 1),
    ("vgg11 c3 128->256 @56", 128, 256, 56, 3, 1, 1), ("vgg11 c4 256->256 @56", 256, 256, 56, 3, 1, 1),
    ("vgg11 c5 256->512 @28", 256, 512, 28, 3, 1, 1), ("vgg11 c6 512->512 @28", 512, 512, 28, 3, 1, 1),
    ("vgg11 c7,c8 512->512 @14", 512, 512, 14, 3, 1, 1),
]


def paper_conv_rows(repeats, torch, batch):
    """Forward GFLOP/s of every paper-backbone convolution (direct-convolution FLOPs, so a fast
    algorithm can exceed the GEMM), against sgemm on the layer's per-image im2col GEMM shape
    (O × C·k² × OH·OW) and against sgemm 2048³; torch's conv2d on the same input when installed."""
    rng = np.random.default_rng(0)
    rows = []
    for name, c, o, h, k, st, pd in PAPER_CONVS:
        oh = (h + 2 * pd - k) // st + 1
        x = rng.random((batch, c, h, h), dtype=np.float32)
        wt = (rng.standard_normal((o, c, k, k)) / np.sqrt(c * k * k)).astype(np.float32)
        b = rng.standard_normal(o).astype(np.float32)
        A = rng.standard_normal((o, c * k * k)).astype(np.float32)
        B = rng.standard_normal((c * k * k, oh * oh)).astype(np.float32)
        C = np.empty((o, oh * oh), np.float32)
        t = time_conv(x, wt, b, st, pd, lambda: [saat.kernels.sgemm(A, B, C) for _ in range(batch)], repeats, torch)
        rows.append((name, 2 * batch * o * c * k * k * oh * oh, t))
    return rows, sgemm_gflops(2048, max(3, repeats))


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

def print_rows(rows):
    hdr = f"{'benchmark':40s} {'saat':>10s} {'peer':>10s} {'unit':>8s} {'saat/peer':>10s} {'target':>8s} {'met':>4s}  note"
    print(hdr)
    print("-" * len(hdr))
    for name, s, p, unit, target, note in rows:
        ss = "-" if s is None else f"{s:10.2f}"
        ps = "-" if p is None else f"{p:10.2f}"
        if s is None or p is None:
            ratio, met = "-", "-"
        elif unit == "GFLOP/s":
            ratio = f"{s / p:10.2f}"
            met = "-" if target is None else ("yes" if s / p >= target else "no")
        else:
            ratio = f"{s / p:10.2f}"
            met = "-" if target is None else ("yes" if s / p <= target else "no")
        tg = "-" if target is None else (f">={target:g}" if unit == "GFLOP/s" else f"<={target:g}")
        print(f"{name:40s} {ss:>10s} {ps:>10s} {unit:>8s} {ratio:>10s} {tg:>8s} {met:>4s}  {note}")




def network_rows(backbone, batch, reps, rounds, torch, targets, fast=False):
    """Time and memory rows of one backbone: each side in processes of its own, alternating.
    `fast`: only the forward and forward+backward rows, no memory probe."""
    sides = ["saat"] + (["torch"] if torch is not None else [])
    names = NET_ROWS[:2] if fast else NET_ROWS
    per_round = {side: [] for side in sides}
    for _ in range(rounds):          # alternate whole processes: saat, torch, saat, torch, ...
        for side in sides:
            per_round[side].append(run_probe("--time-probe", side, reps, backbone, batch, names))
    med = {side: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for side, rs in per_round.items()}
    rows = []
    for name in names:
        note = f"saat: SAATTraining.fit on {batch} images (includes fit's U_ben encode; torch does the same)" \
            if name.startswith("SAAT") else ""
        rows.append((name, med["saat"][name] * 1e3, med["torch"][name] * 1e3 if "torch" in med else None, "ms",
                     targets.get(name), note))
    if fast:
        return rows
    mem_s = run_memory("saat", backbone, batch)
    mem_p = run_memory("torch", backbone, batch) if torch is not None else {"error": "PyTorch not installed"}
    rows.append(("AT step peak memory", mem_s.get("mib"), mem_p.get("mib"), "MiB", 1.0,
                 "own subprocess each; " + mem_s.get("method", mem_s.get("error", "")) +
                 ("" if "mib" in mem_p else f"; torch: {mem_p.get('error')}")))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--quick", action="store_true", help="fewer repeats, skip MAP and the 224x224 network rows")
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternating saat/torch processes for the network rows (default 3)")
    ap.add_argument("--paper-rounds", type=int, default=1,
                    help="alternating saat/torch processes per 224x224 backbone (default 1)")
    ap.add_argument("--paper-repeats", type=int, default=2,
                    help="timed runs per 224x224 row after one warm-up (default 2)")
    ap.add_argument("--paper-batch", type=int, default=16, help="batch of the 224x224 rows (default 16)")
    ap.add_argument("--backbones", nargs="+", default=["alexnet", "vgg11"], choices=["alexnet", "vgg11"],
                    help="224x224 backbones of the paper part (default both)")
    ap.add_argument("--no-layers", action="store_true", help="skip the per-layer conv rows of the paper part")
    ap.add_argument("--fast", action="store_true",
                    help="paper part: only the forward and forward+backward rows (no PGD, AT step, memory, "
                         "layers), so several --paper-rounds fit in minutes")
    ap.add_argument("--rows", nargs="+", default=list(NET_ROWS), help=argparse.SUPPRESS)
    ap.add_argument("--only", choices=["toy", "paper"], help="run only the cnn-small or only the 224x224 part")
    ap.add_argument("--memory-probe", choices=["saat", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--time-probe", choices=["saat", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--backbone", default="cnn-small", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=BATCH, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_probe:
        print(json.dumps(memory_probe(args.memory_probe, args.backbone, args.batch)))
        return
    if args.time_probe:
        print(json.dumps(time_probe(args.time_probe, args.repeats, args.backbone, args.batch, args.rows)))
        return
    reps = 3 if args.quick else args.repeats
    torch = import_torch()
    info = saat.info()
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print("machine:", cpu_model(), f"| {os.cpu_count()} logical CPUs | load avg {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}")
    print("CPU flags:", cpu_flags())
    print(f"BLAS: {info['blas']} | core {info['blas_core']} x{info['blas_threads']} threads")
    print("saat.info():", info)
    print("peers: torch " + (f"{torch.__version__} (CPU, channels_last, 2 threads)" if torch else "NOT INSTALLED (rows skipped)"))

    if args.only != "paper":
        toy_part(args, reps, torch)
    if args.only != "toy" and not args.quick:
        paper_part(args, torch)
    print("peer = PyTorch for network rows (not installed -> '-'), faiss for MAP (target ratio <= 0.2 = >=5x faster).")
    print("memory: each side runs one AT step in a fresh subprocess after building model and data; "
          "peak = VmHWM after the step (reset via /proc/self/clear_refs) minus VmRSS just before it.")


def toy_part(args, reps, torch):
    targets = {"forward": 0.7, "PGD-10": 0.5, "SAAT AT step (PGD-7 + fwd/bwd + SGD)": 0.5}
    rows = network_rows("cnn-small", BATCH, reps, args.rounds, torch, targets)
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
    print_rows(rows)
    worst = min(conv_notes) if conv_notes else None
    if worst is not None:
        print(f"\nconv target (>= 60% of sgemm GFLOP/s): conv/sgemm-same-shape min {worst:.2f}; "
              f"conv/sgemm-1024^3: " + ", ".join(f"{flop / t['conv'] / 1e9 / g1024:.2f}" for _, flop, t in conv))


def paper_part(args, torch):
    """alexnet and vgg11 at 224×224 (the papers' scale): network rows and per-layer conv rows."""
    targets = {name: 0.6 for name in NET_ROWS}
    for backbone in args.backbones:
        rows = network_rows(backbone, args.paper_batch, args.paper_repeats, args.paper_rounds, torch, targets,
                            args.fast)
        print(f"\n{backbone}, 224x224, batch {args.paper_batch}, {BITS} bits; each side in its own process, "
              f"{args.paper_rounds} alternating processes per side, median of {args.paper_repeats} runs after "
              f"one warm-up\n")
        print_rows(rows)
    if args.no_layers or args.fast:
        return
    conv, g2048 = paper_conv_rows(max(3, args.paper_repeats), torch, args.paper_batch)
    rows = []
    for name, flop, t in conv:
        gf = flop / t["conv"] / 1e9
        # issue targets: every vgg11 3×3 layer ≥ 75 %, alexnet's 11×11/4 and 5×5 layers ≥ 60 %
        target = 0.75 if name.startswith("vgg11") else (0.6 if name.startswith(("alexnet c1", "alexnet c2")) else None)
        rows.append((f"{name}", gf, g2048, "GFLOP/s", target,
                     f"{100 * gf / (flop / t['gemm'] / 1e9):.0f}% of sgemm on its im2col shape"
                     + (f"; torch {flop / t['torch'] / 1e9:.0f} GFLOP/s" if "torch" in t else "")))
    print(f"\nper-layer forward, batch {args.paper_batch}, direct-convolution FLOPs; peer = sgemm 2048^3 on this machine "
          "(saat.kernels.sgemm); saat/peer = fraction of it\n")
    print_rows(rows)


if __name__ == "__main__":
    main()
