"""Clean deep-hashing training (the model every attack and defence starts from)."""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import numpy as np

from . import _schema
from ._convert import as_real_array
from ._loop import run_training
from ._validate import check_int
from .metrics import warn_if_collapsed
from .models import HashingModel

__all__ = ["train", "TrainResult", "pretrain_backbone", "channel_stats"]


@dataclass
class TrainResult:
    """What a training run returns: ``history`` (mean loss of every epoch) and, for clean
    training, the final loss memory ``memory`` (N, K) of continuous training outputs."""
    history: list = field(default_factory=list)
    memory: np.ndarray | None = None


def train(model: HashingModel, images, labels=None, *, progress=True, checkpoint=None, checkpoint_every: int = 0,
          resume=None, comm=None, **params) -> TrainResult:
    """Train ``model`` with a deep-hashing loss; the whole epoch loop runs in Swift.

    Each batch: ``u = F(x)`` (train mode), the loss writes ``u`` into its memory U of training
    outputs and returns ``(L, ∂L/∂u)``, backward, one SGD step (PyTorch semantics: momentum,
    L2 weight decay). The learning rate is multiplied by ``gamma`` at each milestone (fractions
    of the total number of iterations). Defaults follow SAAT/CgAT's ``hashing.py``. A loss with
    random choices (CSQ) draws them from ``seed``.

    ``images``: (N, C, H, W) in [0, 1] (float32/float64, or uint8 scaled by 1/255; numpy or CPU
    torch tensors, C or F order), or an iterable of batches ``(images, labels)`` /
    ``(images, labels, index)`` such as a ``torch.utils.data.DataLoader`` (then ``labels`` is
    None); batches are collected into memory once and the Swift loop does its own seeded
    shuffling. ``labels``: (N, C) multi-hot 0/1 (relevance = sharing at least one label).
    ``progress``: True for a tqdm bar (if installed), False/None for silence, or a callable
    ``f(epoch, batch, batches, loss, lr)`` called after every batch (return False to stop).
    ``checkpoint``, ``checkpoint_every``: a path written atomically every ``checkpoint_every``
    batches and at the end of every epoch (weights, optimiser, loss memory, RNG state, position).
    ``resume``: a checkpoint path to continue from; the result equals an uninterrupted run.
    ``comm``: an mpi4py communicator (e.g. ``MPI.COMM_WORLD`` under ``mpiexec -n P``) to train
    data-parallel: every rank is given the same arrays and computes its slice of each global
    batch of ``batch_size``; the batch's outputs are gathered to every rank (so the loss, its
    memory U and all random choices are computed identically everywhere), each rank
    back-propagates its rows, and the gradients are summed with one ``Allreduce``. Every rank ends
    with the weights one process would reach with the same ``batch_size``, up to the rounding of
    sums over the batch. Rank 0 alone writes ``checkpoint`` and shows the progress bar;
    ``resume`` must name a file every rank can read. Needs ``pip install 'saat[mpi]'``.

    Returns a :class:`TrainResult` with the per-epoch mean loss ``history``. Warns
    (:class:`saat.metrics.CollapseWarning`) when more than half of the training images end with
    one code (the signs of the loss memory). Ctrl-C stops within
    one batch and raises KeyboardInterrupt; the model keeps the weights of the last finished
    batch. A loss that becomes NaN/inf raises :class:`saat.TrainingDiverged` (a ValueError).
    """
    _schema.require_model(model)
    params = {k: v for k, v in params.items() if v is not None}   # None: the default
    history, memory = run_training("hashing", model, images, labels, params, progress=progress, checkpoint=checkpoint,
                                   checkpoint_every=checkpoint_every, resume=resume, memory_out=True,
                                   desc=f"train {params.get('loss', _schema.defaults(_HASHING)['loss'])}", comm=comm)
    if memory is not None and len(memory):
        warn_if_collapsed(np.where(memory > 0, 1, -1).astype(np.int8), "saat.train: the training images' codes")
    return TrainResult(history=history, memory=memory)


_HASHING = _schema.schema("training", "hashing")
_P = inspect.Parameter
train.__signature__ = _schema.signature(
    _HASHING, [_P("model", _P.POSITIONAL_OR_KEYWORD), _P("images", _P.POSITIONAL_OR_KEYWORD),
               _P("labels", _P.POSITIONAL_OR_KEYWORD, default=None)],
    [_P("progress", _P.KEYWORD_ONLY, default=True), _P("checkpoint", _P.KEYWORD_ONLY, default=None),
     _P("checkpoint_every", _P.KEYWORD_ONLY, default=0), _P("resume", _P.KEYWORD_ONLY, default=None),
     _P("comm", _P.KEYWORD_ONLY, default=None)],
    positional_params=False)
_schema.document(train, _HASHING, leading="model (HashingModel): the model, trained in place.\n"
                                           "images, labels: see above.")


def channel_stats(images) -> tuple:
    """Per-channel mean and std of an image set (N, C, H, W), for ``HashingModel(mean=, std=)``."""
    x = as_real_array(images, "images", dtype=None) if not isinstance(images, np.ndarray) else images
    if x.ndim != 4 or x.size == 0:
        raise ValueError(f"argument 'images': expected a non-empty (N, C, H, W) array, got shape {x.shape}")
    x = x.astype(np.float32) / 255 if x.dtype == np.uint8 else x
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"argument 'images': expected float or uint8 images, got dtype {x.dtype}")
    if not np.isfinite(x).all():
        raise ValueError("argument 'images': expected finite pixel values, found NaN or inf")
    return x.mean(axis=(0, 2, 3)), np.maximum(x.std(axis=(0, 2, 3)), 1e-3)


def pretrain_backbone(model: HashingModel, images, labels, *, epochs: int = 5, loss: str = "csq",
                      helper_bits: int = 64, batch_size: int = 32, lr: float = 0.01, seed: int = 0,
                      progress=True) -> TrainResult:
    """Give ``model`` a pretrained backbone when no pretrained weights exist (cnn-small).

    The papers fine-tune ImageNet-pretrained AlexNet/VGG with a freshly initialised hash layer. No
    such weights can be downloaded here, and a randomly initialised CNN trained directly with a
    pairwise loss (DPSH, DPH, HashNet) barely moves: its outputs start near 0 and every image gets
    almost the same gradient, so the codes collapse. This stand-in trains a helper copy of the
    network (same backbone and normalisation, ``helper_bits``-bit hash layer) with CSQ, a pointwise
    loss towards per-class Hadamard centres that needs no warm start, then copies every backbone
    parameter (all but ``hash_layer.*``) into ``model``. ``model``'s own hash layer is untouched
    (N(0, 0.01) as CgAT), so the usual hashing training then fine-tunes it as in the papers.
    This is an approximation of the papers' protocol (pretraining on the training split instead
    of ImageNet); say so when reporting numbers. ``epochs``, ``loss``, ``batch_size``, ``lr`` and
    ``seed`` are those of :func:`train` for the helper.
    """
    _schema.require_model(model)
    helper = HashingModel(model.backbone, check_int(helper_bits, "helper_bits", 1), seed=model.seed + 1,
                          mean=model.mean, std=model.std)
    res = train(helper, images, labels, loss=loss, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                progress=progress)
    own = model.state_dict()
    for k, v in helper.state_dict().items():
        if not k.startswith("hash_layer."):
            own[k] = v
    model.load_state_dict(own)
    return res
