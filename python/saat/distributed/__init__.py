"""Scale-out: attack evaluation, retrieval metrics and whole tables over a Ray cluster, and
data-parallel training over MPI.

Both engines are optional extras, imported only when asked for:

- **Ray** (``pip install 'saat[ray]'``) for independent work: :func:`evaluate_attack` attacks
  shards of the queries in Ray actors that each hold one copy of the model and the attack;
  :func:`map_at_k`, :func:`t_map_at_k` and :func:`hamming_rank` split the database codes over
  actors, each returning its local top-k in (distance, index) order, which the driver merges;
  ``saat.experiments.robustness_table(..., executor="ray")`` runs one Ray task per trained model
  and per (model, attack) cell. These functions use the running Ray connection (``ray.init``
  called by you, or ``RAY_ADDRESS``), or start a local Ray instance when there is none.
- **MPI** (``pip install 'saat[mpi]'``, whose mpich wheel provides ``mpiexec``) for synchronous
  data-parallel training: the ``comm=`` keyword of :func:`saat.train` and of the defences'
  ``fit``; ``mpiexec -n P python -m saat train|defend ...`` does it from the command line.

Exactness. Sharded results equal the single-process ones bit for bit: an adversarial image
depends only on its own query, its index in the query set (random starts and other random
choices are drawn from per-image streams ``(seed, index)``) and the model, never on which other
queries share a call; the metrics are merged under the same (distance, index) order and averaged
in the same order as :mod:`saat.metrics`. Data-parallel training ends with the weights of one
process with the same global batch, up to the rounding of sums over the batch (see
:func:`saat.train`).
"""
from __future__ import annotations

from ._ray import evaluate_attack, hamming_rank, map_at_k, t_map_at_k

__all__ = ["evaluate_attack", "map_at_k", "t_map_at_k", "hamming_rank"]
