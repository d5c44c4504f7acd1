"""Fuzz worker for issue 9 (reliability), run in a subprocess by tests/test_fuzz_core.py and
tests/test_fuzz_api.py so that a segfault or an abort is reported as a failed test naming the case,
not as a dead test runner.

    python fuzz_worker.py core|api [--examples N] [--only NAME]

Each target (a ``saat._core`` entry point, or a public function/class of ``saat``) has a *valid*
call on tiny inputs; hypothesis draws one or two arguments to corrupt (wrong dtype, ndim, shape,
batch size, empty, NaN/inf, non-contiguous, negative stride, read-only output, zero/negative/huge
hyper-parameters, labels of the wrong width, codes outside {-1, +1}, objects of the wrong type,
extra/unknown/missing arguments). An argument that is a dict of named entries (``params``: an
algorithm's hyper-parameters as its schema in the core declares them; ``inputs``: an attack's data
arrays) is corrupted entry by entry too (``params.steps``: a huge, negative, NaN or wrongly typed
loop count; a missing entry takes its default; an unknown entry). Every case must end in

* a normal return (a documented valid result), or
* TypeError / ValueError / OverflowError / RuntimeError (or MemoryError) whose message names an
  argument of the function (``'name'``), or
* for long but valid work (huge ``steps``/``epochs``/``prototype_steps``, or the papers' defaults
  when the parameter dict is omitted), the interrupt the worker's 1-second alarm
  raises through the core's Ctrl-C path (proves the loop is interruptible: never a hang).

Before each call the worker writes ``CASE <n> <target> <description>`` to stdout (flushed), so
the parent names the case a crash happened in. A hard watchdog (faulthandler) ends the process
if one call does not return within 20 s (an uninterruptible hang). At the end it prints one line
``SUMMARY {json}`` with counts and the list of failures (wrong exception type, message not
naming an argument, SystemError, ...). The address space is capped (RLIMIT_AS) so a huge
allocation fails fast instead of swapping a shared machine.
"""
from __future__ import annotations

import argparse
import faulthandler
import json
import os
import resource
import signal
import sys
import tempfile
import time
import traceback

import numpy as np

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import saat  # noqa: E402
from saat import _core  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings, strategies as st  # noqa: E402


class FuzzTimeout(Exception):
    """Raised by the worker's alarm handler inside a long (valid) computation."""


def _on_alarm(signum, frame):
    raise FuzzTimeout("alarm")


SUITE = "core"
ALARM_S = 1.0
WATCHDOG_S = 20.0
ACCEPTED = (TypeError, ValueError, OverflowError, RuntimeError)

# --------------------------------------------------------------------------- tiny fixtures
RNG = np.random.default_rng(0)
BITS = 8
CLASSES = 3
N = 2


def _img(n=N):
    return RNG.random((n, 3, 32, 32), dtype=np.float32)


def _pm1(n, k=BITS, dtype=np.float32):
    return np.where(RNG.random((n, k)) < 0.5, -1, 1).astype(dtype)


def _lab(n, c=CLASSES, dtype=np.float32):
    y = (RNG.random((n, c)) < 0.5).astype(dtype)
    y[:, 0] = 1
    return y


MODEL = saat.HashingModel("cnn-small", bits=BITS, seed=0)
MODEL16 = saat.HashingModel("cnn-small", bits=16, seed=1)
TRAIN_CODES = _pm1(6)
TRAIN_LABELS = _lab(6)
# Hyper-parameters of the attacks' valid calls: tiny (2 steps; THA's prototype net 2 steps of 4 label
# rows), so a valid call returns well within the alarm and only a huge loop count is long work.
ATTACK_PARAMS = {
    "pgd": {"eps": 8 / 255, "step": 2 / 255, "steps": 2, "random_start": True, "seed": 0},
    "saat": {"eps": 8 / 255, "step": 1 / 255, "steps": 2, "targeted": False, "seed": 0, "random_start": True,
             "alpha_schedule": True},
    "center": {"eps": 8 / 255, "step": 2 / 255, "steps": 2, "targeted": True, "seed": 0, "random_start": False},
    "hag": {"eps": 8 / 255, "lr": 100.0, "momentum": 0.9, "steps": 2},
    "sdha": {"eps": 8 / 255, "lr": 0.01, "steps": 2, "targeted": False},
    "dhta": {"n_t": 2, "eps": 0.032, "step": 1 / 255, "steps": 2, "seed": 0},
    "p2p": {"eps": 0.032, "step": 1 / 255, "steps": 2, "seed": 0},
    "tha": {"prototype_steps": 2, "prototype_batch": 4, "eps": 8 / 255, "step": 1 / 255, "steps": 2, "seed": 0},
}
# The data inputs of each attack (attack_prepare's `inputs`): the training set for the guided
# attacks, the database for the targeted ones (TRAIN_* double as the database: the target labels
# TRAIN_LABELS[:2] occur in it).
ATTACK_INPUTS = {
    "pgd": (), "hag": (), "saat": ("train_codes", "train_labels"), "center": ("train_codes", "train_labels"),
    "sdha": ("train_codes", "train_labels"), "dhta": ("db_codes", "db_labels"), "p2p": ("db_codes", "db_labels"),
    "tha": ("db_codes", "db_labels"),
}


def _attack_inputs(name):
    return {k: (TRAIN_CODES if k.endswith("codes") else TRAIN_LABELS).copy() for k in ATTACK_INPUTS[name]} or None


