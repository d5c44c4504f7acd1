"""The papers' experiment: train a hashing model, attack it, harden it with SAAT / CgAT / ATRDH,
attack the hardened models, and tabulate MAP@k (Tables I–II of SAAT) with PR and P@N curves.

Everything heavy runs in the Swift core; this module only orchestrates, caches trained models in
the output folder (a rerun reuses them), and writes ``table.json``, ``table.md`` and PNG plots.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import numpy as np

from . import _core, metrics, stats
from . import attacks as A
from .defences import DEFENCES
from .evaluation import theory_map
from .models import HashingModel
from .training import channel_stats, pretrain_backbone, train

__all__ = ["ExperimentConfig", "Table", "robustness_table", "make_attack", "compare", "check_claims", "Comparison",
           "PROFILES", "DEMO_SHORTENS", "CONTROL"]

NON_TARGETED = ("pgd", "hag", "sdha", "center", "saat")
TARGETED = ("clean_t", "dhta", "p2p", "tha", "prosgan", "saat_t")
#: Targeted columns whose perceptibility the table reports (√MSE of x_adv − x in [0, 1] pixels, as
#: ProS-GAN's and THA's papers): ProS-GAN has no ε-ball, so its t-MAP is read beside it.
PERCEPTIBILITY = ("prosgan", "saat_t")
#: The fine-tuning control's name among the table's defences (see :class:`ExperimentConfig`).
CONTROL = "finetune"
#: The defence whose optimiser the fine-tuning control copies.
CONTROL_OPTIMISER_OF = "saat"


@dataclass
class ExperimentConfig:
    """Every knob of :func:`robustness_table`. ``PROFILES`` holds three presets: ``"paper"`` (the
    official code's iteration counts and epochs; hours on a CPU), ``"demo"`` (the same methods
    with fewer iterations/epochs, minutes on a 2-core laptop with cnn-small; ``DEMO_SHORTENS``
    says what it shortens) and ``"short"`` (a smoke run of every stage for the 224×224 backbones:
    one or two epochs, 20-step attacks on 20 queries; with ``--n-train 200 --n-database 500
    --n-query 40`` alexnet takes about half an hour on 2 cores -- its numbers show the pipeline
    works, not the papers' effect sizes). Any field can be overridden. A field that is None (or a
    defence missing from ``defence_epochs``) takes the default of the algorithm's schema, which
    is the official code's value: the paper profile sets only what differs from it.

    ``seeds``: every model is trained, and every attack run, once per seed; a cell shows the mean
    over seeds (± their standard deviation when there are several) with a 95 % bootstrap interval
    over queries, stratified by seed (:mod:`saat.stats`).

    ``defences`` may include ``"finetune"`` (:data:`CONTROL`), the fine-tuning control: the clean
    model trained further by the clean hashing recipe (no adversarial examples) with the optimiser
    settings of SAAT's defence schema (learning rate, momentum, weight decay, schedule, batch) for
    ``defence_epochs["finetune"]`` epochs. Clean-MAP costs of the defences are measured against it;
    its row has the clean MAP and the ``curve_attack`` column only."""
    backbone: str = "cnn-small"
    loss: str = "dpsh"
    bits: tuple = (32,)
    defences: tuple = ("none", CONTROL, "atrdh", "cgat", "saat")
    k: int = 5000
    seeds: tuple = (0,)
    # clean training: backbone pretraining stand-in (cnn-small has no ImageNet weights, see
    # saat.training.pretrain_backbone), then the hashing loss; inputs normalised by the training
    # split's per-channel statistics
    pretrain_epochs: int = 10
    clean_epochs: int = 100
    clean_batch: int | None = None
    clean_lr: float | None = None
    # adversarial training (epochs per defence name; "finetune" is the control's)
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
    # ProS-GAN (a trained generator): GAN epochs and prototype-net steps (None: the official 100
    # epochs and 30000 steps)
    prosgan_epochs: int | None = None
    prosgan_prototype_steps: int | None = None
    # which attacks run on defended models (Table II) and on the undefended one (Table I)
    defended_attacks: tuple = NON_TARGETED
    targeted_attacks: tuple = TARGETED
    n_query_attack: int | None = None   # None = every query
    curve_attack: str = "saat"          # attack whose PR / P@N curves are plotted per defence

    def __post_init__(self):
        seeds = tuple(self.seeds) if isinstance(self.seeds, (tuple, list)) else None
        if not seeds or any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in seeds) \
                or len(set(seeds)) != len(seeds):
            raise ValueError(f"argument 'seeds': expected a non-empty tuple of distinct ints >= 0, got {self.seeds!r}")
        self.seeds = seeds

    @property
    def seed(self) -> int:
        """The seed of a single-seed config (each seed's models and cells use one of these)."""
        if len(self.seeds) != 1:
            raise ValueError(f"this config has {len(self.seeds)} seeds; use for_seed(s) for one of them")
        return self.seeds[0]

    def for_seed(self, s: int) -> "ExperimentConfig":
        """The same config restricted to seed ``s``."""
        return dataclasses.replace(self, seeds=(s,))


#: What the demo profile shortens relative to ``PROFILES["paper"]`` (the official recipes).
DEMO_SHORTENS = {
    "k": "MAP@2000 instead of @5000: 20 % of the 10,000-image database, as 5000 is of FLICKR-25K's",
    "pretrain_epochs": "5 epochs of the CSQ backbone pretraining stand-in instead of 10",
    "clean_epochs": "60 epochs of clean DPSH training instead of 100 (the clean model is converged: the fine-tuning "
                    "control gains less than a point)",
    "clean_lr": "learning rate 0.001 instead of 0.01 (same schedule): on 3000 mosaic images DPSH at 0.01 collapses to "
                "nearly one code (MAP 25.7 = the share of relevant items), at 0.005 reaches 56 and at 0.002 64.5, "
                "while 0.001 gives 65 after 60 epochs",
    "defence_epochs": "3 epochs of each defence and of the fine-tuning control instead of 20 (SAAT), "
                      "30 (CgAT) and 100 (ATRDH)",
    "attack_steps": "100 iterations for every attack instead of 2000 (HAG, SDHA), 1500 (SAAT, DHTA, P2P, THA) "
                    "and PGD's 10 instead of 100; THA's prototype net 1500 steps instead of 2000",
    "prosgan": "ProS-GAN's generator trained 3 epochs instead of 100, its prototype net "
               "1500 steps instead of 30000",
}

PROFILES = {
    "paper": ExperimentConfig(),
    "demo": ExperimentConfig(
        k=2000, pretrain_epochs=5, clean_epochs=60, clean_lr=0.001,
        defence_epochs={"saat": 3, "cgat": 3, "atrdh": 3, CONTROL: 3}, pgd_steps=10, saat_steps=100, center_steps=100,
        hag_steps=100, sdha_steps=100, dhta_steps=100, p2p_steps=100, tha_steps=100, tha_prototype_steps=1500,
        prosgan_epochs=3, prosgan_prototype_steps=1500),
    "short": ExperimentConfig(
        k=500, pretrain_epochs=1, clean_epochs=2, clean_batch=32, clean_lr=0.0005,
        defence_epochs={"saat": 1, "cgat": 1, "atrdh": 1, CONTROL: 1}, pgd_steps=10, saat_steps=20, center_steps=20,
        hag_steps=20, sdha_steps=20, dhta_steps=20, p2p_steps=20, tha_steps=20, tha_prototype_steps=100,
        prosgan_epochs=1, prosgan_prototype_steps=100, n_query_attack=20),
}

_ROW_KEYS = ("bits", "defence", "ci", "std", "seeds")


class Comparison(NamedTuple):
    """The result of :func:`compare`: ``a − factor·b`` in MAP (fractions, not points)."""
    a: tuple
    b: tuple
    difference: float
    ci: tuple            # 95 % paired bootstrap interval of the difference
    p_value: float       # two-sided paired permutation test of "no difference"
    n_pairs: int
    paired_by: str       # "query" (attacks on the same models) or "query and seed" (different models)


class Table:
    """The robustness table: one row per (bits, defence), its per-query APs, and the claims.

    ``rows``: dicts with ``bits``, ``defence``, one MAP per column (mean over seeds), ``ci``
    (column → 95 % bootstrap interval over queries, stratified by seed), ``std`` (column → standard
    deviation of the per-seed MAPs; with several seeds) and ``seeds``. ``per_query``: (bits,
    defence, column) → float64 array (n_seeds, n_queries) of per-query APs (t-APs for ``*_t``
    columns), row s for ``config.seeds[s]``. ``claims``: the papers' claims checked on these
    numbers (see :func:`check_claims`). ``curves``: bits → defence → PR / P@N curves under
    ``config.curve_attack``; ``reference``: bits → the undefended model's curves on clean queries
    (the plots' dashed line). ``Table.load(path)`` reads a saved ``table.json``."""

    def __init__(self, rows, config: ExperimentConfig, curves=None, per_query=None, claims=None, reference=None):
        self.rows = rows
        self.config = config
        self.curves = curves or {}
        self.reference = reference or {}
        self.per_query = per_query or {}
        self.claims = claims or []

    def columns(self):
        cols = ["bits", "defence", "clean"]
        for r in self.rows:
            for c in r:
                if c not in cols and c not in _ROW_KEYS:
                    cols.append(c)
        return cols

    def row(self, bits, defence) -> dict:
        for r in self.rows:
            if r["bits"] == bits and r["defence"] == defence:
                return r
        raise KeyError(f"no row for {bits} bits, defence '{defence}' (rows: "
                       f"{[(r['bits'], r['defence']) for r in self.rows]})")

    def to_markdown(self, claims: bool = True) -> str:
        """The table in percent: ``mean [low, high]`` with one seed, ``mean ± std [low, high]``
        with several; then the claims, when ``claims``."""
        cols = self.columns()
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in self.rows:
            cells = []
            for c in cols:
                v = r.get(c, "")
                if isinstance(v, float):
                    text = f"{100 * v:.1f}"
                    if c in r.get("std", {}):
                        text += f" ± {100 * r['std'][c]:.1f}"
                    if c in r.get("ci", {}):
                        lo, hi = r["ci"][c]
                        text += f" [{100 * lo:.1f}, {100 * hi:.1f}]"
                    v = text
                cells.append(str(v))
            lines.append("| " + " | ".join(cells) + " |")
        if claims and self.claims:
            lines += ["", "Claims (difference in MAP points, 95 % paired bootstrap interval; "
                          "undecided when the interval includes 0):", ""]
            for c in self.claims:
                mark = {True: "holds", False: "fails", None: "undecided"}[c["holds"]]
                lo, hi = c["ci"]
                lines.append(f"- **{mark}**: {c['claim']} ({100 * c['difference']:+.1f} "
                             f"[{100 * lo:+.1f}, {100 * hi:+.1f}], p = {c['p_value']:.3g})")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"config": asdict(self.config), "rows": self.rows, "claims": self.claims,
                "curves": {str(b): c for b, c in self.curves.items()},
                "reference_curves": {str(b): c for b, c in self.reference.items()},
                "per_query": {f"{b}/{d}/{c}": v.tolist() for (b, d, c), v in self.per_query.items()}}

    def save(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump(self.to_json(), f, indent=1)

    @classmethod
    def load(cls, path: str) -> "Table":
        """A table saved by :func:`robustness_table` (``table.json``)."""
        with open(path) as f:
            j = json.load(f)
        cfg = ExperimentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in j["config"].items()})
        per_query = {}
        for key, v in j.get("per_query", {}).items():
            b, d, c = key.split("/")
            per_query[(int(b), d, c)] = np.asarray(v, dtype=np.float64)
        return cls(j["rows"], cfg, {int(b): c for b, c in j.get("curves", {}).items()}, per_query, j.get("claims", []),
                   {int(b): c for b, c in j.get("reference_curves", {}).items()})

    def to_dataframe(self):
        """A pandas DataFrame of the means (requires pandas, which saat does not install)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("Table.to_dataframe needs pandas: pip install pandas "
                              "(or use Table.rows / Table.to_markdown, which need nothing)") from None
        return pd.DataFrame(self.rows, columns=self.columns())

    def __repr__(self):
        return self.to_markdown()


def _cell_ref(table: Table, ref, name: str) -> tuple:
    """``ref`` as (bits, defence, column): a (defence, column) pair takes the table's only bit length."""
    if not isinstance(ref, (tuple, list)) or len(ref) not in (2, 3):
        raise TypeError(f"argument '{name}': expected (defence, column) or (bits, defence, column), got {ref!r}")
    if len(ref) == 2:
        bits = sorted({r["bits"] for r in table.rows})
        if len(bits) != 1:
            raise ValueError(f"argument '{name}': the table has bit lengths {bits}; give (bits, defence, column)")
        ref = (bits[0], *ref)
    key = (int(ref[0]), str(ref[1]), str(ref[2]))
    if key not in table.per_query:
        have = sorted({c for (_, _, c) in table.per_query})
        raise ValueError(f"argument '{name}': no per-query results for {key} (columns with results: {have})")
    return key


