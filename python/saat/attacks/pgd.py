"""PGD: the plain ℓ∞ attack on the hash code (reference attack and benchmark)."""
from __future__ import annotations

from .base import Attack


class PGD(Attack):
    """Plain ℓ∞ PGD on the hash code: moves each output away from its clean code.

    Minimises ``mean(F(x') ⊙ sign(F(x)))`` by signed-gradient steps with projection onto the
    ε-ball and [0, 1]. The simplest reference attack and the benchmark attack.

    Distance Measure : Linf

    Shape:
        - images: (N, C, H, W) in [0, 1]. - output: (N, C, H, W) in [0, 1].

    Examples::
        >>> attack = saat.attacks.PGD(model, eps=8/255, step=2/255, steps=10)
        >>> adv_images = attack(images)
    """

    name = "pgd"
