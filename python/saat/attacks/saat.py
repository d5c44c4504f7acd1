"""SAAT's mainstay-guided attack."""
from __future__ import annotations

from .base import Attack


class SAATAttack(Attack):
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

    name = "saat"