def compare(table: Table, a, b, *, factor: float = 1.0, seed: int = 0) -> Comparison:
    """Paired comparison of two cells of ``table``: ``MAP(a) − factor·MAP(b)``.

    ``a`` and ``b`` are ``(defence, column)`` (or ``(bits, defence, column)``), e.g.
    ``compare(t, ("none", "saat"), ("none", "pgd"))``: is the SAAT attack stronger than PGD on the
    undefended model? Two attacks on the same model are paired by query (within each seed);
    two defences by query and seed. Interval: stratified paired bootstrap (95 %); p-value: paired
    permutation test (:func:`saat.stats.paired_difference`); ``seed`` seeds the resampling."""
    ka, kb = _cell_ref(table, a, "a"), _cell_ref(table, b, "b")
    d = stats.paired_difference(table.per_query[ka], table.per_query[kb], factor=factor, seed=seed)
    same_model = ka[:2] == kb[:2]
    return Comparison(ka, kb, d.difference, d.ci, d.p_value, d.n_pairs, "query" if same_model else "query and seed")


_NAMES = {"atrdh": "ATRDH", "cgat": "CgAT", "saat": "SAAT"}
_ATTACKS = {"pgd": "the PGD attack", "hag": "the HAG attack", "sdha": "the SDHA attack", "center": "the center attack",
            "saat": "the SAAT attack", "dhta": "DHTA", "p2p": "P2P", "tha": "THA", "prosgan": "ProS-GAN"}


