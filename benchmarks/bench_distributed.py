"""Scale-out benchmark (part of ``make bench``): 1 vs 2 workers, one kernel thread each.

Rows:
- attack evaluation of 512 queries (SAAT attack, cnn-small, ``--steps`` iterations) sharded over
  1 or 2 Ray actors (``saat.distributed.evaluate_attack``);
- MAP@5000 of 1,000 queries against 1,000,000 codes (32 bits) split over 1 or 2 Ray actors
  (``saat.distributed.map_at_k``);
- one data-parallel SAAT adversarial-training epoch (cnn-small, ``--train-images`` images, batch
  32) under ``mpiexec -n 1`` and ``mpiexec -n 2``, each rank with one kernel thread.

For each: wall time with 1 and 2 workers (best of ``--repeats``), speed-up, efficiency
(speed-up / workers) and the fixed overhead per task: the wall time of the same call on a tiny
input (Ray: actor start, object transfer, result merge; MPI: process start, import, collectives of
one batch). Prints the machine's CPU flags with the table.

    .venv/bin/python benchmarks/bench_distributed.py [--steps 20] [--repeats 2] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))

import saat  # noqa: E402
import saat.distributed as D  # noqa: E402
from run_all import cpu_flags, cpu_model  # noqa: E402


def best(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def attack_rows(steps, repeats):
    data = saat.datasets.mosaic(n_train=600, n_database=1000, n_query=512, seed=0)
    m = saat.HashingModel("cnn-small", bits=32, seed=0)
    tc, db = m.encode(data.train.images), m.encode(data.database.images)
    atk = saat.attacks.SAATAttack(m, tc, data.train.labels, steps=steps)
    q, y, dl = data.query.images, data.query.labels, data.database.labels
    run = {w: best(lambda w=w: D.evaluate_attack(m, atk, q, y, db, dl, k=1000, shards=w), repeats) for w in (1, 2)}
    tiny = saat.attacks.SAATAttack(m, tc, data.train.labels, steps=1)
    overhead = best(lambda: D.evaluate_attack(m, tiny, q[:2], y[:2], db, dl, k=10, shards=2), repeats)
    return {"row": f"attack evaluation, 512 queries, SAAT {steps} steps", **run, "overhead": overhead}


def map_rows(repeats):
    rng = np.random.default_rng(0)
    q = np.where(rng.random((1000, 32)) < 0.5, -1, 1).astype(np.int8)
    d = np.where(rng.random((1_000_000, 32)) < 0.5, -1, 1).astype(np.int8)
    ql = (rng.random((1000, 24)) < 0.1).astype(np.uint8)
    dl = (rng.random((1_000_000, 24)) < 0.1).astype(np.uint8)
    run = {w: best(lambda w=w: D.map_at_k(q, d, ql, dl, k=5000, shards=w), repeats) for w in (1, 2)}
    overhead = best(lambda: D.map_at_k(q[:2], d[:100], ql[:2], dl[:100], k=10, shards=2), repeats)
    local = best(lambda: saat.metrics.map_at_k(q, d, ql, dl, k=5000, threads=1), 1)
    return {"row": "MAP@5000, 1,000 queries x 1,000,000 codes", **run, "overhead": overhead,
            "note": f"in-process saat.metrics.map_at_k on one thread: {local:.2f} s"}


TRAIN = textwrap.dedent('''
    import json, sys, time
    import saat
    from mpi4py import MPI
    n, tiny = int(sys.argv[1]), sys.argv[2] == "tiny"
    comm = MPI.COMM_WORLD if MPI.COMM_WORLD.Get_size() > 1 else None
    saat.kernels.set_threads(1)
    d = saat.datasets.mosaic(n_train=n, n_database=max(n, 100), n_query=8, seed=0)
    m = saat.HashingModel("cnn-small", bits=32, seed=0)
    x, y = (d.train.images[:32], d.train.labels[:32]) if tiny else (d.train.images, d.train.labels)
    MPI.COMM_WORLD.Barrier()
    t0 = time.perf_counter()
    saat.defences.SAATTraining(m, epochs=1, batch_size=32, seed=0).fit(x, y, progress=False, comm=comm)
    MPI.COMM_WORLD.Barrier()
    if MPI.COMM_WORLD.Get_rank() == 0:
        print(json.dumps(time.perf_counter() - t0))
''')


def train_rows(images, repeats):
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    mpiexec = mpiexec if os.path.exists(mpiexec) else shutil.which("mpiexec")
    if mpiexec is None:
        return {"row": "data-parallel SAAT epoch", "skipped": "mpiexec not found (pip install 'saat[mpi]')"}
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "train.py")
        with open(script, "w") as f:
            f.write(TRAIN)

        def run(n, mode):
            out = subprocess.run([mpiexec, "-n", str(n), sys.executable, script, str(images), mode],
                                 check=True, capture_output=True, text=True).stdout
            return json.loads(out.strip().splitlines()[-1])

        times = {w: min(run(w, "full") for _ in range(repeats)) for w in (1, 2)}
        overhead = min(run(2, "tiny") for _ in range(repeats))
    return {"row": f"data-parallel SAAT training epoch, {images} images, batch 32", **times, "overhead": overhead,
            "note": "overhead: one batch of 32 on 2 ranks (inner attack, collectives)"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=20, help="SAAT attack iterations (default 20)")
    ap.add_argument("--train-images", type=int, default=256, help="training images of the epoch (default 256)")
    ap.add_argument("--repeats", type=int, default=2, help="runs per measurement, best kept (default 2)")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = ap.parse_args()
    import ray
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", address="local",
             _node_ip_address="127.0.0.1")
    rows = [attack_rows(args.steps, args.repeats), map_rows(args.repeats)]
    ray.shutdown()
    rows.append(train_rows(args.train_images, args.repeats))
    print(f"\nscale-out, 1 vs 2 workers (one kernel thread each) -- {cpu_model()}")
    print(f"CPU flags: {cpu_flags()}")
    print("| workload | 1 worker (s) | 2 workers (s) | speed-up | efficiency | overhead per task (s) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        if "skipped" in r:
            print(f"| {r['row']} | skipped: {r['skipped']} | | | | |")
            continue
        s = r[1] / r[2]
        print(f"| {r['row']} | {r[1]:.2f} | {r[2]:.2f} | {s:.2f} | {s / 2:.0%} | {r['overhead']:.2f} |")
    for r in rows:
        if r.get("note"):
            print(f"- {r['row']}: {r['note']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1, default=str)


if __name__ == "__main__":
    main()
