"""Command line: ``python -m saat demo|train|attack|defend|table|info``.

Choices (backbones, losses, attacks, defences) and the options of ``train``, ``attack`` and
``defend`` come from the core's registry (``saat._core.schemas()``): every parameter of the
chosen recipe or attack is an option (``--steps``, ``--lr``, …) with the schema's type and help.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from . import _schema

# Options every subcommand has for itself (the model's --seed and --loss apply to everything).
_OWN = {"seed", "loss"}


def _bool(text):
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{text}'")


def _add_schema_options(p, *kinds):
    """One option per parameter of every registry entry of ``kinds`` (``--name`` for parameter
    ``name``). The help gives each distinct description, range and default with the entries it
    belongs to. Unset options are None (the entry's default)."""
    seen = {}
    for kind in kinds:
        for name in _schema.names(kind):
            for prm in _schema.schema(kind, name)["parameters"]:
                if prm["name"] not in _OWN:
                    seen.setdefault(prm["name"], []).append((name, prm))
    for pname, users in seen.items():
        prm = users[0][1]
        kw = {"int": {"type": int}, "float": {"type": float}, "bool": {"type": _bool, "metavar": "{true,false}"},
              "choice": {"choices": prm.get("choices")}, "fractions": {"type": float, "nargs": "+"}}[prm["type"]]
        if prm["type"] in ("int", "float", "fractions"):
            kw["metavar"] = pname.upper()
        variants = {}   # (description, range) -> default -> entries
        for name, q in users:
            variants.setdefault((q["doc"], q["expected"]), {}).setdefault(_schema.format_default(q), []).append(name)
        helptext = " | ".join(f"{doc}; {expected}; default " + ", ".join(f"{d} ({', '.join(n)})" for d, n in by.items())
                              for (doc, expected), by in variants.items())
        p.add_argument("--" + pname.replace("_", "-"), dest=f"param_{pname}", default=None,
                       help=helptext.replace("%", "%%"), **kw)


def _attack_kind(name: str) -> str:
    """The registry kind of an attack name of the CLI ('generative' for ProS-GAN)."""
    return "generative" if name in _schema.names("generative") else "attack"


def _params(args, kind, name):
    """The options given for the parameters of entry ``name``; an option the entry does not have
    is an error naming it."""
    own = {p["name"] for p in _schema.schema(kind, name)["parameters"]}
    given = {k[len("param_"):]: v for k, v in vars(args).items() if k.startswith("param_") and v is not None}
    for k in given:
        if k not in own:
            raise ValueError(f"option --{k.replace('_', '-')}: {name} has no parameter '{k}' "
                             f"(its parameters: {', '.join(sorted(own)) or 'none'})")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in given.items()}


def _data(args, side=None):
    """The data set of a command: --data's list files, else the embedded mosaic benchmark, with
    images of side --image-size (default `side`, else the --backbone's input side)."""
    from . import datasets
    size = args.image_size or side or _schema.input_shape(args.backbone)[1]
    if getattr(args, "data", None):
        return datasets.load_list_dataset(args.data, image_size=size)
    n_train, n_database, n_query = _mosaic_sizes(args)
    return datasets.mosaic(n_train=n_train, n_database=n_database, n_query=n_query, seed=args.data_seed,
                           image_size=size)


#: Mosaic sizes (train, database, queries) when --n-train / --n-database / --n-query are not
#: given. The paper profile uses the benchmark's full default size: with its official clean
#: learning rate (0.01) DPSH collapses to nearly one code on 3000 training images (clean
#: MAP@5000 25.9) but converges on 5000 (86.3, fine-tuning gains +0.08). Every other command and
#: profile uses the demo's size.
MOSAIC_SIZES = {"paper": (5000, 20000, 1000)}
DEFAULT_MOSAIC_SIZE = (3000, 10000, 500)


def _mosaic_sizes(args) -> tuple:
    default = MOSAIC_SIZES.get(getattr(args, "profile", None), DEFAULT_MOSAIC_SIZE)
    given = (args.n_train, args.n_database, args.n_query)
    return tuple(d if g is None else g for g, d in zip(given, default))