def check_claims(table: Table) -> list:
    """The papers' claims, each checked by a paired comparison on the table's per-query results:
    a list of dicts with ``claim`` (text), ``holds`` (True / False, or None when the 95 % interval
    of the difference includes 0), ``difference`` and ``ci`` (MAP fractions), ``p_value`` and
    ``cells`` (the two compared). Claims whose cells the table lacks are skipped. Covered, per bit
    length: the SAAT attack gives lower MAP than PGD, HAG, SDHA and the center attack on the
    undefended model; targeted SAAT gives higher t-MAP than DHTA, P2P, THA and ProS-GAN, and
    ProS-GAN a higher t-MAP than the clean queries against the same targets; SAAT and CgAT
    training each keep more MAP than ATRDH under every attack, and at least twice the undefended
    MAP under the SAAT attack; each defence's clean-MAP cost against the fine-tuning control; and
    that the clean model is converged (fine-tuning it gains less than 1 point)."""
    have = set(table.per_query)
    out = []

    def claim(text, a, b, direction, factor=1.0, margin=0.0):
        if a not in have or b not in have:
            return
        c = compare(table, a, b, factor=factor)
        ci = (c.ci[0] - margin, c.ci[1] - margin)
        out.append({"claim": text, "holds": stats.verdict(ci, direction), "difference": c.difference,
                    "ci": list(c.ci), "p_value": c.p_value, "cells": [list(a), list(b)],
                    **({"factor": factor} if factor != 1 else {}), **({"margin": margin} if margin else {})})

    for bits in sorted({r["bits"] for r in table.rows}):
        for x in ("pgd", "hag", "sdha", "center"):
            claim(f"{bits} bits: the SAAT attack gives lower MAP than {_ATTACKS[x]} on the undefended model",
                  (bits, "none", "saat"), (bits, "none", x), "<")
        for x in ("dhta", "p2p", "tha", "prosgan"):
            claim(f"{bits} bits: targeted SAAT gives higher t-MAP than {_ATTACKS[x]} on the undefended model",
                  (bits, "none", "saat_t"), (bits, "none", f"{x}_t"), ">")
        claim(f"{bits} bits: ProS-GAN raises the t-MAP of the queries above that of the clean queries",
              (bits, "none", "prosgan_t"), (bits, "none", "clean_t"), ">")
        for d in ("saat", "cgat"):
            for x in NON_TARGETED:
                claim(f"{bits} bits: {_NAMES[d]} training keeps more MAP than ATRDH under {_ATTACKS[x]}",
                      (bits, d, x), (bits, "atrdh", x), ">")
        for d in ("saat", "cgat"):
            claim(f"{bits} bits: {_NAMES[d]} training keeps at least twice the undefended MAP under the SAAT attack",
                  (bits, d, "saat"), (bits, "none", "saat"), ">", factor=2.0)
        for d in ("atrdh", "cgat", "saat"):
            claim(f"{bits} bits: {_NAMES[d]} training costs clean MAP against the fine-tuning control",
                  (bits, d, "clean"), (bits, CONTROL, "clean"), "<")
        claim(f"{bits} bits: the clean model is converged (fine-tuning it gains less than 1 point of clean MAP)",
              (bits, CONTROL, "clean"), (bits, "none", "clean"), "<", margin=0.01)
    return out


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
    if defence == CONTROL:
        recipe += [defence, _core.resolve("training", "hashing", _control_params(cfg))]
    elif defence != "none":
        recipe += [defence, _core.resolve("defence", defence, _defence_params(cfg, defence))]
    h.update(json.dumps(recipe, sort_keys=True).encode())
    return h.hexdigest()[:10]


