"""P2P: the point-to-point targeted attack."""
from __future__ import annotations

from .base import Attack


class P2P(Attack):
    r"""P2P, the point-to-point targeted attack of Bai et al. (ECCV 2020): :class:`DHTA` with a
    single anchor item (``n_t = 1``): the code of one random database item carrying the target
    label is the target. Same loss, schedule and defaults as :class:`DHTA`.

    Distance Measure : Linf
    """

    name = "p2p"
