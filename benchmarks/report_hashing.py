"""Clean retrieval quality and training time of the hashing losses on the mosaic benchmark
(issue 4's report): DPSH at 16/32/64 bits and every other loss at 32 bits, with the demo's recipe
(CSQ backbone pretraining, then the loss; see saat.training.pretrain_backbone).

Run: python benchmarks/report_hashing.py [--epochs 10] [--k 2000]
"""
import argparse
import time

import numpy as np

import saat


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--pretrain-epochs", type=int, default=5)
    ap.add_argument("--k", type=int, default=2000)
    ap.add_argument("--lr", type=float, default=0.0005)
    a = ap.parse_args()
    d = saat.datasets.mosaic(n_train=3000, n_database=10000, n_query=500, seed=0)
    mean, std = saat.training.channel_stats(d.train.images)
    rng = np.random.default_rng(0)
    chance = saat.metrics.map_at_k(np.where(rng.random((500, 32)) > 0.5, 1, -1), np.where(rng.random((10000, 32)) > 0.5, 1, -1),
                                   d.query.labels, d.database.labels, k=a.k)
    print(f"mosaic 3000/10000/500, MAP@{a.k}; random codes: {chance:.4f}")
    print(f"{'loss':8s} {'bits':>4s} {'MAP':>7s} {'train s':>8s}")
    runs = [("dpsh", 16), ("dpsh", 32), ("dpsh", 64)] + [(l, 32) for l in saat.losses.LOSSES if l != "dpsh"]
    for loss, bits in runs:
        t = time.perf_counter()
        m = saat.HashingModel("cnn-small", bits, seed=0, mean=mean, std=std)
        saat.training.pretrain_backbone(m, d.train.images, d.train.labels, epochs=a.pretrain_epochs, progress=False)
        saat.train(m, d.train.images, d.train.labels, loss=loss, epochs=a.epochs, lr=a.lr, seed=0, progress=False)
        secs = time.perf_counter() - t
        m.eval()
        mp = saat.metrics.map_at_k(m.encode(d.query.images), m.encode(d.database.images), d.query.labels,
                                   d.database.labels, k=a.k)
        print(f"{loss:8s} {bits:4d} {mp:7.4f} {secs:8.1f}", flush=True)


if __name__ == "__main__":
    main()
