"""DHTA: the targeted attack with an anchor code voted by database codes."""
from __future__ import annotations

from .base import Attack


class DHTA(Attack):
    r"""DHTA, from 'Targeted Attack for Deep Hashing based Retrieval' (Bai et al., ECCV 2020;
    official code jiawangbai/DHTA-master), in SAAT's evaluation setting (targeted).

    The anchor code ``a = sign(Σ_{m=1}^{n_t} b_m)`` votes over ``n_t`` database codes whose label
    vector equals the target label (drawn with replacement, seeded); PGD without random start then
    minimises ``−mean(F(x') ⊙ a)`` under the α schedule.

    Distance Measure : Linf

    Shape:
        - images (N, C, H, W); labels: (N, C) **target** labels (each must occur in db_labels, e.g.
          from :func:`select_target_labels`). ``last_codes``: the anchor codes.
    """

    name = "dhta"
