"""HAG: Hamming-space adversarial examples."""
from __future__ import annotations

from .base import Attack


class HAG(Attack):
    r"""HAG, from 'Adversarial Examples for Hamming Space Search' (Yang et al., IEEE TCYB 2020), as
    re-implemented in SAAT ``model/attack_model/hag.py`` (non-targeted).

    Optimises the image with SGD (momentum) on ``mean_i((Σ_k m ĥ h / Σ_k m + 1)²) + β·mean_i(mean_k m ĥ)²``
    (the β term averages the masked outputs over the K bits, as SAAT ``hag.py``), where
    ``h = F(x)`` are the clean outputs, ``ĥ = F(x'; α)`` and ``m = [|ĥ − sign h| < 1.5]``, under the α schedule, projecting onto the ε-ball and [0, 1] after every step. HAG makes no random
    choice (no random start), so it takes no seed. The default number of steps is SAAT's
    evaluation setting (see Arguments); use fewer for a quick look.

    Distance Measure : Linf

    Examples::
        >>> adv = saat.attacks.HAG(model, steps=500)(images)
    """

    name = "hag"
    removed = {"seed": "HAG makes no random choice (no random start); drop the argument"}
