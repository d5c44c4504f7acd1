"""SDHA: the smart deep hashing attack."""
from __future__ import annotations

from .base import Attack


class SDHA(Attack):
    r"""SDHA, from 'Smart Deep Hashing Attack' (Lu et al., ICMR 2021), as re-implemented in SAAT
    ``model/attack_model/sdha.py``.

    Adam on the image minimising ``MSE(x', x) + (25/K)·L_sur``; ``L_sur`` pushes the query away from
    the codes of relevant training items (non-targeted) or pulls it towards those relevant to the
    target label (targeted), weighted by a Hamming-distance factor; α schedule; projection onto the
    ε-ball and [0, 1]. SDHA makes no random choice (no random start), so it takes no seed.

    Distance Measure : Linf

    Shape:
        - images (N, C, H, W); labels (N, C) true labels (or target labels when targeted).
    """

    name = "sdha"
    removed = {"seed": "SDHA makes no random choice (no random start); drop the argument"}
