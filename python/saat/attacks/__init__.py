"""Adversarial attacks on deep hashing models, torchattacks-style, one module per attack: construct
with the model, its data and hyper-parameters, call on images (and labels) to get adversarial
images.

Every iterative attack (``ATTACKS``) is an ℓ∞ attack in [0, 1] pixel space whose whole loop runs
in Swift with the GIL released; results satisfy ``‖x' − x‖∞ ≤ eps`` and ``0 ≤ x' ≤ 1``. ProS-GAN
(``GENERATORS``) is a generator trained once with :meth:`ProSGAN.fit`; it has no ε-ball. Parameters, their
defaults and ranges are declared once, in the core (``saat._core.schemas()``), and shared names
mean the same everywhere: ``eps``, ``step``, ``steps``, ``targeted``, ``seed``. The model is used in
its current mode (call ``model.eval()`` for evaluation, as the papers do).
"""
from __future__ import annotations

from .. import _schema
from .base import Attack
from .center import CenterAttack
from .dhta import DHTA
from .hag import HAG
from .p2p import P2P
from .pgd import PGD
from .prosgan import ProSGAN
from .saat import SAATAttack
from .sdha import SDHA
from .targets import select_target_labels
from .tha import THA

__all__ = ["Attack", "PGD", "SAATAttack", "CenterAttack", "HAG", "SDHA", "DHTA", "P2P", "THA", "ProSGAN", "ATTACKS",
           "GENERATORS", "select_target_labels"]

#: Registry name → class, in the core's order (the CLI's and the experiments' choices).
ATTACKS = {c.name: c for c in (PGD, SAATAttack, CenterAttack, HAG, SDHA, DHTA, P2P, THA)}
assert tuple(ATTACKS) == _schema.names("attack"), "every attack of the core has its class here"
#: The trained (generative) attacks: ProS-GAN. Construct, ``fit``, then call like the others.
GENERATORS = {c.name: c for c in (ProSGAN,)}
assert tuple(GENERATORS) == _schema.names("generative"), "every generative attack of the core has its class here"