def _add_data(p):
    p.add_argument("--data", help="folder in the papers' list format (train/test/database _img.txt and _label.txt); "
                                  "default: the embedded mosaic benchmark")
    p.add_argument("--image-size", type=int, default=None,
                   help="image side: the crop size of --data images, the size the mosaic is resized to "
                        "(default: the model's input side, 32 for cnn-small, 224 for alexnet and vgg11)")
    p.add_argument("--n-train", type=int, default=None,
                   help="mosaic training images (default 3000; 5000 with --profile paper)")
    p.add_argument("--n-database", type=int, default=None,
                   help="mosaic database images (default 10000; 20000 with --profile paper)")
    p.add_argument("--n-query", type=int, default=None, help="mosaic queries (default 500; 1000 with --profile paper)")
    p.add_argument("--data-seed", type=int, default=0, help="mosaic seed (default 0)")


def _add_model(p):
    p.add_argument("--backbone", default=_schema.names("backbone")[0], choices=_schema.names("backbone"),
                   help=f"backbone (default {_schema.names('backbone')[0]})")
    bits = _schema.defaults(_schema.schema("backbone", p.get_default("backbone")))["bits"]
    loss = _schema.defaults(_schema.schema("training", "hashing"))["loss"]
    p.add_argument("--bits", type=int, default=bits, help=f"code length (default {bits})")
    p.add_argument("--loss", default=loss, choices=_schema.names("loss"), help=f"hashing loss (default {loss})")
    p.add_argument("--seed", type=int, default=0, help="seed of the model, its training and the attacks (default 0)")
    p.add_argument("--out", default="saat-out", help="output folder (default saat-out)")


def _mpi_comm():
    """MPI.COMM_WORLD when this process was started by ``mpiexec -n P`` with P > 1 (MPICH's
    PMI_SIZE or Open MPI's OMPI_COMM_WORLD_SIZE), else None: ``train`` and ``defend`` then run
    data-parallel over the P processes (rank 0 saves and prints)."""
    size = os.environ.get("PMI_SIZE") or os.environ.get("OMPI_COMM_WORLD_SIZE")
    if size is None or int(size) <= 1:
        return None
    try:
        from mpi4py import MPI
    except ImportError:
        raise ValueError("started by mpiexec with several processes, but mpi4py is missing: "
                         "pip install 'saat[mpi]'") from None
    return MPI.COMM_WORLD


def cmd_info(args):
    import saat
    print(json.dumps(saat.info(), indent=1))


def cmd_train(args):
    import saat
    data = _data(args)
    m = saat.HashingModel(args.backbone, args.bits, seed=args.seed)
    comm = _mpi_comm()
    t0 = time.perf_counter()
    res = saat.train(m, data.train.images, data.train.labels, loss=args.loss, seed=args.seed, comm=comm,
                     progress=comm is None or comm.Get_rank() == 0, **_params(args, "training", "hashing"))
    if comm is not None and comm.Get_rank() != 0:
        return
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
    from .experiments import ExperimentConfig, make_attack
    m = saat.HashingModel.load(args.model).eval()
    data = _data(args, m.input_shape[1])
    db = m.encode(data.database.images)
    tr = m.encode(data.train.images)
    q_img, q_lab = data.query.images[: args.n_attack], data.query.labels[: args.n_attack]
    atk = make_attack(args.attack, m, tr, data.train.labels, db, data.database.labels, ExperimentConfig(seeds=(args.seed,)),
                      overrides=_params(args, _attack_kind(args.attack), args.attack.removesuffix("_t")),
                      train_images=data.train.images, progress=True)
    t = saat.attacks.select_target_labels(q_lab, data.database.labels, seed=args.seed) if atk.targeted else None
    res = saat.evaluate_attack(m, atk, q_img, q_lab, db, data.database.labels, k=args.k, target_labels=t)
    print(json.dumps({k: v for k, v in res.items() if not hasattr(v, "shape")}, indent=1))


