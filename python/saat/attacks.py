"""Adversarial attacks on deep hashing models, torchattacks-style: construct with the model and
hyper-parameters, call on images (and labels) to get adversarial images.

Every attack is an ℓ∞ attack in [0, 1] pixel space whose whole iterative loop runs in Swift with
the GIL released; results satisfy ``‖x' − x‖∞ ≤ eps`` and ``0 ≤ x' ≤ 1``. Common parameters use
the same names everywhere: ``eps``, ``step``, ``steps``, ``targeted``, ``seed``. The model is used
in its current mode (call ``model.eval()`` for evaluation, as the papers do).
"""
from __future__ import annotations

import numpy as np

from . import _core
from ._convert import as_images, as_labels
from ._validate import check_bool, check_float, check_int
from .codes import as_pm1
from .models import HashingModel

__all__ = ["Attack", "PGD", "SAATAttack", "CenterAttack", "HAG", "SDHA", "DHTA", "P2P", "THA", "select_target_labels"]


class Attack:
    """Base class: argument checks, input conversion, seeding and the call protocol.

    Subclasses set ``needs_labels`` and implement :meth:`_run`. After a call, ``last_codes`` holds
    the guide codes the attack steered by ((N, K) int8, or None when the attack has none): the
    "theory" code of the papers' tables.
    """

    needs_labels = False
    default_targeted = False

    def __init__(self, model: HashingModel, *, eps: float, step: float, steps: int, random_start: bool,
                 alpha_schedule: bool, targeted: bool = False, seed: int = 0):
        if not isinstance(model, HashingModel):
            raise TypeError(f"argument 'model': expected a saat.HashingModel, got {type(model).__name__}")
        self.model = model
        self.eps = check_float(eps, "eps", 0.0, 1.0)
        self.step = check_float(step, "step", 0.0, lo_open=True)
        self.steps = check_int(steps, "steps", 1)
        self.random_start = check_bool(random_start, "random_start")
        self.alpha_schedule = check_bool(alpha_schedule, "alpha_schedule")
        if not isinstance(targeted, (bool, np.bool_)):
            raise TypeError(f"argument 'targeted': expected a bool, got {type(targeted).__name__}")
        self.targeted = bool(targeted)
        self.seed = check_int(seed, "seed", 0, 2**63 - 1)
        self.last_codes = None

    def _common(self):
        return dict(eps=self.eps, step=self.step, steps=self.steps, random_start=self.random_start,
                    alpha_schedule=self.alpha_schedule, seed=self.seed)

    def __call__(self, images, labels=None) -> np.ndarray:
        """Adversarial versions of ``images`` ((N, C, H, W) in [0, 1]) as float32 (N, C, H, W).

        ``labels``: (N, C) multi-hot true labels (non-targeted) or target labels (targeted), for
        attacks that use labels.
        """
        x = as_images(images, "images", self.model.input_shape)
        if self.needs_labels:
            if labels is None:
                what = "target labels" if self.targeted else "true labels"
                raise TypeError(f"argument 'labels': {type(self).__name__} needs the {what} of the images")
            y = as_labels(labels, "labels", rows=x.shape[0], classes=self._classes())
        else:
            y = None
        out = np.empty_like(x)
        if x.shape[0] == 0:
            self.last_codes = None
            return out
        self.model._require_finite_weights()
        codes = self._run(x, y, out)
        self.last_codes = None if codes is None else codes.astype(np.int8)
        if not np.isfinite(out).all():
            # only a model with non-finite weights (a diverged training) gets here: inputs are checked
            raise ValueError("argument 'model': the attack produced NaN/inf pixels because the model's weights "
                             "are not finite (e.g. after a diverged training); reload a state_dict or checkpoint")
        return out

    def _classes(self):
        return None

    def _run(self, x, y, out):  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self):
        return (f"{type(self).__name__}(eps={self.eps:.4g}, step={self.step:.4g}, steps={self.steps}, "
                f"targeted={self.targeted}, seed={self.seed})")


def _codes_from_raw(raw):
    if raw is None:
        return None
    buf, shape = raw["codes"]
    return np.frombuffer(buf, dtype=np.float32).reshape(shape)


