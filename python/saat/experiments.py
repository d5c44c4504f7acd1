"""The papers' experiment: train a hashing model, attack it, harden it with SAAT / CgAT / ATRDH,
attack the hardened models, and tabulate MAP@k (Tables I–II of SAAT) with PR and P@N curves.

Everything heavy runs in the Swift core; this module only orchestrates, caches trained models in
the output folder (a rerun reuses them), and writes ``table.json``, ``table.md`` and PNG plots.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from . import _core, metrics
from . import attacks as A
from .defences import DEFENCES
from .evaluation import theory_map
from .models import HashingModel
from .training import channel_stats, pretrain_backbone, train

__all__ = ["ExperimentConfig", "Table", "robustness_table", "make_attack", "PROFILES"]

NON_TARGETED = ("pgd", "hag", "sdha", "center", "saat")
TARGETED = ("dhta", "p2p", "tha", "saat_t")


@dataclass
class ExperimentConfig:
    """Every knob of :func:`robustness_table`. ``PROFILES`` holds three presets: ``"paper"`` (the
    official code's iteration counts and epochs; hours on a CPU), ``"demo"`` (the same methods
    with fewer iterations/epochs, minutes on a 2-core laptop with cnn-small) and ``"short"`` (a
    smoke run of every stage for the 224×224 backbones: one or two epochs, 20-step attacks on 20
    queries; with ``--n-train 200 --n-database 500 --n-query 40`` alexnet takes about half an
    hour on 2 cores -- its numbers show the pipeline works, not the papers' effect sizes). Any field can be overridden. A field
    that is None (or a defence missing from ``defence_epochs``) takes the default of the algorithm's
    schema, which is the official code's value: the paper profile sets only what differs from it."""
    backbone: str = "cnn-small"
    loss: str = "dpsh"
    bits: tuple = (32,)
    defences: tuple = ("none", "atrdh", "cgat", "saat")
    k: int = 5000
    seed: int = 0
    # clean training: backbone pretraining stand-in (cnn-small has no ImageNet weights, see
    # saat.training.pretrain_backbone), then the hashing loss; inputs normalised by the training
    # split's per-channel statistics
    pretrain_epochs: int = 10
    clean_epochs: int = 100
    clean_batch: int | None = None
    clean_lr: float | None = None
    # adversarial training (epochs per defence name)
    defence_epochs: dict = field(default_factory=dict)
    defence_batch: int | None = None
    # attacks: iterations (eps/step are the papers'). CgAT's evaluation attacks its models with
    # 100 steps, not the 7 of its training-time inner attack (the center attack's default).
    pgd_steps: int | None = None
    saat_steps: int | None = None
    center_steps: int | None = 100
    hag_steps: int | None = None
    sdha_steps: int | None = None
    dhta_steps: int | None = None
    p2p_steps: int | None = None
    tha_steps: int | None = None
    tha_prototype_steps: int | None = None
    # which attacks run on defended models (Table II) and on the undefended one (Table I)
    defended_attacks: tuple = NON_TARGETED
    targeted_attacks: tuple = TARGETED
    n_query_attack: int | None = None   # None = every query
    curve_attack: str = "saat"          # attack whose PR / P@N curves are plotted per defence


PROFILES = {
    "paper": ExperimentConfig(),
    "demo": ExperimentConfig(
        k=2000, pretrain_epochs=5, clean_epochs=20, clean_batch=32, clean_lr=0.0005,
        defence_epochs={"saat": 3, "cgat": 3, "atrdh": 3}, pgd_steps=10, saat_steps=100, center_steps=100,
        hag_steps=100, sdha_steps=100, dhta_steps=100, p2p_steps=100, tha_steps=100, tha_prototype_steps=1500,
        n_query_attack=200),
    "short": ExperimentConfig(
        k=500, pretrain_epochs=1, clean_epochs=2, clean_batch=32, clean_lr=0.0005,
        defence_epochs={"saat": 1, "cgat": 1, "atrdh": 1}, pgd_steps=10, saat_steps=20, center_steps=20,
        hag_steps=20, sdha_steps=20, dhta_steps=20, p2p_steps=20, tha_steps=20, tha_prototype_steps=100,
        n_query_attack=20),
}


class Table:
    """Rows of the robustness table (one per (bits, defence)), with helpers to print and save."""

    def __init__(self, rows, config: ExperimentConfig, curves=None):
        self.rows = rows
        self.config = config
        self.curves = curves or {}

    def columns(self):
        cols = ["bits", "defence", "clean"]
        for r in self.rows:
            for c in r:
                if c not in cols and c not in ("seconds",):
                    cols.append(c)
        return cols

    def to_markdown(self) -> str:
        cols = self.columns()
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in self.rows:
            cells = []
            for c in cols:
                v = r.get(c, "")
                cells.append(f"{100 * v:.2f}" if isinstance(v, float) else str(v))
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def to_dataframe(self):
        """A pandas DataFrame (requires pandas, which saat does not install)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("Table.to_dataframe needs pandas: pip install pandas "
                              "(or use Table.rows / Table.to_markdown, which need nothing)") from None
        return pd.DataFrame(self.rows, columns=self.columns())

    def __repr__(self):
        return self.to_markdown()


def _recipe_key(data, cfg, defence) -> str:
    """A short digest of everything that determines a trained model's weights besides the names in
    the file name: the training split (shape and bytes of its labels and images) and the training
    hyper-parameters (the clean recipe, plus the defence's epochs and batch for a defended model).
    Saved models are reused only when this matches, so a rerun with other data or epochs retrains
    instead of silently loading weights trained differently."""
    h = hashlib.sha1()
    for a in (data.train.images, data.train.labels):
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(a.tobytes())
    recipe = [cfg.pretrain_epochs, _core.resolve("training", "hashing", _clean_params(cfg))]
    if defence != "none":
        recipe += [defence, _core.resolve("defence", defence, _defence_params(cfg, defence))]
    h.update(json.dumps(recipe, sort_keys=True).encode())
    return h.hexdigest()[:10]


def _given(**params) -> dict:
    return {k: v for k, v in params.items() if v is not None}


def _clean_params(cfg) -> dict:
    return _given(loss=cfg.loss, epochs=cfg.clean_epochs, batch_size=cfg.clean_batch, lr=cfg.clean_lr, seed=cfg.seed)


def _defence_params(cfg, defence) -> dict:
    return _given(loss=cfg.loss, epochs=cfg.defence_epochs.get(defence), batch_size=cfg.defence_batch, seed=cfg.seed)


def _model_path(out, data, cfg, bits, defence):
    return os.path.join(out, "models", f"{cfg.backbone}-{cfg.loss}-{bits}-{defence}-seed{cfg.seed}-"
                                       f"{_recipe_key(data, cfg, defence)}.npz")


def _log(msg, verbose):
    if verbose:
        print(f"[saat] {msg}", flush=True)


def _train_clean(train_set, cfg, bits, progress):
    """The clean model of ``bits`` bits: backbone pretraining stand-in, then the hashing loss."""
    images, labels = train_set
    mean, std = channel_stats(images)
    m = HashingModel(cfg.backbone, bits, seed=cfg.seed, mean=mean, std=std)
    if cfg.pretrain_epochs:
        pretrain_backbone(m, images, labels, epochs=cfg.pretrain_epochs, seed=cfg.seed, progress=progress)
    train(m, images, labels, progress=progress, **_clean_params(cfg))
    return m


def _train_defence(train_set, cfg, d, clean, progress):
    """A copy of the clean model hardened by defence ``d``."""
    images, labels = train_set
    m = HashingModel(clean.backbone, clean.bits, seed=clean.seed, mean=clean.mean, std=clean.std)
    m.load_state_dict(clean.state_dict())
    DEFENCES[d](m, **_defence_params(cfg, d)).fit(images, labels, progress=progress)
    return m


def _encode(model, train_set, query_images, db_images):
    """The codes every cell of a model needs: database, training set and clean queries."""
    m = model.eval()
    return {"db": m.encode(db_images), "train": m.encode(train_set[0]), "query": m.encode(query_images)}


def _attack_cell(model, codes, name, q, cfg, k, curve: bool) -> dict:
    """One cell of the table: ``name``'s MAP@k (t-MAP@k for a targeted attack) on ``model``, the
    theory MAP for SAAT's attacks, and the PR / P@N curves when ``curve``. ``name`` "clean" is the
    clean MAP. Pure: the same inputs give the same dict wherever it runs."""
    model.eval()
    db_codes, db_labels = codes["db"], q["db_labels"]
    if name == "clean":
        return {"clean": metrics.map_at_k(codes["query"], db_codes, q["labels"], db_labels, k=k)}
    atk = make_attack(name, model, codes["train"], q["train_labels"], db_codes, db_labels, cfg)
    labels = q["targets"] if atk.targeted else q["labels"]
    adv_codes = model.encode(atk(q["images"], labels))
    cell = {}
    if atk.targeted:
        cell[f"{name.removesuffix('_t')}_t"] = metrics.t_map_at_k(adv_codes, db_codes, labels, db_labels, k=k)
    else:
        cell[name] = metrics.map_at_k(adv_codes, db_codes, labels, db_labels, k=k)
    if name in ("saat", "saat_t") and atk.last_codes is not None:
        cell[f"theory_{name}"] = theory_map(atk.last_codes, atk.targeted, db_codes, db_labels, labels, k)
    if curve:
        p, r = metrics.pr_curve(adv_codes, db_codes, q["labels"], db_labels)
        pn = metrics.precision_at_n(adv_codes, db_codes, q["labels"], db_labels)
        cell["__curve__"] = {"precision": np.asarray(p).tolist(), "recall": np.asarray(r).tolist(),
                             "p_at_n": np.asarray(pn).tolist()}
    return cell


def make_attack(name, model, train_codes, train_labels, db_codes, db_labels, cfg: ExperimentConfig,
                overrides: dict | None = None):
    """The attack ``name`` of the table on ``model`` with the config's iteration counts and seed:
    a name of :data:`saat.attacks.ATTACKS`, or ``"saat_t"`` (targeted SAAT). The guided attacks
    get the training codes and labels, the targeted ones the database codes and labels. CgAT's
    center attack uses step 1/255 as the papers' evaluation does (its training default is 2/255).
    ``overrides``: parameters that replace those (e.g. ``{"steps": 5}``)."""
    base = name.removesuffix("_t")
    cls = A.ATTACKS.get(base)
    if cls is None or (name != base and base != "saat"):
        raise ValueError(f"argument 'name': expected one of {', '.join([*A.ATTACKS, 'saat_t'])}, got '{name}'")
    data = {"train_codes": train_codes, "train_labels": train_labels, "db_codes": db_codes, "db_labels": db_labels}
    inputs = [data[i["name"]] for i in cls._schema["inputs"]]
    kwargs = {}
    extra = {"steps": getattr(cfg, f"{base}_steps"), "seed": cfg.seed, "targeted": name == "saat_t", "prototype_steps": cfg.tha_prototype_steps,
             "step": 1 / 255 if base == "center" else None}
    names = {p["name"] for p in cls._schema["parameters"]}
    kwargs.update({k: v for k, v in extra.items() if k in names and v is not None})
    kwargs.update(overrides or {})
    return cls(model, *inputs, **kwargs)


def _digest(*parts) -> str:
    h = hashlib.sha1()
    for p in parts:
        if isinstance(p, np.ndarray):
            p = np.ascontiguousarray(p)
            h.update(f"{p.shape}{p.dtype}".encode())
            h.update(p.tobytes())
        else:
            h.update(json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()[:10]


def _cell_path(out, cfg, bits, defence, name, model_key, query_key) -> str:
    """Where a finished cell is kept: its file name says what it is; its digest covers the model
    (training data and recipe), the attack settings of the config and the attacked queries."""
    attack_cfg = {f: v for f, v in asdict(cfg).items() if f.endswith("_steps") or f in ("seed", "k", "curve_attack")}
    return os.path.join(out, "cells", f"{cfg.backbone}-{cfg.loss}-{bits}-{defence}-{name}-"
                                      f"{_digest(model_key, name, attack_cfg, query_key)}.json")


def _write_json(path, obj) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_cell(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None   # missing, or cut short by a crash: computed again


def robustness_table(data, config: ExperimentConfig | str = "demo", out: str = "saat-out", *,
                     progress=True, verbose: bool = True, plots: bool = True, executor: str = "local",
                     address: str | None = None, **overrides) -> Table:
    """Train/load, attack and tabulate; the layout of SAAT's Tables I–II.

    Parameters
    ----------
    data : a dataset with ``.train``, ``.query`` and ``.database`` splits (``.images``, ``.labels``),
        e.g. :func:`saat.datasets.mosaic` or :func:`saat.datasets.load_list_dataset`.
    config : an :class:`ExperimentConfig` or the name of a profile in ``PROFILES``.
    out : output folder: ``models/`` (trained weights) and ``cells/`` (finished cells, one JSON
        file each), both reused by reruns, so a rerun after a crash resumes where it stopped;
        ``table.json``, ``table.md``, ``pr_<bits>.png`` and ``pn_<bits>.png``.
    executor : ``"local"`` (this process) or ``"ray"``: one Ray task per model to train (the
        defended ones depend on the clean one, whose weights travel through the object store) and
        one per (model, attack) cell, on the running Ray connection, the cluster at ``address``,
        or a local Ray instance (``pip install 'saat[ray]'``). The driver writes models and cells
        to ``out`` as they finish. Tasks are retried when a worker dies (``max_retries=3``), and
        cells are keyed by (bits, defence, attack), so none is lost or counted twice. The table
        equals the local one for the same data and seeds when the workers run the kernels with
        the same thread count as the driver (saat's default: all CPUs of the machine; training
        sums convolution weight gradients per thread).
    address : Ray cluster address for ``executor="ray"`` (default: ``RAY_ADDRESS`` or local).
    overrides : fields of the config to replace (e.g. ``bits=(16, 32, 64)``).

    Returns
    -------
    Table: one row per (bits, defence) with ``clean`` (MAP@k), MAP@k under each non-targeted
    attack, and for the undefended model t-MAP@k under each targeted attack (``*_t`` keys), plus
    ``theory_saat`` (MAP of −mainstay code) and ``theory_saat_t``.
    """
    cfg = PROFILES[config] if isinstance(config, str) else config
    if not isinstance(cfg, ExperimentConfig):
        raise TypeError(f"argument 'config': expected an ExperimentConfig or one of {list(PROFILES)}")
    if overrides:
        cfg = ExperimentConfig(**{**asdict(cfg), **overrides})
    if executor not in ("local", "ray"):
        raise ValueError(f"argument 'executor': expected 'local' or 'ray', got {executor!r}")
    if address is not None and executor != "ray":
        raise ValueError("argument 'address': only for executor='ray'")
    for d in cfg.defences:
        if d != "none" and d not in DEFENCES:
            raise ValueError(f"argument 'defences': expected names from {['none', *DEFENCES]}, got '{d}'")
    os.makedirs(os.path.join(out, "models"), exist_ok=True)
    os.makedirs(os.path.join(out, "cells"), exist_ok=True)
    q_img, q_lab = data.query.images, data.query.labels
    if cfg.n_query_attack is not None:
        q_img, q_lab = q_img[: cfg.n_query_attack], q_lab[: cfg.n_query_attack]
    db_labels = data.database.labels
    k = min(cfg.k, db_labels.shape[0])
    targets = A.select_target_labels(q_lab, db_labels, seed=cfg.seed)
    q = {"images": q_img, "labels": q_lab, "targets": targets, "db_labels": db_labels, "train_labels": data.train.labels}
    query_key = _digest(q_img, q_lab, targets, db_labels, data.database.images)
    train_set = (data.train.images, data.train.labels)

    # The plan: models to train (clean before defended), then cells, each with its cache file.
    plan = []   # (bits, defence, model path, recipe key, [(name, cell path)])
    for bits in cfg.bits:
        for d in ["none", *[x for x in cfg.defences if x != "none"]]:
            key = _recipe_key(data, cfg, d)
            names = ["clean"] + list(cfg.defended_attacks) + (list(cfg.targeted_attacks) if d == "none" else [])
            if d not in cfg.defences:
                names = []   # the clean model is trained for the defences but not tabulated
            plan.append((bits, d, _model_path(out, data, cfg, bits, d), key,
                         [(n, _cell_path(out, cfg, bits, d, n, key, query_key)) for n in names]))
    cells = {}
    for bits, d, _, _, todo in plan:
        for name, path in todo:
            c = _read_cell(path)
            if c is not None:
                cells[(bits, d, name)] = c
    if executor == "local":
        _run_local(plan, cells, cfg, train_set, q, data.database.images, k, progress, verbose)
    else:
        _run_ray(plan, cells, cfg, train_set, q, data.database.images, k, address, verbose)

    rows, curves = [], {}
    for bits, d, _, _, todo in plan:
        if not todo:
            continue
        row = {"bits": bits, "defence": d}
        for name, _ in todo:
            cell = dict(cells[(bits, d, name)])
            curve = cell.pop("__curve__", None)
            if curve is not None:
                curves.setdefault(bits, {})[d] = curve
            row.update(cell)
        rows.append(row)
    table = Table(rows, cfg, curves)
    with open(os.path.join(out, "table.json"), "w") as f:
        json.dump({"config": asdict(cfg), "rows": rows, "curves": {str(b): c for b, c in curves.items()}}, f, indent=1)
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(table.to_markdown() + "\n")
    if plots and curves:
        from .plots import plot_curves
        for bits, c in curves.items():
            plot_curves(c, os.path.join(out, f"pr_{bits}.png"), os.path.join(out, f"pn_{bits}.png"),
                        title=f"{cfg.backbone} {cfg.loss.upper()} {bits} bits under {cfg.curve_attack.upper()} attack")
    return table


def _cell_label(bits, d, name, cell) -> str:
    v = next((x for key, x in cell.items() if not key.startswith(("theory", "__"))), None)
    return f"{bits} bits, {d}: {name} {v:.4f}" if isinstance(v, float) else f"{bits} bits, {d}: {name}"


def _needed_models(plan, cells) -> set:
    """(bits, defence) of the models some missing cell needs: its own, and the clean model of a
    defended one that is not on disk yet (it is trained from it)."""
    need = set()
    for bits, d, path, _, todo in plan:
        if any((bits, d, n) not in cells for n, _ in todo):
            need.add((bits, d))
            if d != "none" and not os.path.exists(path):
                need.add((bits, "none"))
    return need


def _pending_work(plan, cells):
    """(bits, defence, model path, missing cells) of every model some missing cell needs, in
    plan order (clean models before the defended ones trained from them)."""
    need = _needed_models(plan, cells)
    for bits, d, path, _, todo in plan:
        if (bits, d) in need:
            yield bits, d, path, [(n, p) for n, p in todo if (bits, d, n) not in cells]


def _run_local(plan, cells, cfg, train_set, q, db_images, k, progress, verbose):
    """Every missing model and cell, in this process, saved as it finishes."""
    models = {}
    for bits, d, path, pending in _pending_work(plan, cells):
        if os.path.exists(path):
            models[(bits, d)] = HashingModel.load(path)
            _log(f"{bits} bits: loaded {d} model from {path}", verbose)
        else:
            t0 = time.perf_counter()
            m = (_train_clean(train_set, cfg, bits, progress) if d == "none"
                 else _train_defence(train_set, cfg, d, models[(bits, "none")], progress))
            m.save(path)
            models[(bits, d)] = m
            _log(f"{bits} bits: {d} model trained in {time.perf_counter() - t0:.0f} s", verbose)
        if not pending:
            continue
        m = models[(bits, d)]
        codes = _encode(m, train_set, q["images"], db_images)
        for name, cpath in pending:
            t0 = time.perf_counter()
            cell = _attack_cell(m, codes, name, q, cfg, k, curve=name == cfg.curve_attack)
            _write_json(cpath, cell)
            cells[(bits, d, name)] = cell
            _log(f"{_cell_label(bits, d, name, cell)} ({time.perf_counter() - t0:.1f} s)", verbose)


def _run_ray(plan, cells, cfg, train_set, q, db_images, k, address, verbose):
    """Every missing model and cell as Ray tasks; the driver saves each as it finishes."""
    from .distributed._ray import require_ray
    ray = require_ray(address)
    opts = {"max_retries": 3, "retry_exceptions": False}
    train_clean = ray.remote(**opts)(_train_clean)
    train_defence = ray.remote(**opts)(_train_defence)
    encode = ray.remote(**opts)(_encode)
    attack_cell = ray.remote(**opts)(_attack_cell)
    train_ref, q_ref, db_ref = ray.put(train_set), ray.put(q), ray.put(db_images)
    q_img_ref = ray.put(q["images"])
    model_refs, pending = {}, {}
    for bits, d, path, missing in _pending_work(plan, cells):
        if os.path.exists(path):
            model_refs[(bits, d)] = ray.put(HashingModel.load(path))
        else:
            ref = (train_clean.remote(train_ref, cfg, bits, False) if d == "none"
                   else train_defence.remote(train_ref, cfg, d, model_refs[(bits, "none")], False))
            model_refs[(bits, d)] = ref
            pending[ref] = ("model", bits, d, path)
        if missing:
            codes_ref = encode.remote(model_refs[(bits, d)], train_ref, q_img_ref, db_ref)
            for name, cpath in missing:
                ref = attack_cell.remote(model_refs[(bits, d)], codes_ref, name, q_ref, cfg, k, name == cfg.curve_attack)
                pending[ref] = ("cell", bits, d, name, cpath)
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        what = pending.pop(done[0])
        result = ray.get(done[0])
        if what[0] == "model":
            _, bits, d, path = what
            result.save(path)
            _log(f"{bits} bits: {d} model trained (ray)", verbose)
        else:
            _, bits, d, name, cpath = what
            _write_json(cpath, result)
            cells[(bits, d, name)] = result
            _log(f"{_cell_label(bits, d, name, result)} (ray)", verbose)
