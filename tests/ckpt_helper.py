"""Helper of test_reliability.py (issue 9, checkpoints): trains a tiny model in a subprocess.

    python ckpt_helper.py KIND CKPT OUT [--kill-at I] [--resume]

KIND: "train" (saat.train, DPSH) or "saat" (SAATTraining.fit). With --kill-at I the progress
callback SIGKILLs this very process after global batch I (no cleanup, no atexit: like a power
cut or the OOM killer). With --resume the run continues from CKPT. At the end the weights are
written to OUT (.npz).
"""
import argparse
import os
import signal
import sys

import numpy as np

import saat

EPOCHS, BATCH, EVERY = 2, 8, 3


def data():
    rng = np.random.default_rng(0)
    x = rng.random((40, 3, 32, 32), dtype=np.float32)
    y = (rng.random((40, 4)) < 0.4).astype(np.float32)
    y[:, 0] = 1
    return x, y


def run(kind, ckpt, out, kill_at=None, resume=False):
    x, y = data()
    m = saat.HashingModel("cnn-small", bits=8, seed=0)
    batches = -(-x.shape[0] // BATCH)

    def progress(epoch, batch, nb, loss, lr):
        if kill_at is not None and epoch * batches + batch == kill_at:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    kw = dict(progress=progress, checkpoint=ckpt, checkpoint_every=EVERY if ckpt else 0,
              resume=ckpt if resume else None)
    if not ckpt:
        kw = dict(progress=progress)
    if kind == "train":
        saat.train(m, x, y, loss="dpsh", epochs=EPOCHS, batch_size=BATCH, lr=0.01, seed=7, **kw)
    else:
        saat.defences.SAATTraining(m, epochs=EPOCHS, batch_size=BATCH, steps=2, seed=7).fit(x, y, **kw)
    np.savez(out, **m.state_dict())


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["train", "saat"])
    ap.add_argument("ckpt")
    ap.add_argument("out")
    ap.add_argument("--kill-at", type=int, default=None)
    ap.add_argument("--resume", action="store_true")
    a = ap.parse_args()
    run(a.kind, a.ckpt if a.ckpt != "-" else None, a.out, a.kill_at, a.resume)
