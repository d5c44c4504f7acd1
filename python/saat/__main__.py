"""Command line: ``python -m saat demo|train|attack|defend|table|info``."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _data(args):
    from . import datasets
    if getattr(args, "data", None):
        return datasets.load_list_dataset(args.data, image_size=args.image_size)
    return datasets.mosaic(n_train=args.n_train, n_database=args.n_database, n_query=args.n_query, seed=args.data_seed)


def _add_data(p):
    p.add_argument("--data", help="folder in the papers' list format (train/test/database _img.txt and _label.txt); "
                                  "default: the embedded mosaic benchmark")
    p.add_argument("--image-size", type=int, default=224, help="crop size for --data images (default 224)")
    p.add_argument("--n-train", type=int, default=3000, help="mosaic training images (default 3000)")
    p.add_argument("--n-database", type=int, default=10000, help="mosaic database images (default 10000)")
    p.add_argument("--n-query", type=int, default=500, help="mosaic queries (default 500)")
    p.add_argument("--data-seed", type=int, default=0, help="mosaic seed (default 0)")


def _add_model(p):
    p.add_argument("--backbone", default="cnn-small", choices=["cnn-small", "alexnet", "vgg11"])
    p.add_argument("--bits", type=int, default=32)
    p.add_argument("--loss", default="dpsh")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="saat-out", help="output folder (default saat-out)")


def cmd_info(args):
    import saat
    print(json.dumps(saat.info(), indent=1))


def cmd_train(args):
    import saat
    data = _data(args)
    m = saat.HashingModel(args.backbone, args.bits, seed=args.seed)
    t0 = time.perf_counter()
    res = saat.train(m, data.train.images, data.train.labels, loss=args.loss, epochs=args.epochs,
                     batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"{args.backbone}-{args.loss}-{args.bits}.npz")
    m.save(path)
    m.eval()
    mp = saat.metrics.map_at_k(m.encode(data.query.images), m.encode(data.database.images), data.query.labels,
                               data.database.labels, k=args.k)
    print(f"trained in {time.perf_counter() - t0:.0f} s; loss {res.history[0]:.4f} -> {res.history[-1]:.4f}; "
          f"MAP@{args.k} {mp:.4f}; saved {path}")


def cmd_attack(args):
    import saat
    from .experiments import ExperimentConfig, _attack
    data = _data(args)
    m = saat.HashingModel.load(args.model).eval()
    cfg = ExperimentConfig(seed=args.seed)
    for f in ("pgd_steps", "saat_steps", "center_steps", "hag_steps", "sdha_steps", "dhta_steps", "tha_steps"):
        if args.steps:
            setattr(cfg, f, args.steps)
    db = m.encode(data.database.images)
    tr = m.encode(data.train.images)
    q_img, q_lab = data.query.images[: args.n_attack], data.query.labels[: args.n_attack]
    atk = _attack(args.attack, m, tr, data.train.labels, db, data.database.labels, cfg)
    t = saat.attacks.select_target_labels(q_lab, data.database.labels, seed=args.seed) if atk.targeted else None
    res = saat.evaluate_attack(m, atk, q_img, q_lab, db, data.database.labels, k=args.k, target_labels=t)
    print(json.dumps({k: v for k, v in res.items() if not hasattr(v, "shape")}, indent=1))


def cmd_defend(args):
    import saat
    data = _data(args)
    m = saat.HashingModel.load(args.model)
    d = saat.defences.DEFENCES[args.defence](m, loss=args.loss, epochs=args.epochs, seed=args.seed)
    d.fit(data.train.images, data.train.labels)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"{os.path.splitext(os.path.basename(args.model))[0]}-{args.defence}.npz")
    m.save(path)
    print(f"saved {path}")


def cmd_table(args, profile=None):
    from .experiments import robustness_table
    data = _data(args)
    over = {"bits": tuple(args.bits_list), "loss": args.loss, "backbone": args.backbone, "seed": args.seed}
    if args.defence:
        over["defences"] = tuple(["none"] + [d for d in args.defence if d != "none"])
    t0 = time.perf_counter()
    table = robustness_table(data, profile or args.profile, out=args.out, **over)
    print()
    print("MAP@k (%): clean and under each non-targeted attack; *_t columns: t-MAP@k (%) of targeted attacks "
          "on the undefended model; theory_*: the guide code itself")
    print(table.to_markdown())
    print(f"\nwrote {args.out}/table.json, table.md and PR / P@N plots in {time.perf_counter() - t0:.0f} s")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m saat", description="saat: robust deep-hashing retrieval (SAAT, CgAT)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("info", help="build and runtime facts")
    p.set_defaults(fn=cmd_info)
    for name, helptext in [("demo", "the papers' story end to end on the embedded mosaic benchmark"),
                           ("table", "robustness table for chosen bits/defences")]:
        p = sub.add_parser(name, help=helptext)
        _add_data(p)
        _add_model(p)
        p.add_argument("--bits-list", type=int, nargs="+", default=[32], help="bit lengths (default 32)")
        p.add_argument("--defence", nargs="+", choices=["none", "atrdh", "cgat", "saat"], help="defences (default all)")
        p.add_argument("--profile", default="demo", choices=["demo", "paper"], help="iteration/epoch preset")
        p.set_defaults(fn=cmd_table)
    p = sub.add_parser("train", help="train a clean hashing model")
    _add_data(p)
    _add_model(p)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--k", type=int, default=5000)
    p.set_defaults(fn=cmd_train)
    p = sub.add_parser("attack", help="attack a saved model and report MAP")
    _add_data(p)
    _add_model(p)
    p.add_argument("--model", required=True, help=".npz written by train/defend")
    p.add_argument("--attack", default="saat", choices=["pgd", "saat", "saat_t", "center", "hag", "sdha", "dhta", "p2p", "tha"])
    p.add_argument("--steps", type=int, help="override the attack's iteration count")
    p.add_argument("--n-attack", type=int, default=250, help="queries to attack (default 250)")
    p.add_argument("--k", type=int, default=5000)
    p.set_defaults(fn=cmd_attack)
    p = sub.add_parser("defend", help="adversarially train a saved model")
    _add_data(p)
    _add_model(p)
    p.add_argument("--model", required=True)
    p.add_argument("--defence", required=True, choices=["atrdh", "cgat", "saat"])
    p.add_argument("--epochs", type=int, default=3)
    p.set_defaults(fn=cmd_defend)
    args = ap.parse_args(argv)
    try:
        args.fn(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError) as e:   # bad input: one line, no traceback
        print(f"saat {args.cmd}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