def _given(**params) -> dict:
    return {k: v for k, v in params.items() if v is not None}


def _clean_params(cfg) -> dict:
    return _given(loss=cfg.loss, epochs=cfg.clean_epochs, batch_size=cfg.clean_batch, lr=cfg.clean_lr, seed=cfg.seed)


def _defence_params(cfg, defence) -> dict:
    return _given(loss=cfg.loss, epochs=cfg.defence_epochs.get(defence), batch_size=cfg.defence_batch, seed=cfg.seed)


def _control_params(cfg) -> dict:
    """The fine-tuning control's recipe: clean hashing training (the "hashing" schema) with every
    setting it shares with SAAT's defence taken from SAAT's resolved recipe (optimiser, schedule,
    batch), its own epochs (``defence_epochs["finetune"]``, else SAAT's), and the config's loss
    and seed."""
    own = _core.resolve("defence", CONTROL_OPTIMISER_OF, _defence_params(cfg, CONTROL_OPTIMISER_OF))
    shared = set(_core.resolve("training", "hashing", {}))
    params = {k: v for k, v in own.items() if k in shared}
    params.update(_given(epochs=cfg.defence_epochs.get(CONTROL), seed=cfg.seed, loss=cfg.loss))
    return params


def _model_path(out, data, cfg, bits, defence, key: str | None = None):
    """Where a trained model is kept; ``key``: its :func:`_recipe_key` when the caller has it
    (the digest reads every training image)."""
    key = key or _recipe_key(data, cfg, defence)
    return os.path.join(out, "models", f"{cfg.backbone}-{cfg.loss}-{bits}-{defence}-seed{cfg.seed}-{key}.npz")


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
    """A copy of the clean model hardened by defence ``d`` (or fine-tuned, for the control)."""
    images, labels = train_set
    m = HashingModel(clean.backbone, clean.bits, seed=clean.seed, mean=clean.mean, std=clean.std)
    m.load_state_dict(clean.state_dict())
    if d == CONTROL:
        train(m, images, labels, progress=progress, **_control_params(cfg))
    else:
        DEFENCES[d](m, **_defence_params(cfg, d)).fit(images, labels, progress=progress)
    return m