class PGD(Attack):
    """Plain ℓ∞ PGD on the hash code: moves each output away from its clean code.

    Minimises ``mean(F(x') ⊙ sign(F(x)))`` by signed-gradient steps with projection onto the
    ε-ball and [0, 1]. The simplest reference attack and the benchmark attack.

    Distance Measure : Linf

    Arguments:
        model (HashingModel): model to attack.
        eps (float): maximum perturbation. (Default: 8/255)
        step (float): step size. (Default: 2/255)
        steps (int): number of iterations. (Default: 10)
        random_start (bool): uniform random start in the ε-ball. (Default: True)
        seed (int): seed of the random start. (Default: 0)

    Shape:
        - images: (N, C, H, W) in [0, 1]. - output: (N, C, H, W) in [0, 1].

    Examples::
        >>> attack = saat.attacks.PGD(model, eps=8/255, step=2/255, steps=10)
        >>> adv_images = attack(images)
    """

    def __init__(self, model, eps=8 / 255, step=2 / 255, steps=10, random_start=True, seed=0):
        super().__init__(model, eps=eps, step=step, steps=steps, random_start=random_start,
                         alpha_schedule=False, seed=seed)

    def _run(self, x, y, out):
        _core.attack_pgd(self.model._handle, x, out, **self._common())
        return None


class _GuidedAttack(Attack):
    """An attack guided by semantic codes derived from training codes and labels."""

    needs_labels = True
    kind = ""

    def __init__(self, model, train_codes, train_labels, *, eps, step, steps, random_start, alpha_schedule,
                 targeted, seed):
        super().__init__(model, eps=eps, step=step, steps=steps, random_start=random_start,
                         alpha_schedule=alpha_schedule, targeted=targeted, seed=seed)
        self.train_codes = as_pm1(train_codes, "train_codes", bits=model.bits)
        if self.train_codes.shape[0] == 0:
            raise ValueError("argument 'train_codes': expected at least one training code")
        self.train_labels = as_labels(train_labels, "train_labels", rows=self.train_codes.shape[0])

    def _classes(self):
        return self.train_labels.shape[1]

    def _run(self, x, y, out):
        raw = _core.attack_semantic(self.model._handle, x, out, kind=self.kind, labels=y,
                                    train_codes=self.train_codes, train_labels=self.train_labels,
                                    targeted=self.targeted, **self._common())
        return _codes_from_raw(raw)


class SAATAttack(_GuidedAttack):
    r"""SAAT's mainstay-guided attack, from 'Semantic-Aware Adversarial Training for Reliable Deep
    Hashing Retrieval' (Yuan, Zhang, Wang, Wu; IEEE TIFS 2023)
    [https://arxiv.org/abs/2310.14637], official code [https://github.com/xandery-geek/SAAT].

    The mainstay code ``b`` of the query's true labels (non-targeted) or of the target labels
    (targeted) is computed by DMFL (:func:`saat.codes.mainstay`) from the training codes; then PGD
    minimises the masked loss ``Σ m (s+2) s / Σ m`` with ``s = F(x') ⊙ b`` and ``m = [s > −0.5]``
    (non-targeted: push away from b; bits flipped beyond −0.5 drop out) or ``−Σ m (s+2) s / Σ m``
    with ``m = [s < 0.5]`` (targeted: pull towards b), under the α schedule of ``tanh(α·g)``
    (α = 0.1 for the first half of the iterations, then 0.2, 0.3, 0.5, 0.7, 1.0).

    Distance Measure : Linf

    Arguments:
        model (HashingModel): model to attack (call ``model.eval()`` first, as the paper).
        train_codes ((N, K) ±1 array): codes of the training set, e.g. ``model.encode(train_images)``.
        train_labels ((N, C) 0/1 array): multi-hot labels of the training set.
        eps (float): maximum perturbation ‖x' − x‖∞. (Default: 8/255)
        step (float): step size of each signed-gradient step. (Default: 1/255)
        steps (int): number of iterations. (Default: 100)
        targeted (bool): attack towards target labels instead of away from the true ones. (Default: False)
        seed (int): seed of the random start. (Default: 0)
        random_start (bool): start from a uniform random point of the ε-ball. (Default: True)
        alpha_schedule (bool): use the α schedule (False: α = 1 throughout). (Default: True)

    Shape:
        - images: (N, C, H, W) in [0, 1] (float32/float64, or uint8 scaled by 1/255).
        - labels: (N, C) multi-hot true labels, or target labels when ``targeted`` (e.g. from
          :func:`select_target_labels`).
        - output: (N, C, H, W) float32 in [0, 1] with ‖x' − x‖∞ ≤ eps.
        - ``last_codes`` after a call: (N, K) int8 mainstay codes (−1/0/+1), the "theory" code.

    Examples::
        >>> attack = saat.attacks.SAATAttack(model, train_codes, train_labels, eps=8/255, step=1/255, steps=100)
        >>> adv_images = attack(images, labels)
    """

    kind = "mainstay"

    def __init__(self, model, train_codes, train_labels, eps=8 / 255, step=1 / 255, steps=100, targeted=False,
                 seed=0, random_start=True, alpha_schedule=True):
        super().__init__(model, train_codes, train_labels, eps=eps, step=step, steps=steps,
                         random_start=random_start, alpha_schedule=alpha_schedule, targeted=targeted, seed=seed)


