"""THA: the targeted attack through a label → code prototype network."""
from __future__ import annotations

from .base import Attack


class THA(Attack):
    r"""THA, the targeted attack of 'Targeted Attack and Defense for Deep Hashing' (Wang et al.,
    SIGIR 2021; SAAT ``tha.py``).

    At construction a prototype network (label → code, FC 4096 → 512 → K + tanh) is trained in
    Swift on random unique database label vectors with the circle loss against the database codes
    (Adam 1e-4, β (0.5, 0.999)); calling the attack runs PGD without random start minimising
    ``−mean(F(x') ⊙ sign(P(y_t)))`` under the α schedule. A few thousand prototype steps suffice
    on small data.

    Distance Measure : Linf

    Shape:
        - images (N, C, H, W); labels: (N, C) target labels. ``last_codes``: the prototype codes.
    """

    name = "tha"