def _encode(model, train_set, query_images, db_images, label: str = "model"):
    """The codes every cell of a model needs: database, training set and clean queries. Warns
    (``metrics.CollapseWarning``) when the model gives most of the database one code."""
    m = model.eval()
    codes = {"db": m.encode(db_images), "train": m.encode(train_set[0]), "query": m.encode(query_images)}
    metrics.warn_if_collapsed(codes["db"], f"{label}: the database codes")
    return codes


def _curve(codes, q, db_codes) -> dict:
    p, r = metrics.pr_curve(codes, db_codes, q["labels"], q["db_labels"])
    pn = metrics.precision_at_n(codes, db_codes, q["labels"], q["db_labels"])
    return {"precision": np.asarray(p).tolist(), "recall": np.asarray(r).tolist(), "p_at_n": np.asarray(pn).tolist()}


def _attack_cell(model, codes, name, q, cfg, k, curve: bool) -> dict:
    """One cell of the table: ``name``'s MAP@k (t-MAP@k for a targeted attack) on ``model`` with
    its per-query APs (``"__ap__"``), the theory MAP for SAAT's attacks, and the PR / P@N curves
    when ``curve``. ``name`` "clean" is the clean MAP. Pure: the same inputs give the same dict
    wherever it runs."""
    model.eval()
    db_codes, db_labels = codes["db"], q["db_labels"]
    if name == "clean_t":   # the clean queries' t-MAP against the targeted attacks' targets
        m, ap = metrics.t_map_at_k(codes["query"], db_codes, q["targets"], db_labels, k=k, return_ap=True)
        return {"clean_t": m, "__ap__": {"clean_t": ap.tolist()}}
    if name == "clean":
        m, ap = metrics.map_at_k(codes["query"], db_codes, q["labels"], db_labels, k=k, return_ap=True)
        cell = {"clean": m, "__ap__": {"clean": ap.tolist()}}
        if curve:
            cell["__curve__"] = _curve(codes["query"], q, db_codes)
        return cell
    atk = make_attack(name, model, codes["train"], q["train_labels"], db_codes, db_labels, cfg,
                      train_images=q["train_images"])
    labels = q["targets"] if atk.targeted else q["labels"]
    adv = atk(q["images"], labels)
    adv_codes = model.encode(adv)
    if atk.targeted:
        col = f"{name.removesuffix('_t')}_t"
        m, ap = metrics.t_map_at_k(adv_codes, db_codes, labels, db_labels, k=k, return_ap=True)
    else:
        col = name
        m, ap = metrics.map_at_k(adv_codes, db_codes, labels, db_labels, k=k, return_ap=True)
    cell = {col: m, "__ap__": {col: ap.tolist()}}
    if name in ("saat", "saat_t") and atk.last_codes is not None:
        cell[f"theory_{name}"] = theory_map(atk.last_codes, atk.targeted, db_codes, db_labels, labels, k)
    if name in PERCEPTIBILITY:
        cell[f"perceptibility_{col}"] = float(np.sqrt(metrics.perceptibility(adv, q["images"]).mse))
    if curve:
        cell["__curve__"] = _curve(adv_codes, q, db_codes)
    return cell


def make_attack(name, model, train_codes, train_labels, db_codes, db_labels, cfg: ExperimentConfig,
                overrides: dict | None = None, *, train_images=None, progress=False):
    """The attack ``name`` of the table on ``model`` with the config's iteration counts and seed:
    a name of :data:`saat.attacks.ATTACKS`, ``"saat_t"`` (targeted SAAT) or ``"prosgan"``
    (:class:`saat.attacks.ProSGAN`, trained here on ``train_images`` with ``train_labels`` for
    ``cfg.prosgan_epochs`` epochs). The guided attacks and ProS-GAN get the training codes and
    labels, the targeted ones the database codes and labels. CgAT's center attack uses step 1/255
    as the papers' evaluation does (its training default is 2/255). ``overrides``: parameters
    that replace those (e.g. ``{"steps": 5}``)."""
    base = name.removesuffix("_t")
    cls = A.ATTACKS.get(base) or A.GENERATORS.get(base)
    if cls is None or (name != base and base != "saat"):
        raise ValueError(f"argument 'name': expected one of {', '.join([*A.ATTACKS, *A.GENERATORS, 'saat_t'])}, "
                         f"got '{name}'")
    if base in A.GENERATORS and train_images is None:
        raise TypeError(f"argument 'train_images': the {name} attack is a generator trained on the training images")
    data = {"train_codes": train_codes, "train_labels": train_labels, "db_codes": db_codes, "db_labels": db_labels}
    inputs = [data[i["name"]] for i in cls._schema["inputs"]]
    kwargs = {}
    gen = base in A.GENERATORS
    extra = {"steps": getattr(cfg, f"{base}_steps", None), "seed": cfg.seed, "targeted": name == "saat_t",
             "prototype_steps": cfg.prosgan_prototype_steps if gen else cfg.tha_prototype_steps,
             "epochs": cfg.prosgan_epochs if gen else None, "step": 1 / 255 if base == "center" else None}
    names = {p["name"] for p in cls._schema["parameters"]}
    kwargs.update({k: v for k, v in extra.items() if k in names and v is not None})
    kwargs.update(overrides or {})
    atk = cls(model, *inputs, **kwargs)
    if gen:
        atk.fit(train_images, train_labels, progress=progress)
    return atk


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