def _prepare(name, model=MODEL):
    return _core.attack_prepare(name, model._handle, _attack_inputs(name), dict(ATTACK_PARAMS[name]))[0]


# One prepared handle per attack for attack_run (labels: saat, center, sdha, dhta, p2p, tha; none: pgd, hag)
ATTACKS = {name: _prepare(name) for name in ATTACK_PARAMS}
ATTACKS_WITH_LABELS = ("saat", "center", "sdha", "dhta", "p2p", "tha")
# a prepared attack of a 16-bit model: running it with the 8-bit MODEL is an error naming 'model'
ATTACK16 = _core.attack_prepare("tha", MODEL16._handle, {"db_codes": _pm1(6, 16), "db_labels": TRAIN_LABELS.copy()},
                                dict(ATTACK_PARAMS["tha"]))[0]
# The same attacks with the largest valid loop count (steps = 2**31 - 1; the prototype net stays
# tiny): attack_run with one of them is long valid work that the alarm must interrupt.
ATTACKS_LONG = {name: _core.attack_prepare(name, MODEL._handle, _attack_inputs(name),
                                           {**ATTACK_PARAMS[name], "steps": 2**31 - 1})[0] for name in ATTACK_PARAMS}
TMP = tempfile.mkdtemp(prefix="saat-fuzz-")


# --------------------------------------------------------------------------- corruptions
class _Weird:
    """An object with no buffer, no number protocol and a raising __len__/__array__."""

    def __len__(self):
        raise RuntimeError("weird __len__")

    def __repr__(self):
        return "_Weird()"


def _readonly(a):
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


