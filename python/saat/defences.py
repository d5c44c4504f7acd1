"""Adversarial training defences for deep hashing: SAAT, CgAT and ATRDH.

Each defence starts from a (clean-trained) model and hardens it in place; the whole loop — inner
PGD attack per batch, guide codes, losses, optimiser — runs in Swift. Construct with the model
and hyper-parameters (paper defaults), then call :meth:`fit` on the training images and labels.
"""
from __future__ import annotations

import numpy as np

from . import _core
from ._convert import as_images, as_labels, collect_batches, is_batch_iterable
from ._loop import run_loop
from ._validate import check_float, check_int
from .models import HashingModel
from .training import TrainResult, _milestones

__all__ = ["SAATTraining", "CgATTraining", "ATRDH", "DEFENCES"]


class _AdversarialTraining:
    method = ""
    paper = ""

    def __init__(self, model, *, loss, epochs, batch_size, lr, momentum, weight_decay, eps, step, steps,
                 milestones, gamma, seed, **extra):
        if not isinstance(model, HashingModel):
            raise TypeError(f"argument 'model': expected a saat.HashingModel, got {type(model).__name__}")
        if not isinstance(loss, str):
            raise TypeError(f"argument 'loss': expected a str, got {type(loss).__name__}")
        self.model = model
        self.loss = loss
        self.epochs = check_int(epochs, "epochs", 1)
        self.batch_size = check_int(batch_size, "batch_size", 1)
        self.lr = check_float(lr, "lr", 0.0, lo_open=True)
        self.momentum = check_float(momentum, "momentum", 0.0, 0.999)
        self.weight_decay = check_float(weight_decay, "weight_decay", 0.0)
        self.eps = check_float(eps, "eps", 0.0, 1.0)
        self.step = check_float(step, "step", 0.0, lo_open=True)
        self.steps = check_int(steps, "steps", 1, 1000)   # inner attack steps per batch (no Ctrl-C inside a batch)
        self.milestones = _milestones(milestones)
        self.gamma = check_float(gamma, "gamma", 0.0, 1.0, lo_open=True)
        self.seed = check_int(seed, "seed", 0, 2**63 - 1)
        self.extra = extra

    def fit(self, images, labels=None, *, progress=True, checkpoint=None, checkpoint_every: int = 0,
            resume=None) -> TrainResult:
        """Adversarially train ``self.model`` in place on ``images`` (N, C, H, W) in [0, 1] and
        multi-hot ``labels`` (N, C). ``progress``, ``checkpoint``, ``checkpoint_every`` and
        ``resume`` work as in :func:`saat.train`; a resumed run ends with the same weights as an
        uninterrupted one. ``images`` may also be an iterable of ``(images, labels[, index])``
        batches (e.g. a DataLoader; ``labels`` None), collected into memory once. Returns the
        per-epoch mean loss history."""
        if is_batch_iterable(images):
            if labels is not None:
                raise ValueError("argument 'labels': pass None when 'images' is an iterable of (images, labels) batches")
            images, labels = collect_batches(images, "images", self.model.input_shape, with_labels=True)
        elif labels is None:
            raise TypeError("argument 'labels': required when 'images' is an array")
        x = as_images(images, "images", self.model.input_shape)
        if x.shape[0] == 0:
            raise ValueError("argument 'images': expected at least one training image, got an empty batch")
        y = as_labels(labels, "labels", rows=x.shape[0])
        batches = -(-x.shape[0] // self.batch_size)
        res = run_loop(_core.train_adversarial, kind=f"{self.method}:{self.loss}", total_batches=self.epochs * batches,
                       progress=progress, checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume,
                       desc=self.method.upper(), owner=self.model, method=self.method, model=self.model._handle, images=x, labels=y,
                       epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, milestones=self.milestones,
                       gamma=self.gamma, seed=self.seed, loss=self.loss, momentum=self.momentum,
                       weight_decay=self.weight_decay, eps=self.eps, step=self.step, steps=self.steps, **self.extra)
        return TrainResult(history=list(res["history"]))

    def __repr__(self):
        return (f"{type(self).__name__}(loss='{self.loss}', epochs={self.epochs}, batch_size={self.batch_size}, "
                f"lr={self.lr:g}, eps={self.eps:.4g}, steps={self.steps}, seed={self.seed})")


class SAATTraining(_AdversarialTraining):
    r"""SAAT: Semantic-Aware Adversarial Training (Yuan et al., IEEE TIFS 2023; official code
    github.com/xandery-geek/SAAT, ``adv_training.py``).

    Minimax training guided by DMFL mainstay codes. Per batch: ``b = mainstay(y)`` from the
    up-to-date training codes; ``x' = PGD-7(x)`` away from ``b`` (ε 8/255, step 2/255, random start,
    train mode); then the training codes are refreshed with ``sign(F(x))``, ``b`` is recomputed, and
    the model minimises ``L_hash(F(x)) − λ·mean(F(x') ⊙ b) + μ·mean((F(x') − sign F(x'))²)``.

    Arguments:
        model (HashingModel): model to harden (start from a clean-trained one).
        loss (str): hashing loss, one of ``saat.losses.LOSSES``. (Default: "dpsh")
        epochs (int): (Default: 20)   batch_size (int): (Default: 32)
        lr (float): SGD learning rate. (Default: 0.05)   momentum (float): (Default: 0)
        weight_decay (float): (Default: 1e-5)
        lambda_adv (float): weight λ of the adversarial term. (Default: 1.0)
        mu (float): weight μ of the quantisation term. (Default: 1e-4)
        eps, step, steps: inner PGD. (Default: 8/255, 2/255, 7)
        milestones: lr × gamma at these fractions of the iterations. (Default: (0.5, 0.75))
        seed (int): shuffling and inner-attack seed. (Default: 0)

    Example::
        >>> saat.defences.SAATTraining(model, epochs=5).fit(train_images, train_labels)
    """

    method = "saat"

    def __init__(self, model, loss="dpsh", epochs=20, batch_size=32, lr=0.05, momentum=0.0, weight_decay=1e-5,
                 lambda_adv=1.0, mu=1e-4, eps=8 / 255, step=2 / 255, steps=7, milestones=(0.5, 0.75), gamma=0.1,
                 seed=0):
        super().__init__(model, loss=loss, epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum,
                         weight_decay=weight_decay, eps=eps, step=step, steps=steps, milestones=milestones,
                         gamma=gamma, seed=seed, lambda_adv=check_float(lambda_adv, "lambda_adv", 0.0),
                         mu=check_float(mu, "mu", 0.0))


class CgATTraining(_AdversarialTraining):
    r"""CgAT: Center-guided Adversarial Training (Wang et al., WWW 2023; official code
    github.com/xunguangwang/CgAT, ``central_adv_train.py``).

    Like :class:`SAATTraining` but guided by CHCM center codes (uniform weights over positives) and
    minimising ``L_hash(F(x)) − mean(F(x') ⊙ c)``.

    Arguments:
        model, loss: as :class:`SAATTraining`.
        epochs (int): (Default: 30)   batch_size (int): (Default: 32)
        lr (float): (Default: 0.01)   momentum (float): (Default: 0.9)   weight_decay (float): (Default: 5e-4)
        lambda_adv (float): (Default: 1.0)   eps, step, steps: (Default: 8/255, 2/255, 7)
        milestones: (Default: (0.5, 0.75))   seed (int): (Default: 0)
    """

    method = "cgat"

    def __init__(self, model, loss="dpsh", epochs=30, batch_size=32, lr=0.01, momentum=0.9, weight_decay=5e-4,
                 lambda_adv=1.0, eps=8 / 255, step=2 / 255, steps=7, milestones=(0.5, 0.75), gamma=0.1, seed=0):
        super().__init__(model, loss=loss, epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum,
                         weight_decay=weight_decay, eps=eps, step=step, steps=steps, milestones=milestones,
                         gamma=gamma, seed=seed, lambda_adv=check_float(lambda_adv, "lambda_adv", 0.0))


class ATRDH(_AdversarialTraining):
    r"""ATRDH: adversarial training of 'Targeted Attack and Defense for Deep Hashing' (Wang et al.,
    SIGIR 2021), as re-implemented in SAAT ``model/defense_model/atrdh.py``.

    A label → code prototype network is trained alongside (circle loss); each batch is attacked by
    PGD-7 *towards* the prototype code of random target labels, and the model minimises
    ``L_hash(F(x)) + adv_weight · Σ (F(x')ᵀU_j/K − S̃_ij)² / (N·B)``, with Adam (β 0.5, 0.999).

    Arguments:
        model, loss: as :class:`SAATTraining`.
        epochs (int): (Default: 100 in the paper; use fewer on a CPU)   batch_size (int): (Default: 32)
        lr (float): Adam learning rate of the model and the prototype net. (Default: 1e-4)
        adv_weight (float): (Default: 2.0)   eps, step, steps: (Default: 8/255, 2/255, 7)
        milestones: (Default: (0.5, 0.75))   seed (int): (Default: 0)
    """

    method = "atrdh"

    def __init__(self, model, loss="dpsh", epochs=100, batch_size=32, lr=1e-4, adv_weight=2.0, eps=8 / 255,
                 step=2 / 255, steps=7, milestones=(0.5, 0.75), gamma=0.1, seed=0):
        super().__init__(model, loss=loss, epochs=epochs, batch_size=batch_size, lr=lr, momentum=0.0,
                         weight_decay=0.0, eps=eps, step=step, steps=steps, milestones=milestones, gamma=gamma,
                         seed=seed, adv_weight=check_float(adv_weight, "adv_weight", 0.0))


DEFENCES = {"saat": SAATTraining, "cgat": CgATTraining, "atrdh": ATRDH}