#: Version of a cell file's contents (2: per-query APs kept); older cells are computed again.
_CELL_FORMAT = 2


def _cell_path(out, cfg, bits, defence, name, model_key, query_key) -> str:
    """Where a finished cell is kept: its file name says what it is; its digest covers the model
    (training data and recipe), the attack settings of the config and the attacked queries."""
    attack_cfg = {f: v for f, v in asdict(cfg).items()
                  if f.endswith("_steps") or f in ("prosgan_epochs", "seeds", "k", "curve_attack")}
    return os.path.join(out, "cells", f"{cfg.backbone}-{cfg.loss}-{bits}-{defence}-{name}-seed{cfg.seed}-"
                                      f"{_digest(_CELL_FORMAT, model_key, name, attack_cfg, query_key)}.json")


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
    """Train/load, attack and tabulate; the layout of SAAT's Tables I–II, with confidence
    intervals, the fine-tuning control row and the papers' claims checked.

    Parameters
    ----------
    data : a dataset with ``.train``, ``.query`` and ``.database`` splits (``.images``, ``.labels``),
        e.g. :func:`saat.datasets.mosaic` or :func:`saat.datasets.load_list_dataset`.
    config : an :class:`ExperimentConfig` or the name of a profile in ``PROFILES``.
    out : output folder: ``models/`` (trained weights) and ``cells/`` (finished cells with their
        per-query APs, one JSON file each), both reused by reruns, so a rerun after a crash
        resumes where it stopped; ``table.json`` (rows, intervals, per-query APs, claims, curves),
        ``table.md``, ``pr_<bits>.png`` and ``pn_<bits>.png``.
    executor : ``"local"`` (this process) or ``"ray"``: one Ray task per model to train (the
        defended ones depend on the clean one, whose weights travel through the object store) and
        one per (model, attack) cell, on the running Ray connection, the cluster at ``address``,
        or a local Ray instance (``pip install 'saat[ray]'``). The driver writes models and cells
        to ``out`` as they finish. Tasks are retried when a worker dies (``max_retries=3``), and
        cells are keyed by (seed, bits, defence, attack), so none is lost or counted twice. The
        table equals the local one for the same data and seeds when the workers run the kernels
        with the same thread count as the driver (saat's default: all CPUs of the machine;
        training sums convolution weight gradients per thread).
    address : Ray cluster address for ``executor="ray"`` (default: ``RAY_ADDRESS`` or local).
    overrides : fields of the config to replace (e.g. ``bits=(16, 32, 64)``, ``seeds=(0, 1, 2)``);
        ``seed=s`` is accepted for ``seeds=(s,)``.

    Returns
    -------
    :class:`Table`: one row per (bits, defence) with ``clean`` (MAP@k), MAP@k under each
    non-targeted attack, and for the undefended model t-MAP@k under each targeted attack (``*_t``
    keys), ``theory_saat`` (MAP of −mainstay code) and ``theory_saat_t``; each MAP the mean over
    seeds with its interval (``row["ci"]``) and, with several seeds, ``row["std"]``; the per-query
    APs (``table.per_query``) for :func:`compare`; and ``table.claims`` (:func:`check_claims`).
    The curves are those of the first seed; the PR and P@N plots draw the undefended model's
    clean queries as a dashed reference.
    """
    cfg = PROFILES[config] if isinstance(config, str) else config
    if not isinstance(cfg, ExperimentConfig):
        raise TypeError(f"argument 'config': expected an ExperimentConfig or one of {list(PROFILES)}")
    if "seed" in overrides:
        if "seeds" in overrides:
            raise ValueError("arguments 'seed' and 'seeds': give one of them")
        overrides["seeds"] = (overrides.pop("seed"),)
    if overrides:
        cfg = ExperimentConfig(**{**asdict(cfg), **overrides})
    if executor not in ("local", "ray"):
        raise ValueError(f"argument 'executor': expected 'local' or 'ray', got {executor!r}")
    if address is not None and executor != "ray":
        raise ValueError("argument 'address': only for executor='ray'")
    for d in cfg.defences:
        if d not in ("none", CONTROL) and d not in DEFENCES:
            raise ValueError(f"argument 'defences': expected names from {['none', CONTROL, *DEFENCES]}, got '{d}'")
    os.makedirs(os.path.join(out, "models"), exist_ok=True)
    os.makedirs(os.path.join(out, "cells"), exist_ok=True)
    q_img, q_lab = data.query.images, data.query.labels
    if cfg.n_query_attack is not None:
        q_img, q_lab = q_img[: cfg.n_query_attack], q_lab[: cfg.n_query_attack]
    db_labels = data.database.labels
    k = min(cfg.k, db_labels.shape[0])
    train_set = (data.train.images, data.train.labels)

    # The plan: per seed, models to train (clean before defended), then cells, each with its
    # cache file. The targets of the targeted attacks are drawn with the seed.
    plan = []   # (seed config, queries, bits, defence, model path, recipe key, [(name, cell path)])
    for s in cfg.seeds:
        scfg = cfg.for_seed(s)
        targets = A.select_target_labels(q_lab, db_labels, seed=s)
        q = {"images": q_img, "labels": q_lab, "targets": targets, "db_labels": db_labels,
             "train_images": data.train.images, "train_labels": data.train.labels}
        query_key = _digest(q_img, q_lab, targets, db_labels, data.database.images)
        for bits in cfg.bits:
            for d in ["none", *[x for x in cfg.defences if x != "none"]]:
                key = _recipe_key(data, scfg, d)
                if d not in cfg.defences:
                    names = []   # the clean model is trained for the defences but not tabulated
                elif d == CONTROL:
                    names = ["clean", cfg.curve_attack]
                else:
                    names = ["clean"] + list(cfg.defended_attacks) + (list(cfg.targeted_attacks) if d == "none" else [])
                plan.append((scfg, q, bits, d, _model_path(out, data, scfg, bits, d, key), key,
                             [(n, _cell_path(out, scfg, bits, d, n, key, query_key)) for n in names]))
    cells = {}
    for scfg, _, bits, d, _, _, todo in plan:
        for name, path in todo:
            c = _read_cell(path)
            if c is not None:
                cells[(scfg.seed, bits, d, name)] = c
    if executor == "local":
        _run_local(plan, cells, train_set, data.database.images, k, progress, verbose)
    else:
        _run_ray(plan, cells, train_set, data.database.images, k, address, verbose)

    table = _assemble(plan, cells, cfg)
    _log("confidence intervals and claims ...", verbose)
    table.claims = check_claims(table)
    table.save(os.path.join(out, "table.json"))
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(table.to_markdown() + "\n")
    if plots and table.curves:
        from .plots import plot_curves
        for bits, c in table.curves.items():
            plot_curves(c, os.path.join(out, f"pr_{bits}.png"), os.path.join(out, f"pn_{bits}.png"),
                        title=f"{cfg.backbone} {cfg.loss.upper()} {bits} bits under {cfg.curve_attack.upper()} attack",
                        reference=table.reference.get(bits))
    return table


