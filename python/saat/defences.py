"""Adversarial training defences for deep hashing: SAAT, CgAT and ATRDH.

Each defence starts from a (clean-trained) model and hardens it in place; the whole loop — inner
PGD attack per batch, guide codes, losses, optimiser — runs in Swift. Construct with the model
and hyper-parameters (the papers' defaults; declared once, in the core's schema of each defence,
and checked at construction), then call :meth:`fit` on the training images and labels.
"""
from __future__ import annotations

from . import _core, _schema
from ._loop import run_training
from .training import TrainResult

__all__ = ["SAATTraining", "CgATTraining", "ATRDH", "DEFENCES"]

_MODEL_DOC = "model (HashingModel): the model to harden, in place (start from a clean-trained one)."


class _AdversarialTraining:
    #: registry name in the core; set by every defence
    name = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _schema.install(cls, "defence", _MODEL_DOC, "_configure")

    def _configure(self, model, args, kwargs):
        _schema.require_model(model)
        _, given = _schema.bind(type(self).__init__.__signature__, self._schema, args, kwargs, skip=2)
        self.model = model
        self._given = given
        self.params = _core.resolve("defence", self.name, given)   # checked now, not at fit time
        for k, v in self.params.items():
            setattr(self, k, v)

    def fit(self, images, labels=None, *, progress=True, checkpoint=None, checkpoint_every: int = 0,
            resume=None, comm=None) -> TrainResult:
        """Adversarially train ``self.model`` in place on ``images`` (N, C, H, W) in [0, 1] and
        multi-hot ``labels`` (N, C). ``progress``, ``checkpoint``, ``checkpoint_every`` and
        ``resume`` work as in :func:`saat.train`; a resumed run ends with the same weights as an
        uninterrupted one. ``images`` may also be an iterable of ``(images, labels[, index])``
        batches (e.g. a DataLoader; ``labels`` None), collected into memory once. ``comm``: an
        mpi4py communicator for data-parallel training, as in :func:`saat.train` (each rank
        attacks and back-propagates its slice of every global batch; guide codes, memories and
        random choices stay identical on every rank). Returns the per-epoch mean loss history."""
        history, _ = run_training(self.name, self.model, images, labels, self._given, progress=progress,
                                  checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume,
                                  desc=self.name.upper(), settings=self.params, comm=comm)
        return TrainResult(history=history)

    def __repr__(self):
        shown = ("loss", "epochs", "batch_size", "lr", "eps", "steps", "seed")
        return f"{type(self).__name__}({_schema.format_params(self.params, shown)})"


class SAATTraining(_AdversarialTraining):
    r"""SAAT: Semantic-Aware Adversarial Training (Yuan et al., IEEE TIFS 2023; official code
    github.com/xandery-geek/SAAT, ``adv_training.py``).

    Minimax training guided by DMFL mainstay codes. Per batch: ``b = mainstay(y)`` from the
    up-to-date training codes; ``x' = PGD(x)`` away from ``b`` (random start, train mode); then the
    training codes are refreshed with ``sign(F(x))``, ``b`` is recomputed, and the model minimises
    ``L_hash(F(x)) − λ·mean(F(x') ⊙ b) + μ·mean((F(x') − sign F(x'))²)`` with SGD.

    Examples::
        >>> saat.defences.SAATTraining(model, epochs=5).fit(train_images, train_labels)
    """

    name = "saat"


class CgATTraining(_AdversarialTraining):
    r"""CgAT: Center-guided Adversarial Training (Wang et al., WWW 2023; official code
    github.com/xunguangwang/CgAT, ``central_adv_train.py``).

    Like :class:`SAATTraining` but guided by CHCM center codes (uniform weights over positives),
    minimising ``L_hash(F(x)) − λ·mean(F(x') ⊙ c)`` (no quantisation term) with SGD. ``L_hash`` has
    the constants of CgAT's own ``model/hashing_loss.py`` where they differ from SAAT's: DPSH with
    quantisation weight η = 0.001 on the mean over the batch outputs (SAAT: η = 50 over batch ×
    training items), HashNet with scale 0.1 and no continuation (SAAT: 10/K with continuation),
    CSQ with λ = 1e-4 (SAAT: 0.05).
    """

    name = "cgat"


class ATRDH(_AdversarialTraining):
    r"""ATRDH: adversarial training of 'Targeted Attack and Defense for Deep Hashing' (Wang et al.,
    SIGIR 2021), as re-implemented in SAAT ``model/defense_model/atrdh.py``.

    A label → code prototype network is trained alongside (circle loss, one Adam step per batch,
    on the model's learning-rate schedule); each batch is attacked by PGD *towards* the prototype
    codes of random target labels, taken before the prototype network's step of that batch, and
    the model minimises ``L_hash(F(x)) + adv_weight · Σ (F(x')ᵀU_j/K − S̃_ij)² / (N·B)`` with Adam
    (β 0.5, 0.999). ``U`` of the adversarial term starts at zero; the hashing loss's memory starts
    from the model's outputs ``F(x)`` on the training set (SAAT's ``atrdh.py`` keeps the clean
    model's memory). The paper trains 100 epochs; use fewer on a CPU.
    """

    name = "atrdh"


#: Registry name → class, in the core's order.
DEFENCES = {c.name: c for c in (SAATTraining, CgATTraining, ATRDH)}
assert tuple(DEFENCES) == _schema.names("defence"), "every defence of the core has its class here"
