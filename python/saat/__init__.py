"""saat — robust deep-hashing image retrieval with a Swift core.

Implements, from the papers, the attacks and defences of SAAT (Semantic-Aware Adversarial
Training, mainstay codes by DMFL) and CgAT (Center-guided Adversarial Training, center codes by
CHCM), with the baselines they are compared against. Numpy arrays go in and out; the loops run in
Swift (``saat._core``) with the GIL released.
"""
from __future__ import annotations

__version__ = "0.1.0"

from . import _core
from ._core import TrainingDiverged
from . import kernels
from . import models, losses, metrics, codes, training, attacks, defences, datasets, evaluation, experiments
from .models import HashingModel, from_torch_state_dict
from .training import train
from .evaluation import evaluate_attack

__all__ = ["info", "TrainingDiverged", "HashingModel", "from_torch_state_dict", "train", "evaluate_attack", "kernels", "models",
           "losses", "metrics", "codes", "training", "attacks", "defences", "datasets", "evaluation", "experiments",
           "__version__"]


def info() -> dict:
    """Build and runtime facts of the Swift core.

    Returns a dict with ``version`` (Python package), ``core_version`` (Swift core), ``blas``
    (OpenBLAS build configuration), ``blas_core`` (kernel set OpenBLAS chose for this CPU),
    ``blas_threads`` (OpenBLAS threads for standalone BLAS work), ``threads`` (worker threads of
    the network kernels, see ``saat.kernels.set_threads``) and ``target_cpu`` (the LLVM CPU the
    Swift kernels were compiled for).
    """
    d = {"version": __version__}
    d.update(_core.info())
    return d