class CenterAttack(_GuidedAttack):
    r"""CgAT's center-code attack, from 'CgAT: Center-Guided Adversarial Training for Deep Hashing-Based
    Retrieval' (Wang, Lin, Li; WWW 2023) [https://arxiv.org/abs/2204.10779], official code
    [https://github.com/xunguangwang/CgAT].

    The center code ``c`` (CHCM, :func:`saat.codes.center`) of the true labels is computed from the
    training codes; PGD minimises ``mean(F(x') ⊙ c)`` (maximises it towards the center code of the
    target labels when targeted). Defaults are CgAT's training attack.

    Distance Measure : Linf

    Arguments:
        model (HashingModel), train_codes, train_labels: as :class:`SAATAttack`.
        eps (float): maximum perturbation. (Default: 8/255)
        step (float): step size. (Default: 2/255)
        steps (int): number of iterations. (Default: 7)
        targeted (bool): (Default: False)
        random_start (bool): (Default: True)
        seed (int): (Default: 0)

    Shape:
        - images: (N, C, H, W) in [0, 1]; labels: (N, C) true labels, or target labels when targeted.
        - output: (N, C, H, W) float32 in [0, 1]. ``last_codes``: (N, K) center codes (int8).

    Examples::
        >>> attack = saat.attacks.CenterAttack(model, train_codes, train_labels, steps=100, step=1/255)
        >>> adv_images = attack(images, labels)
    """

    kind = "center"

    def __init__(self, model, train_codes, train_labels, eps=8 / 255, step=2 / 255, steps=7, targeted=False,
                 seed=0, random_start=True):
        super().__init__(model, train_codes, train_labels, eps=eps, step=step, steps=steps,
                         random_start=random_start, alpha_schedule=False, targeted=targeted, seed=seed)


class HAG(Attack):
    r"""HAG, from 'Adversarial Examples for Hamming Space Search' (Yang et al., IEEE TCYB 2020), as
    re-implemented in SAAT ``model/attack_model/hag.py`` (non-targeted).

    Optimises the image with SGD (momentum) on ``mean_i((Σ_k m ĥ h / Σ_k m + 1)²) + β·mean_i(mean_k ĥ)²``
    where ``h = F(x)`` are the clean outputs, ``ĥ = F(x'; α)`` and ``m = [|ĥ − sign h| < 1.5]``, under
    the α schedule, projecting onto the ε-ball and [0, 1] after every step.

    Distance Measure : Linf

    Arguments:
        model (HashingModel): model to attack.
        eps (float): (Default: 8/255)
        lr (float): SGD learning rate on the image. (Default: 100)
        momentum (float): (Default: 0.9)
        steps (int): (Default: 2000, as SAAT's evaluation; use fewer for a quick look)
        seed (int): (Default: 0)

    Examples::
        >>> adv = saat.attacks.HAG(model, steps=500)(images)
    """

    def __init__(self, model, eps=8 / 255, lr=100.0, momentum=0.9, steps=2000, seed=0):
        super().__init__(model, eps=eps, step=1.0, steps=steps, random_start=False, alpha_schedule=True, seed=seed)
        self.lr = check_float(lr, "lr", 0.0, lo_open=True)
        self.momentum = check_float(momentum, "momentum", 0.0, 0.999)

    def _run(self, x, y, out):
        _core.attack_hag(self.model._handle, x, out, lr=self.lr, momentum=self.momentum, **self._common())
        return None