def _assemble(plan, cells, cfg) -> Table:
    """The table from finished cells: per (bits, defence) row, each column's mean over seeds, its
    stratified bootstrap interval and (several seeds) the standard deviation of the seeds' MAPs."""
    first = cfg.seeds[0]
    rows, curves, reference, per_query, theory = {}, {}, {}, {}, {}
    for scfg, _, bits, d, _, _, todo in plan:
        for name, _ in todo:
            cell = cells[(scfg.seed, bits, d, name)]
            if scfg.seed == first and "__curve__" in cell:
                if name == "clean":
                    reference[bits] = cell["__curve__"]
                else:
                    curves.setdefault(bits, {})[d] = cell["__curve__"]
            for col, ap in cell["__ap__"].items():
                per_query.setdefault((bits, d, col), []).append(ap)
            for col, v in cell.items():
                if col.startswith(("theory_", "perceptibility_")):
                    theory.setdefault((bits, d, col), []).append(v)
    for (bits, d, col), aps in per_query.items():
        a = np.asarray(aps, dtype=np.float64)
        per_query[(bits, d, col)] = a
        row = rows.setdefault((bits, d), {"bits": bits, "defence": d, "ci": {}, "seeds": list(cfg.seeds)})
        row[col] = float(a.mean())
        row["ci"][col] = list(stats.bootstrap_ci(a))
        if a.shape[0] > 1:
            row.setdefault("std", {})[col] = float(a.mean(axis=1).std(ddof=1))
    for (bits, d, col), vs in theory.items():
        rows[(bits, d)][col] = float(np.mean(vs))
    ordered = [rows[(b, d)] for b in cfg.bits for d in ["none", *[x for x in cfg.defences if x != "none"]]
               if (b, d) in rows]
    return Table(ordered, cfg, curves, per_query, reference=reference)


def _cell_label(bits, d, name, cell) -> str:
    v = next((x for key, x in cell.items() if not key.startswith(("theory", "perceptibility", "__"))), None)
    return f"{bits} bits, {d}: {name} {v:.4f}" if isinstance(v, float) else f"{bits} bits, {d}: {name}"


