"""CgAT's center-code attack."""
from __future__ import annotations

from .base import Attack


class CenterAttack(Attack):
    r"""CgAT's center-code attack, from 'CgAT: Center-Guided Adversarial Training for Deep Hashing-Based
    Retrieval' (Wang, Lin, Li; WWW 2023) [https://arxiv.org/abs/2204.10779], official code
    [https://github.com/xunguangwang/CgAT].

    The center code ``c`` (CHCM, :func:`saat.codes.center`) of the true labels is computed from the
    training codes; PGD minimises ``mean(F(x') ⊙ c)`` (maximises it towards the center code of the
    target labels when targeted). Defaults are CgAT's training attack.

    Distance Measure : Linf

    Shape:
        - images: (N, C, H, W) in [0, 1]; labels: (N, C) true labels, or target labels when targeted.
        - output: (N, C, H, W) float32 in [0, 1]. ``last_codes``: (N, K) center codes (int8).

    Examples::
        >>> attack = saat.attacks.CenterAttack(model, train_codes, train_labels, steps=100, step=1/255)
        >>> adv_images = attack(images, labels)
    """

    name = "center"