class SDHA(Attack):
    r"""SDHA, from 'Smart Deep Hashing Attack' (Lu et al., ICMR 2021), as re-implemented in SAAT
    ``model/attack_model/sdha.py``.

    Adam on the image minimising ``MSE(x', x) + (25/K)·L_sur``; ``L_sur`` pushes the query away from
    the codes of relevant training items (non-targeted) or pulls it towards those relevant to the
    target label (targeted), weighted by a Hamming-distance factor; α schedule; projection onto the
    ε-ball and [0, 1].

    Distance Measure : Linf

    Arguments:
        model (HashingModel): model to attack.
        train_codes ((N, K) ±1), train_labels ((N, C) 0/1): the training set's codes and labels.
        eps (float): (Default: 8/255)   lr (float): Adam learning rate. (Default: 0.01)
        steps (int): (Default: 1500)   targeted (bool): (Default: False)   seed (int): (Default: 0)

    Shape:
        - images (N, C, H, W); labels (N, C) true labels (or target labels when targeted).
    """

    needs_labels = True

    def __init__(self, model, train_codes, train_labels, eps=8 / 255, lr=0.01, steps=1500, targeted=False, seed=0):
        super().__init__(model, eps=eps, step=1.0, steps=steps, random_start=False, alpha_schedule=True,
                         targeted=targeted, seed=seed)
        self.lr = check_float(lr, "lr", 0.0, lo_open=True)
        self.train_codes = as_pm1(train_codes, "train_codes", bits=model.bits)
        if self.train_codes.shape[0] == 0:
            raise ValueError("argument 'train_codes': expected at least one training code")
        self.train_labels = as_labels(train_labels, "train_labels", rows=self.train_codes.shape[0])

    def _classes(self):
        return self.train_labels.shape[1]

    def _run(self, x, y, out):
        _core.attack_sdha(self.model._handle, x, out, labels=y, train_codes=self.train_codes,
                          train_labels=self.train_labels, targeted=self.targeted, lr=self.lr, **self._common())
        return None


class DHTA(Attack):
    r"""DHTA, from 'Targeted Attack for Deep Hashing based Retrieval' (Bai et al., ECCV 2020;
    official code jiawangbai/DHTA-master), in SAAT's evaluation setting (targeted).

    The anchor code ``a = sign(Σ_{m=1}^{n_t} b_m)`` votes over ``n_t`` database codes whose label
    vector equals the target label (drawn with replacement, seeded); PGD without random start then
    minimises ``−mean(F(x') ⊙ a)`` under the α schedule.

    Distance Measure : Linf

    Arguments:
        model (HashingModel): model to attack.
        db_codes ((N, K) ±1), db_labels ((N, C) 0/1): database codes and labels.
        n_t (int): number of anchor items. (Default: 9)
        eps (float): (Default: 0.032)   step (float): (Default: 1/255)   steps (int): (Default: 2000)
        seed (int): (Default: 0)

    Shape:
        - images (N, C, H, W); labels: (N, C) **target** labels (each must occur in db_labels, e.g.
          from :func:`select_target_labels`). ``last_codes``: the anchor codes.
    """

    needs_labels = True
    n_t_default = 9

    def __init__(self, model, db_codes, db_labels, n_t=None, eps=0.032, step=1 / 255, steps=2000, seed=0):
        super().__init__(model, eps=eps, step=step, steps=steps, random_start=False, alpha_schedule=True,
                         targeted=True, seed=seed)
        self.n_t = check_int(self.n_t_default if n_t is None else n_t, "n_t", 1, 1 << 20)
        self.db_codes = as_pm1(db_codes, "db_codes", bits=model.bits)
        if self.db_codes.shape[0] == 0:
            raise ValueError("argument 'db_codes': expected at least one database code")
        self.db_labels = as_labels(db_labels, "db_labels", rows=self.db_codes.shape[0])

    def _classes(self):
        return self.db_labels.shape[1]

    def _run(self, x, y, out):
        raw = _core.attack_dhta(self.model._handle, x, out, labels=y, db_codes=self.db_codes, db_labels=self.db_labels,
                                n_t=self.n_t, **self._common())
        return _codes_from_raw(raw)