def cmd_defend(args):
    import saat
    m = saat.HashingModel.load(args.model)
    data = _data(args, m.input_shape[1])
    d = saat.defences.DEFENCES[args.defence](m, loss=args.loss, seed=args.seed, **_params(args, "defence", args.defence))
    comm = _mpi_comm()
    d.fit(data.train.images, data.train.labels, comm=comm, progress=comm is None or comm.Get_rank() == 0)
    if comm is not None and comm.Get_rank() != 0:
        return
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"{os.path.splitext(os.path.basename(args.model))[0]}-{args.defence}.npz")
    m.save(path)
    print(f"saved {path}")


def cmd_table(args, profile=None):
    from .experiments import robustness_table
    if args.seeds < 1:
        raise ValueError(f"argument '--seeds': expected an int >= 1, got {args.seeds}")
    data = _data(args)
    over = {"bits": tuple(args.bits_list), "loss": args.loss, "backbone": args.backbone,
            "seeds": tuple(range(args.seed, args.seed + args.seeds))}
    if args.defence:
        over["defences"] = tuple(["none"] + [d for d in args.defence if d != "none"])
    t0 = time.perf_counter()
    table = robustness_table(data, profile or args.profile, out=args.out, executor=args.executor,
                             address=args.address, **over)
    print()
    print("MAP@k (%): clean and under each non-targeted attack; *_t columns: t-MAP@k (%) of targeted attacks "
          "on the undefended model (clean_t: the clean queries against the same targets; prosgan_t: ProS-GAN's "
          "generator); theory_*: the guide code itself; perceptibility_*: √MSE of x' − x in % of the pixel range. "
          "Each cell: mean over seeds (± std over seeds when several) [95 % bootstrap interval over queries]")
    print(table.to_markdown())
    print(f"\nwrote {args.out}/table.json, table.md and PR / P@N plots in {time.perf_counter() - t0:.0f} s")


def main(argv=None):
    from .experiments import CONTROL, PROFILES
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
        p.add_argument("--defence", nargs="+", choices=["none", CONTROL, *_schema.names("defence")],
                       help=f"defences (default all; '{CONTROL}' is the fine-tuning control row)")
        p.add_argument("--seeds", type=int, default=1,
                       help="train every model and run every attack with this many seeds, --seed, --seed + 1, ... "
                            "(cells show mean ± std over seeds; default 1)")
        p.add_argument("--profile", default="demo", choices=list(PROFILES),
                       help="iteration/epoch preset (saat.experiments.PROFILES; 'short' for alexnet/vgg11 smoke runs)")
        p.add_argument("--executor", default="local", choices=["local", "ray"],
                       help="where models and cells run: this process, or Ray tasks (pip install 'saat[ray]'); "
                            "finished cells in --out are reused either way (default local)")
        p.add_argument("--address", default=None,
                       help="Ray cluster address for --executor ray (default: RAY_ADDRESS, or a local Ray instance)")
        p.set_defaults(fn=cmd_table)
    mpi_note = " (under mpiexec -n P: data-parallel over the P processes; rank 0 saves)"
    p = sub.add_parser("train", help="train a clean hashing model" + mpi_note)
    _add_data(p)
    _add_model(p)
    _add_schema_options(p, "training")
    p.add_argument("--k", type=int, default=5000)
    p.set_defaults(fn=cmd_train)
    p = sub.add_parser("attack", help="attack a saved model and report MAP")
    _add_data(p)
    _add_model(p)
    p.add_argument("--model", required=True, help=".npz written by train/defend")
    p.add_argument("--attack", default="saat", choices=[*_schema.names("attack"), "saat_t", *_schema.names("generative")],
                   help="attack (saat_t: targeted SAAT; prosgan: ProS-GAN's generator, trained first on the "
                        "training split; default saat)")
    _add_schema_options(p, "attack", "generative")
    p.add_argument("--n-attack", type=int, default=250, help="queries to attack (default 250)")
    p.add_argument("--k", type=int, default=5000)
    p.set_defaults(fn=cmd_attack)
    p = sub.add_parser("defend", help="adversarially train a saved model" + mpi_note)
    _add_data(p)
    _add_model(p)
    p.add_argument("--model", required=True)
    p.add_argument("--defence", required=True, choices=_schema.names("defence"))
    _add_schema_options(p, "defence")
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