def _needed_models(plan, cells) -> set:
    """(seed, bits, defence) of the models some missing cell needs: its own, and the clean model
    of a defended one that is not on disk yet (it is trained from it)."""
    need = set()
    for scfg, _, bits, d, path, _, todo in plan:
        if any((scfg.seed, bits, d, n) not in cells for n, _ in todo):
            need.add((scfg.seed, bits, d))
            if d != "none" and not os.path.exists(path):
                need.add((scfg.seed, bits, "none"))
    return need


def _pending_work(plan, cells):
    """(seed config, queries, bits, defence, model path, missing cells) of every model some
    missing cell needs, in plan order (clean models before the defended ones trained from them)."""
    need = _needed_models(plan, cells)
    for scfg, q, bits, d, path, _, todo in plan:
        if (scfg.seed, bits, d) in need:
            yield scfg, q, bits, d, path, [(n, p) for n, p in todo if (scfg.seed, bits, d, n) not in cells]


def _run_local(plan, cells, train_set, db_images, k, progress, verbose):
    """Every missing model and cell, in this process, saved as it finishes."""
    models = {}
    for scfg, q, bits, d, path, pending in _pending_work(plan, cells):
        s = scfg.seed
        if os.path.exists(path):
            models[(s, bits, d)] = HashingModel.load(path)
            _log(f"seed {s}, {bits} bits: loaded {d} model from {path}", verbose)
        else:
            t0 = time.perf_counter()
            m = (_train_clean(train_set, scfg, bits, progress) if d == "none"
                 else _train_defence(train_set, scfg, d, models[(s, bits, "none")], progress))
            m.save(path)
            models[(s, bits, d)] = m
            _log(f"seed {s}, {bits} bits: {d} model trained in {time.perf_counter() - t0:.0f} s", verbose)
        if not pending:
            continue
        m = models[(s, bits, d)]
        codes = _encode(m, train_set, q["images"], db_images, f"seed {s}, {bits} bits, {d} model")
        for name, cpath in pending:
            t0 = time.perf_counter()
            cell = _attack_cell(m, codes, name, q, scfg, k, curve=_wants_curve(scfg, d, name))
            _write_json(cpath, cell)
            cells[(s, bits, d, name)] = cell
            _log(f"seed {s}, {_cell_label(bits, d, name, cell)} ({time.perf_counter() - t0:.1f} s)", verbose)


def _wants_curve(cfg, d, name) -> bool:
    """Curves are kept for the curve attack on every row and for the undefended model's clean
    queries (the plots' dashed reference)."""
    return name == cfg.curve_attack or (name == "clean" and d == "none")


def _run_ray(plan, cells, train_set, db_images, k, address, verbose):
    """Every missing model and cell as Ray tasks; the driver saves each as it finishes."""
    from .distributed._ray import require_ray
    ray = require_ray(address)
    opts = {"max_retries": 3, "retry_exceptions": False}
    train_clean = ray.remote(**opts)(_train_clean)
    train_defence = ray.remote(**opts)(_train_defence)
    encode = ray.remote(**opts)(_encode)
    attack_cell = ray.remote(**opts)(_attack_cell)
    train_ref, db_ref = ray.put(train_set), ray.put(db_images)
    q_refs = {}
    model_refs, pending = {}, {}
    for scfg, q, bits, d, path, missing in _pending_work(plan, cells):
        s = scfg.seed
        if s not in q_refs:
            q_refs[s] = (ray.put(q), ray.put(q["images"]))
        q_ref, q_img_ref = q_refs[s]
        if os.path.exists(path):
            model_refs[(s, bits, d)] = ray.put(HashingModel.load(path))
        else:
            ref = (train_clean.remote(train_ref, scfg, bits, False) if d == "none"
                   else train_defence.remote(train_ref, scfg, d, model_refs[(s, bits, "none")], False))
            model_refs[(s, bits, d)] = ref
            pending[ref] = ("model", s, bits, d, path)
        if missing:
            codes_ref = encode.remote(model_refs[(s, bits, d)], train_ref, q_img_ref, db_ref,
                                      f"seed {s}, {bits} bits, {d} model")
            for name, cpath in missing:
                ref = attack_cell.remote(model_refs[(s, bits, d)], codes_ref, name, q_ref, scfg, k,
                                         _wants_curve(scfg, d, name))
                pending[ref] = ("cell", s, bits, d, name, cpath)
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        what = pending.pop(done[0])
        result = ray.get(done[0])
        if what[0] == "model":
            _, s, bits, d, path = what
            result.save(path)
            _log(f"seed {s}, {bits} bits: {d} model trained (ray)", verbose)
        else:
            _, s, bits, d, name, cpath = what
            _write_json(cpath, result)
            cells[(s, bits, d, name)] = result
            _log(f"seed {s}, {_cell_label(bits, d, name, result)} (ray)", verbose)