def _with_nan(a, v=np.nan):
    a = np.array(a, copy=True)
    if a.size and np.issubdtype(a.dtype, np.floating):
        a.flat[a.size // 2] = v
    return a


def _noncontig(a):
    if a.ndim == 0:
        return a
    big = np.repeat(a, 2, axis=-1)
    return big[..., ::2]


def _negstride(a):
    if a.ndim == 0 or a.shape[0] < 2:
        return np.concatenate([a, a])[::-1] if a.ndim else a
    return a[::-1]


def _fortran(a):
    return np.asfortranarray(a) if a.ndim >= 2 else a


def _drop_row(a):
    return a[:-1].copy() if a.ndim and a.shape[0] else a


def _add_row(a):
    return np.concatenate([a, a[:1]]) if a.ndim and a.shape[0] else a


def _add_col(a):
    return np.concatenate([a, a[..., :1]], axis=-1) if a.ndim >= 2 and a.shape[-1] else a


def _drop_col(a):
    return a[..., :-1].copy() if a.ndim >= 2 else a


def _empty_rows(a):
    return a[:0].copy() if a.ndim else a


def _empty_cols(a):
    return a[..., :0].copy() if a.ndim >= 2 else a


def _add_dim(a):
    return a[None].copy()


def _flatten(a):
    return a.reshape(-1).copy()


def _scalar(a):
    return np.asarray(a).reshape(-1)[:1].reshape(()).copy() if a.size else np.float32(0)


def _off_set(a):
    """Values outside the argument's set (codes not ±1, labels not 0/1, pixels > 1)."""
    a = np.array(a, copy=True)
    if a.size:
        a.flat[0] = 2 if np.issubdtype(a.dtype, np.integer) else 0.5
    return a


def _zeros(a):
    return np.zeros_like(a)


def _unaligned(a):
    raw = np.zeros(a.nbytes + 1, np.uint8)
    u = raw[1:].view(a.dtype).reshape(a.shape) if a.size else a
    if a.size:
        u[...] = a
    return u


ARRAY_MUTATIONS = {
    "float64": lambda a: a.astype(np.float64),
    "float16": lambda a: a.astype(np.float16),
    "int8": lambda a: a.astype(np.int8),
    "uint8": lambda a: a.astype(np.uint8),
    "int32": lambda a: a.astype(np.int32),
    "int64": lambda a: a.astype(np.int64),
    "bool": lambda a: a.astype(np.bool_),
    "float32": lambda a: a.astype(np.float32),
    "object": lambda a: a.astype(object),
    "complex": lambda a: a.astype(np.complex64),
    "bigendian": lambda a: a.astype(a.dtype.newbyteorder(">")) if a.dtype.itemsize > 1 else a.astype(">f4"),
    "nan": _with_nan,
    "inf": lambda a: _with_nan(a, np.inf),
    "-inf": lambda a: _with_nan(a, -np.inf),
    "noncontig": _noncontig,
    "negstride": _negstride,
    "fortran": _fortran,
    "readonly": _readonly,
    "unaligned": _unaligned,
    "drop_row": _drop_row,
    "add_row": _add_row,
    "add_col": _add_col,
    "drop_col": _drop_col,
    "empty_rows": _empty_rows,
    "empty_cols": _empty_cols,
    "add_dim": _add_dim,
    "flatten": _flatten,
    "scalar": _scalar,
    "off_set": _off_set,
    "zeros": _zeros,
    "list": lambda a: a.tolist(),
    "memoryview": lambda a: memoryview(np.ascontiguousarray(a)),
    "bytes": lambda a: np.ascontiguousarray(a).tobytes(),
}

OTHER_VALUES = {
    "None": None, "int0": 0, "int1": 1, "int-1": -1, "int_huge": 2**62, "int_i64max": 2**63 - 1,
    "int_over": 2**64, "int_neg_huge": -(2**63), "float0": 0.0, "float-1": -1.0, "float_nan": float("nan"),
    "int_i32max": 2**31 - 1, "float_inf": float("inf"), "float_-inf": float("-inf"), "float_huge": 1e30, "float_tiny": 1e-30,
    "float_half": 0.5, "bool": True, "str": "x", "str_empty": "", "bytes": b"x", "list": [], "tuple": (1, 2),
    "dict": {}, "object": object(), "weird": _Weird(), "np_f32": np.float32(1.0), "np_i64": np.int64(3),
    "array0d": np.array(1.0, np.float32), "callable": (lambda *a: None),
    "model_handle": MODEL._handle, "attack_handle": ATTACKS["pgd"], "attack16_handle": ATTACK16,
    "capsule16": MODEL16._handle, "dict_params": {"steps": 2}, "dict_bad_key": {1: 2},
}


def _describe(v):
    if isinstance(v, np.ndarray):
        return f"ndarray{v.shape}:{v.dtype}{'' if v.flags.c_contiguous else ':noncontig'}{'' if v.flags.writeable else ':ro'}"
    r = repr(v)
    return r if len(r) < 60 else r[:57] + "..."


# --------------------------------------------------------------------------- targets
# Arguments that are dicts of named entries (an algorithm's hyper-parameters, an attack's data
# arrays): each entry is corrupted on its own, like a top-level argument ("params.steps").
NESTED = ("params", "inputs")


class Target:
    """One callable with a factory of valid arguments (positional names in order + keyword)."""

    def __init__(self, name, fn, make, long_params=(), names_in_message=None, alarm=None, long_values=None):
        self.alarm = alarm or ALARM_S   # seconds before the alarm interrupts a call
        # argument -> {label: value}: extra corruptions of this target that mean long valid work
        self.long_values = long_values or {}
        self.name = name
        self.fn = fn
        self.make = make                  # () -> dict of valid kwargs (ordered)
        self.long_params = set(long_params)   # params whose huge values mean long valid work
        self.names_in_message = names_in_message


def core_targets():
    m = MODEL._handle
    T = []

    def add(name, make, long_params=(), fn=None, long_values=None):
        """`name`: the entry point, with an optional "[variant]" suffix for a second valid call."""
        T.append(Target(name, fn or getattr(_core, name.split("[")[0]), make, long_params, long_values=long_values))

    add("info", lambda: {})
    add("set_blas_threads", lambda: {"n": 1})
    add("set_threads", lambda: {"n": 0})
    add("sgemm", lambda: {"a": RNG.random((3, 4), dtype=np.float32), "b": RNG.random((4, 2), dtype=np.float32),
                          "out": np.zeros((3, 2), np.float32), "trans_a": False, "trans_b": False,
                          "alpha": 1.0, "beta": 0.0})
    add("conv2d", lambda: {"x": RNG.random((2, 3, 6, 6), dtype=np.float32),
                           "weight": RNG.random((4, 3, 3, 3), dtype=np.float32), "bias": RNG.random(4, dtype=np.float32),
                           "out": np.zeros((2, 4, 3, 3), np.float32), "stride": 2, "padding": 1})
    add("pack_codes", lambda: {"codes": _pm1(3, 70, np.int8), "out": np.zeros((3, 2), np.uint64)})
    add("hamming_distances", lambda: {"query": _pm1(2, 9, np.int8), "database": _pm1(3, 9, np.int8),
                                      "out": np.zeros((2, 3), np.int32)})
    add("model_new", lambda: {"backbone": "cnn-small", "bits": 4, "seed": 0,
                              "mean": np.zeros(3, np.float32), "std": np.ones(3, np.float32)})
    add("model_info", lambda: {"model": m})
    add("model_set_mode", lambda: {"model": m, "training": False})
    add("model_set_normalisation", lambda: {"model": m, "mean": np.zeros(3, np.float32), "std": np.ones(3, np.float32)})
    add("model_forward", lambda: {"model": m, "x": _img(), "out": np.zeros((N, BITS), np.float32), "alpha": 1.0})
    add("model_input_gradient", lambda: {"model": m, "x": _img(), "grad_out": RNG.random((N, BITS), dtype=np.float32),
                                         "out": np.zeros((N, 3, 32, 32), np.float32), "alpha": 1.0})
    add("model_state_dict", lambda: {"model": m})
    add("model_load_state_dict", lambda: {"model": m, "state": {k: v.copy() for k, v in MODEL.state_dict().items()}})

    def loss_kw(name, params):
        return {"name": name, "u": RNG.uniform(-1, 1, (2, BITS)).astype(np.float32),
                "labels": TRAIN_LABELS[:2].copy(), "indices": np.array([0, 1], np.int64),
                "train_labels": TRAIN_LABELS.copy(), "memory": RNG.uniform(-1, 1, (6, BITS)).astype(np.float32),
                "grad_out": np.zeros((2, BITS), np.float32), "params": params, "write_memory": False}
    add("hash_loss", lambda: loss_kw("dpsh", {}))
    add("hash_loss[csq]", lambda: loss_kw("csq", {"seed": 0}))   # the one loss with a parameter
    q_codes, d_codes = _pm1(2, BITS, np.int8), _pm1(5, BITS, np.int8)
    q_lab, d_lab = _lab(2, CLASSES, np.uint8), _lab(5, CLASSES, np.uint8)
    add("map_at_k", lambda: {"query_codes": q_codes.copy(), "db_codes": d_codes.copy(), "query_labels": q_lab.copy(),
                             "db_labels": d_lab.copy(), "k": 3, "ap_out": np.zeros(2), "threads": 1})
    add("pr_curve", lambda: {"query_codes": q_codes.copy(), "db_codes": d_codes.copy(), "query_labels": q_lab.copy(),
                             "db_labels": d_lab.copy(), "precision_out": np.zeros(100), "recall_out": np.zeros(100),
                             "threads": 1})
    add("precision_at_n", lambda: {"query_codes": q_codes.copy(), "db_codes": d_codes.copy(),
                                   "query_labels": q_lab.copy(), "db_labels": d_lab.copy(),
                                   "n": np.array([1, 3], np.int64), "out": np.zeros(2), "threads": 1})
    add("hamming_rank", lambda: {"query_codes": q_codes.copy(), "db_codes": d_codes.copy(), "k": 3,
                                 "out": np.zeros((2, 3), np.int64), "threads": 1})
    add("semantic_codes", lambda: {"kind": "mainstay", "labels": TRAIN_LABELS[:2].copy(),
                                   "train_codes": TRAIN_CODES.copy(), "train_labels": TRAIN_LABELS.copy(),
                                   "out": np.zeros((2, BITS), np.int8)})

    # schemas: the registry; resolve: one registry entry of every kind, with values for some of
    # its parameters (each one corrupted in turn: huge, negative, NaN, wrong type, ...)
    add("schemas", lambda: {})
    add("resolve", lambda: {"kind": "attack", "name": "tha", "params": dict(ATTACK_PARAMS["tha"])})
    add("resolve[training]", lambda: {"kind": "training", "name": "hashing",
                                      "params": {"loss": "dpsh", "epochs": 1, "batch_size": 2, "lr": 0.01,
                                                 "milestones": (0.5,), "gamma": 0.1, "seed": 0}})
    add("resolve[defence]", lambda: {"kind": "defence", "name": "saat",
                                     "params": {"epochs": 1, "steps": 1, "eps": 8 / 255, "lambda_adv": 1.0}})
    add("resolve[loss]", lambda: {"kind": "loss", "name": "csq", "params": {"seed": 0}})

    # attack_prepare: every attack, tiny settings. Only THA works at preparation (its prototype
    # net): a huge prototype_steps (or the paper's default of 30,000) is long valid work.
    for name in ATTACK_PARAMS:
        long = ("params.prototype_steps", "params") if name == "tha" else ()
        add(f"attack_prepare[{name}]",
            lambda name=name: {"name": name, "model": m, "inputs": _attack_inputs(name),
                               "params": dict(ATTACK_PARAMS[name])}, long_params=long)

    # attack_run: a prepared handle of every attack (labels: true labels for saat/center/sdha,
    # target labels in the database for dhta/p2p/tha; none for pgd/hag), with the guide output.
    # The handle may be swapped for the same attack prepared with 2**31 - 1 steps (long work).
    for name in ATTACK_PARAMS:
        labels = name in ATTACKS_WITH_LABELS
        add(f"attack_run[{name}]",
            lambda name=name, labels=labels: {"attack": ATTACKS[name], "model": m, "images": _img(),
                                              "out": np.zeros((N, 3, 32, 32), np.float32),
                                              "labels": TRAIN_LABELS[:2].copy() if labels else None,
                                              "guide_out": np.zeros((N, BITS), np.int8), "first_index": 0},
            long_values={"attack": {"steps_max": ATTACKS_LONG[name]}})

    # train: every recipe on 4 images, 1 epoch of 2 batches, 1 inner attack step
    def train_kw(method, params):
        return {"method": method, "model": saat.HashingModel("cnn-small", bits=BITS, seed=0)._handle,
                "images": _img(4), "labels": _lab(4), "params": params, "progress": None,
                "checkpoint": None, "checkpoint_every": 0, "resume": None, "memory_out": None,
                "rank": 0, "size": 1, "allreduce": None, "allgather": None}
    common = {"loss": "dpsh", "epochs": 1, "batch_size": 2, "milestones": np.array([0.5], np.float32),
              "gamma": 0.1, "seed": 0}
    long = ("params", "params.epochs", "params.steps", "checkpoint_every")
    add("train", lambda: train_kw("hashing", {**common, "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4}),
        long_params=long)
    add("train[saat]", lambda: train_kw("saat", {**common, "lr": 0.05, "momentum": 0.0, "weight_decay": 1e-5,
                                                  "lambda_adv": 1.0, "mu": 1e-4, "eps": 8 / 255, "step": 2 / 255,
                                                  "steps": 1}), long_params=long)
    add("train[cgat]", lambda: train_kw("cgat", {**common, "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4,
                                                  "lambda_adv": 1.0, "eps": 8 / 255, "step": 2 / 255, "steps": 1}),
        long_params=long)
    add("train[atrdh]", lambda: train_kw("atrdh", {**common, "lr": 1e-4, "adv_weight": 2.0, "eps": 8 / 255,
                                                    "step": 2 / 255, "steps": 1}), long_params=long)
    return T


# ---- public API targets: the Python front in front of the core
def api_targets():
    from saat import attacks, codes, defences, kernels, losses, metrics
    T = []

    def add(name, fn, make, long_params=(), alarm=None):
        T.append(Target(name, fn, make, long_params, alarm=alarm))

    def fresh():
        return saat.HashingModel("cnn-small", bits=BITS, seed=0)

    add("HashingModel", saat.HashingModel, lambda: {"backbone": "cnn-small", "bits": 4, "seed": 0,
                                                    "mean": [0.5, 0.5, 0.5], "std": [0.2, 0.2, 0.2]})
    add("HashingModel.forward", lambda x, alpha: MODEL.forward(x, alpha), lambda: {"x": _img(), "alpha": 1.0})
    add("HashingModel.encode", lambda x: MODEL.encode(x), lambda: {"x": _img()})
    add("HashingModel.input_gradient", lambda x, grad_out, alpha: MODEL.input_gradient(x, grad_out, alpha),
        lambda: {"x": _img(), "grad_out": RNG.random((N, BITS), dtype=np.float32), "alpha": 1.0})
    add("HashingModel.load_state_dict", lambda state: fresh().load_state_dict(state),
        lambda: {"state": dict(MODEL.state_dict())})
    add("HashingModel.set_normalisation", lambda mean, std: fresh().set_normalisation(mean, std),
        lambda: {"mean": [0.1, 0.2, 0.3], "std": [1.0, 1.0, 1.0]})
    add("codes.mainstay", codes.mainstay, lambda: {"labels": TRAIN_LABELS[:2].copy(),
                                                  "train_codes": TRAIN_CODES.copy(), "train_labels": TRAIN_LABELS.copy()})
    add("codes.center", codes.center, lambda: {"labels": TRAIN_LABELS[:2].copy(),
                                              "train_codes": TRAIN_CODES.copy(), "train_labels": TRAIN_LABELS.copy()})

    def attack_target(cls, ctor, needs_labels, long_params=("steps",)):
        def run(images, labels=None, **kw):
            a = cls(MODEL, **kw)
            return a(images, labels) if needs_labels else a(images)
        T.append(Target(f"attacks.{cls.__name__}", run,
                        lambda: {"images": _img(), **({"labels": TRAIN_LABELS[:2].copy()} if needs_labels else {}),
                                 **ctor()}, long_params))

    attack_target(attacks.PGD, lambda: {"eps": 8 / 255, "step": 2 / 255, "steps": 2, "random_start": True, "seed": 0}, False)
    attack_target(attacks.SAATAttack, lambda: {"train_codes": TRAIN_CODES.copy(), "train_labels": TRAIN_LABELS.copy(),
                                               "eps": 8 / 255, "step": 1 / 255, "steps": 2, "targeted": False}, True)
    attack_target(attacks.CenterAttack, lambda: {"train_codes": TRAIN_CODES.copy(), "train_labels": TRAIN_LABELS.copy(),
                                                 "eps": 8 / 255, "step": 2 / 255, "steps": 2, "targeted": True}, True)
    attack_target(attacks.HAG, lambda: {"eps": 8 / 255, "lr": 100.0, "momentum": 0.9, "steps": 2}, False)
    attack_target(attacks.SDHA, lambda: {"train_codes": TRAIN_CODES.copy(), "train_labels": TRAIN_LABELS.copy(),
                                         "eps": 8 / 255, "lr": 0.01, "steps": 2, "targeted": False}, True)
    attack_target(attacks.DHTA, lambda: {"db_codes": TRAIN_CODES.copy(), "db_labels": TRAIN_LABELS.copy(), "n_t": 2,
                                         "eps": 0.032, "step": 1 / 255, "steps": 2}, True)
    attack_target(attacks.P2P, lambda: {"db_codes": TRAIN_CODES.copy(), "db_labels": TRAIN_LABELS.copy(),
                                        "eps": 0.032, "step": 1 / 255, "steps": 2}, True)
    attack_target(attacks.THA, lambda: {"db_codes": TRAIN_CODES.copy(), "db_labels": TRAIN_LABELS.copy(),
                                        "prototype_steps": 2, "prototype_batch": 4, "eps": 8 / 255, "step": 1 / 255,
                                        "steps": 2}, True, long_params=("steps", "prototype_steps", "prototype_batch"))

    def prosgan(images, labels=None, **kw):
        a = attacks.ProSGAN(MODEL, **kw)
        a.fit(images, labels, progress=False)
        return a(images, labels)
    T.append(Target("attacks.ProSGAN", prosgan,
                    lambda: {"images": _img(), "labels": TRAIN_LABELS[:2].copy(), "train_codes": TRAIN_CODES.copy(),
                             "train_labels": TRAIN_LABELS.copy(), "epochs": 1, "batch_size": 2, "prototype_steps": 2,
                             "prototype_batch": 4, "rec_weight": 100.0, "seed": 0},
                    ("epochs", "prototype_steps", "prototype_batch")))
    add("attacks.select_target_labels", attacks.select_target_labels,
        lambda: {"query_labels": np.array([[1, 0, 0]], np.float32), "db_labels": np.eye(3, dtype=np.float32), "seed": 0})

    def defence_target(cls, extra):
        def run(images, labels, progress=False, checkpoint=None, checkpoint_every=0, **kw):
            return cls(fresh(), **kw).fit(images, labels, progress=progress, checkpoint=checkpoint,
                                          checkpoint_every=checkpoint_every)
        T.append(Target(f"defences.{cls.__name__}.fit", run,
                        lambda: {"images": _img(4), "labels": _lab(4), "loss": "dpsh", "epochs": 1, "batch_size": 2,
                                 "steps": 1, **extra()},
                        long_params=("epochs", "steps", "checkpoint_every")))

    defence_target(defences.SAATTraining, lambda: {"lr": 0.05, "eps": 8 / 255})
    defence_target(defences.CgATTraining, lambda: {"lr": 0.01, "momentum": 0.9})
    defence_target(defences.ATRDH, lambda: {"lr": 1e-4, "adv_weight": 2.0})
    add("train", lambda images, labels, **kw: saat.train(fresh(), images, labels, **kw),
        lambda: {"images": _img(4), "labels": _lab(4), "loss": "dpsh", "epochs": 1, "batch_size": 2, "lr": 0.01,
                 "momentum": 0.9, "weight_decay": 5e-4, "milestones": (0.5,), "gamma": 0.1, "seed": 0,
                 "progress": False}, long_params=("epochs", "checkpoint_every"))
    q_codes, d_codes = _pm1(2, BITS, np.int8), _pm1(5, BITS, np.int8)
    q_lab, d_lab = _lab(2, CLASSES, np.uint8), _lab(5, CLASSES, np.uint8)
    mk = lambda: {"query_codes": q_codes.copy(), "db_codes": d_codes.copy(), "query_labels": q_lab.copy(),  # noqa: E731
                  "db_labels": d_lab.copy()}
    add("metrics.map_at_k", metrics.map_at_k, lambda: {**mk(), "k": 3, "threads": 1})
    add("metrics.t_map_at_k", metrics.t_map_at_k,
        lambda: {"query_codes": q_codes.copy(), "db_codes": d_codes.copy(), "target_labels": q_lab.copy(),
                 "db_labels": d_lab.copy(), "k": 3})
    add("metrics.pr_curve", metrics.pr_curve, lambda: {**mk(), "threads": 1})
    add("metrics.precision_at_n", metrics.precision_at_n, lambda: {**mk(), "n": [1, 3]})
    add("metrics.hamming_rank", metrics.hamming_rank, lambda: {"query_codes": q_codes.copy(),
                                                               "db_codes": d_codes.copy(), "k": 3})
    add("metrics.perceptibility", metrics.perceptibility, lambda: {"x_adv": _img(), "x": _img()})
    add("kernels.sgemm", kernels.sgemm, lambda: {"a": RNG.random((3, 4), dtype=np.float32),
                                                 "b": RNG.random((4, 2), dtype=np.float32), "out": None})
    add("kernels.pack_codes", kernels.pack_codes, lambda: {"codes": _pm1(3, 70, np.int8)})
    add("kernels.hamming_distances", kernels.hamming_distances,
        lambda: {"query": _pm1(2, 9, np.int8), "database": _pm1(3, 9, np.int8)})
    add("kernels.set_blas_threads", kernels.set_blas_threads, lambda: {"n": 1})
    add("kernels.set_threads", kernels.set_threads, lambda: {"n": None})
    add("losses.hash_loss", losses.hash_loss,
        lambda: {"name": "dpsh", "u": RNG.uniform(-1, 1, (2, BITS)).astype(np.float32), "labels": TRAIN_LABELS[:2].copy(),
                 "indices": np.array([0, 1], np.int64), "train_labels": TRAIN_LABELS.copy(),
                 "memory": RNG.uniform(-1, 1, (6, BITS)).astype(np.float32)})
    add("losses.hash_loss[csq]", losses.hash_loss,
        lambda: {"name": "csq", "u": RNG.uniform(-1, 1, (2, BITS)).astype(np.float32), "labels": TRAIN_LABELS[:2].copy(),
                 "indices": np.array([0, 1], np.int64), "train_labels": TRAIN_LABELS.copy(),
                 "memory": RNG.uniform(-1, 1, (6, BITS)).astype(np.float32), "seed": 0})
    add("training.channel_stats", saat.training.channel_stats, lambda: {"images": _img()})

    # datasets: a tiny list dataset on disk (both formats), the mosaic builder, helpers
    from saat import datasets
    root = _list_dataset()
    add("datasets.load_list_split", datasets.load_list_split,
        lambda: {"root": root, "split": "s", "image_size": 8, "resize": 9, "image_root": None})
    add("datasets.iter_list_split", lambda **kw: list(datasets.iter_list_split(**kw)),
        lambda: {"root": root, "split": "s", "image_size": 8, "resize": 9, "batch_size": 1})
    add("datasets.load_list_dataset", datasets.load_list_dataset,
        lambda: {"root": root, "image_size": 8, "resize": 8, "classes": None})
    add("datasets.load_deephash_list", datasets.load_deephash_list,
        lambda: {"list_file": os.path.join(root, "dh.txt"), "image_root": root, "image_size": 8, "resize": 8})
    add("datasets.iter_deephash_list", lambda **kw: list(datasets.iter_deephash_list(**kw)),
        lambda: {"list_file": os.path.join(root, "dh.txt"), "image_root": root, "image_size": 8, "resize": 8,
                 "batch_size": 2})
    add("datasets.mosaic", datasets.mosaic,
        lambda: {"n_train": 4, "n_database": 6, "n_query": 3, "seed": 0, "n_scenes": 2, "concentration": 0.15,
                 "object_probs": (0.5, 0.5, 0, 0), "mnist_query_fraction": 0.2},
        long_params=("n_train", "n_database", "n_query"), alarm=10.0)   # the first call reads the image sets
    add("datasets.resize_area", datasets.resize_area, lambda: {"images": RNG.random((2, 8, 8)), "size": 4})
    add("datasets.relevant_fraction", datasets.relevant_fraction,
        lambda: {"query_labels": _lab(2), "database_labels": _lab(5)})
    return T


def _list_dataset():
    """Three small PNGs with list files in both formats (pair: s_img/s_label, and the
    train/test/database splits; DeepHash: dh.txt)."""
    from PIL import Image
    root = os.path.join(TMP, "lists")
    os.makedirs(os.path.join(root, "img"), exist_ok=True)
    for i in range(3):
        Image.fromarray(np.full((10, 12, 3), 60 * i, np.uint8)).save(os.path.join(root, "img", f"{i}.png"))
    labels = ["1 0", "0 1", "1 1"]
    for split in ("s", "train", "test", "database"):
        with open(os.path.join(root, f"{split}_img.txt"), "w") as f:
            f.write("".join(f"img/{i}.png\n" for i in range(3)))
        with open(os.path.join(root, f"{split}_label.txt"), "w") as f:
            f.write("".join(l + "\n" for l in labels))
    with open(os.path.join(root, "dh.txt"), "w") as f:
        f.write("".join(f"img/{i}.png {labels[i]}\n" for i in range(3)))
    return root


# --------------------------------------------------------------------------- one case
STATS = {"cases": 0, "ok": 0, "raised": 0, "interrupted": 0, "failures": []}
MAX_FAILURES = 200


def _fail(target, desc, why):
    STATS["failures"].append(f"{target.name}: {desc}: {why}")
    print(f"FAIL {target.name}: {desc}: {why}", flush=True)


def run_case(target, args, kwargs, desc, mutated, param_names):
    STATS["cases"] += 1
    print(f"CASE {STATS['cases']} {target.name} {desc}", flush=True)
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
    signal.setitimer(signal.ITIMER_REAL, target.alarm)
    t0 = time.perf_counter()
    try:
        try:
            target.fn(*args, **kwargs)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            faulthandler.cancel_dump_traceback_later()
    except FuzzTimeout:
        STATS["interrupted"] += 1
        if not (set(mutated) & target.long_params) and not any(m.startswith("+") for m in mutated):
            _fail(target, desc, f"did not finish within {target.alarm}s and no loop-count argument was made huge (hang?)")
        return
    except ACCEPTED as e:
        STATS["raised"] += 1
        msg = str(e)
        if isinstance(e, SystemError) or type(e).__name__ == "SystemError":
            _fail(target, desc, f"SystemError: {msg}")
            return
        names = set(param_names) | set(m.lstrip("+-") for m in mutated)
        names |= {n.split(".")[-1] for n in names}   # "params.steps": the message names 'steps'
        fn = target.name.split("[")[0]                 # "attack_prepare[tha]": the entry point
        if not any(f"'{n}" in msg or f"{n}(" in msg or f"{n}[" in msg for n in names) \
                and not (fn in msg or fn.split(".")[-1] in msg):
            _fail(target, desc, f"{type(e).__name__} does not name an argument: {msg!r}")
        return
    except OSError as e:
        # documented for file arguments (a list file or image that does not exist): the message
        # names the path the caller gave
        STATS["raised"] += 1
        paths = [str(os.fsdecode(v)) for v in list(kwargs.values()) + list(args) if isinstance(v, (str, bytes))]
        if not any(p and p in str(e) for p in paths):
            _fail(target, desc, f"{type(e).__name__} names no argument or path: {e!r}")
        return
    except MemoryError as e:
        STATS["raised"] += 1
        if not any(f"'{n}" in str(e) for n in param_names):
            _fail(target, desc, f"MemoryError without an argument name: {e!r}")
        return
    except BaseException as e:  # noqa: BLE001 - every other outcome is a finding
        if isinstance(e, SystemError):
            _fail(target, desc, f"SystemError: {e}")
        else:
            _fail(target, desc, f"unexpected {type(e).__name__}: {e!r}\n{traceback.format_exc(limit=3)}")
        return
    dt = time.perf_counter() - t0
    STATS["ok"] += 1
    if dt > target.alarm * 3:
        _fail(target, desc, f"took {dt:.1f}s")


def mutation_strategy(valid_value, all_names, long_values=None):
    """A (label, value) strategy of corruptions for one argument."""
    opts = [st.sampled_from(sorted(OTHER_VALUES))]
    if isinstance(valid_value, np.ndarray):
        opts.append(st.sampled_from(sorted(ARRAY_MUTATIONS)).map(lambda k: "arr:" + k))
    if long_values:
        opts.append(st.sampled_from(sorted(long_values)).map(lambda k: "long:" + k))
    return st.one_of(*opts)


def apply_mutation(label, valid_value, long_values=None):
    if label.startswith("arr:"):
        return ARRAY_MUTATIONS[label[4:]](valid_value)
    if label.startswith("long:"):
        return long_values[label[5:]]
    v = OTHER_VALUES[label]
    return v


def arg_names(kw):
    """The corruptible names of a call: its arguments, then "params.<name>" / "inputs.<name>" for
    every entry of a dict argument of NESTED (an algorithm's hyper-parameters, an attack's data)."""
    names = list(kw)
    for top in NESTED:
        if isinstance(kw.get(top), dict):
            names += [f"{top}.{k}" for k in kw[top]]
    return names


def _get(kw, name):
    top, _, key = name.partition(".")
    if key and not isinstance(kw.get(top), dict):
        raise KeyError(name)
    return kw[top][key] if key else kw[top]


def _set(kw, name, value):
    """Sets an argument or a dict entry (on a copy of the dict: it may be a shared OTHER_VALUES
    object after an earlier corruption). False when the dict argument was itself replaced by a
    non-dict."""
    top, _, key = name.partition(".")
    if not key:
        kw[top] = value
        return True
    if not isinstance(kw.get(top), dict):
        return False
    kw[top] = dict(kw[top])
    kw[top][key] = value
    return True


def _pop(kw, name):
    top, _, key = name.partition(".")
    if not key:
        kw.pop(top)
        return True
    if not isinstance(kw.get(top), dict) or key not in kw[top]:
        return False
    kw[top] = {k: v for k, v in kw[top].items() if k != key}
    return True


def make_test(target, examples, derandomize):
    base = target.make()
    names = arg_names(base)
    top_names = list(base)
    leaf_names = [n.split(".")[-1] for n in names]

    @settings(max_examples=examples, deadline=None, derandomize=derandomize, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck), print_blob=False)
    @given(data=st.data())
    def test(data):
        kw = target.make()
        # Call-shape corruptions only for the core's entry points: the API targets are wrapped
        # in test lambdas whose signatures are not the library's. "unknown_param": an entry of a
        # parameter dict the algorithm does not have.
        shapes = ["missing", "unknown_kw", "extra_pos", "double", "positional"] if SUITE == "core" else ["missing"]
        if "params" in kw:
            shapes.append("unknown_param")
        structural = data.draw(st.sampled_from(["none"] * 8 + shapes), label="structural")
        mutated = []
        descs = []
        if names:
            k = data.draw(st.integers(1, 2 if len(names) > 1 else 1), label="n_mutations")
            chosen = data.draw(st.lists(st.sampled_from(names), min_size=k, max_size=k, unique=True), label="args")
            for p in chosen:
                try:
                    valid = _get(kw, p)
                except KeyError:   # its dict was replaced or emptied by an earlier corruption
                    continue
                extra = target.long_values.get(p)
                lab = data.draw(mutation_strategy(valid, names, extra), label=f"mutation of {p}")
                if _set(kw, p, apply_mutation(lab, valid, extra)):
                    mutated.append(p)
                    if lab.startswith("long:"):
                        mutated.append("+" + lab)   # long valid work: the alarm may interrupt it
                    descs.append(f"{p}={lab}->{_describe(_get(kw, p))}")
        args = []
        long_missing = False
        pdict = kw.get("params")
        if structural == "missing" and names:
            p = data.draw(st.sampled_from(names), label="missing")
            if _pop(kw, p):
                descs.append(f"missing {p}")
                # an omitted hyper-parameter takes its default: long only where that is a loop count
                long_missing = "." not in p or p in target.long_params
        elif structural == "unknown_param":
            if _set(kw, "params.no_such_param", 1):
                descs.append("unknown params entry")
        elif structural == "unknown_kw":
            kw["no_such_argument"] = 1
            descs.append("unknown kw")
        elif structural == "extra_pos":
            args = list(kw.values()) + [1]
            kw = {}
            descs.append("extra positional")
        elif structural == "positional" and names:
            args = list(kw.values())
            kw = {}
            descs.append("all positional")
        elif structural == "double" and top_names:
            args = [next(iter(kw.values()))]
            descs.append(f"{top_names[0]} given twice")
        marks = ["+" + structural] if structural in ("unknown_kw", "extra_pos", "double") or long_missing else []
        # a dict put in place of a parameter dict brings its own (unknown) parameter names
        injected = [k for k in pdict if isinstance(k, str)] if isinstance(pdict, dict) else []
        run_case(target, args, kw, "; ".join(descs) or "valid", mutated + marks,
                 names + leaf_names + injected + ["no_such_argument", "no_such_param"])

    return test


def valid_cases(targets):
    """Each target's unmodified valid call once: must return normally."""
    for t in targets:
        before, ok = STATS["failures"][:], STATS["ok"]
        run_case(t, [], t.make(), "valid", [], list(t.make()))
        if STATS["failures"] != before:
            STATS["failures"][-1] += "  (the valid call itself failed)"
        elif STATS["ok"] == ok:   # raised a (named) error or was interrupted: the valid call is not valid
            _fail(t, "valid", "the valid call did not return normally")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("suite", choices=["core", "api"])
    ap.add_argument("--examples", type=int, default=int(os.environ.get("SAAT_FUZZ_EXAMPLES", "40")))
    ap.add_argument("--only", default=None)
    ap.add_argument("--random", action="store_true", help="non-derandomized hypothesis (long runs)")
    ns = ap.parse_args(argv)
    faulthandler.enable()
    signal.signal(signal.SIGALRM, _on_alarm)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = 6 << 30
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
    global SUITE
    SUITE = ns.suite
    targets = core_targets() if ns.suite == "core" else api_targets()
    if ns.only:
        targets = [t for t in targets if t.name == ns.only]
    valid_cases(targets)
    t0 = time.perf_counter()
    for t in targets:
        make_test(t, ns.examples, not ns.random)()
    STATS["seconds"] = round(time.perf_counter() - t0, 1)
    STATS["targets"] = len(targets)
    STATS["failures"] = STATS["failures"][:MAX_FAILURES]
    print("SUMMARY " + json.dumps(STATS), flush=True)


if __name__ == "__main__":
    main()