class P2P(DHTA):
    r"""P2P, the point-to-point targeted attack of Bai et al. (ECCV 2020): :class:`DHTA` with a
    single anchor item (``n_t = 1``): the code of one random database item carrying the target
    label is the target. Same arguments and defaults as :class:`DHTA`."""

    n_t_default = 1

    def __init__(self, model, db_codes, db_labels, eps=0.032, step=1 / 255, steps=2000, seed=0):
        super().__init__(model, db_codes, db_labels, n_t=1, eps=eps, step=step, steps=steps, seed=seed)


class THA(Attack):
    r"""THA, the targeted attack of 'Targeted Attack and Defense for Deep Hashing' (Wang et al.,
    SIGIR 2021; SAAT ``tha.py``).

    At construction a prototype network (label → code, FC 4096 → 512 → K + tanh) is trained in
    Swift on random unique database label vectors with the circle loss against the database codes
    (Adam 1e-4, β (0.5, 0.999)); calling the attack runs PGD without random start minimising
    ``−mean(F(x') ⊙ sign(P(y_t)))`` under the α schedule.

    Distance Measure : Linf

    Arguments:
        model (HashingModel): model to attack.
        db_codes ((N, K) ±1), db_labels ((N, C) 0/1): database codes and labels.
        prototype_steps (int): Adam steps of the prototype net. (Default: 30000 = the paper's
            100 epochs × 300 steps; a few thousand suffice on small data)
        prototype_batch (int): (Default: 64)
        eps (float): (Default: 8/255)   step (float): (Default: 1/255)   steps (int): (Default: 100)
        seed (int): (Default: 0)

    Shape:
        - images (N, C, H, W); labels: (N, C) target labels. ``last_codes``: the prototype codes.
    """

    needs_labels = True

    def __init__(self, model, db_codes, db_labels, prototype_steps=30000, prototype_batch=64, eps=8 / 255,
                 step=1 / 255, steps=100, seed=0):
        super().__init__(model, eps=eps, step=step, steps=steps, random_start=False, alpha_schedule=True,
                         targeted=True, seed=seed)
        db_codes = as_pm1(db_codes, "db_codes", bits=model.bits)
        if db_codes.shape[0] == 0:
            raise ValueError("argument 'db_codes': expected at least one database code")
        self.db_labels = as_labels(db_labels, "db_labels", rows=db_codes.shape[0])
        self.prototype_steps = check_int(prototype_steps, "prototype_steps", 1)
        self.prototype_batch = check_int(prototype_batch, "prototype_batch", 1, 1 << 20)
        self._prototype = _core.prototype_train(db_codes, self.db_labels, self.prototype_steps,
                                                self.prototype_batch, self.seed)

    def _classes(self):
        return self.db_labels.shape[1]

    def _run(self, x, y, out):
        raw = _core.attack_tha(self.model._handle, x, out, labels=y, prototype=self._prototype, **self._common())
        return _codes_from_raw(raw)


ATTACKS = {"pgd": PGD, "saat": SAATAttack, "center": CenterAttack, "hag": HAG, "sdha": SDHA, "dhta": DHTA,
           "p2p": P2P, "tha": THA}


def select_target_labels(query_labels, db_labels, seed: int = 0) -> np.ndarray:
    """Target labels for targeted attacks, as SAAT ``adv_attack.py``: for every query, a label
    vector drawn uniformly from the *unique* non-zero label vectors of the database that share no
    class with the query's labels.

    Returns float32 (Q, C). Raises ValueError naming ``query_labels`` when some query shares a
    class with every database label vector (no valid target exists).
    """
    q = as_labels(query_labels, "query_labels")
    db = as_labels(db_labels, "db_labels", classes=q.shape[1])
    seed = check_int(seed, "seed", 0, 2**63 - 1)
    uniq = np.unique(db[db.sum(1) > 0], axis=0)
    if uniq.shape[0] == 0:
        raise ValueError("argument 'db_labels': expected at least one database item with a label")
    rng = np.random.default_rng(seed)
    overlap = (q @ uniq.T) > 0
    out = np.empty_like(q)
    for i in range(q.shape[0]):
        cand = np.flatnonzero(~overlap[i])
        if cand.size == 0:
            raise ValueError(f"argument 'query_labels': query {i} shares a class with every database label vector; "
                             "no target label exists")
        out[i] = uniq[cand[rng.integers(cand.size)]]
    return out
