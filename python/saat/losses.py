"""Deep-hashing training losses of the Swift core (``SAATCore/Losses``), for checking and tooling.

Each loss sees the batch outputs ``u`` (B, K) of the hash network (tanh outputs in (-1, 1)) and a
memory ``U`` (N, K) of the latest outputs of all N training items with their labels ``Y`` (N, C),
as the official SAAT / CgAT code does. ``s_ij = [y_i . Y_j > 0]`` (share at least one label).
Gradients are with respect to ``u`` only, U held constant (PyTorch's ``U[idx] = u.data``).

Sources (formulas re-expressed, constants as below):
SAAT official code github.com/xandery-geek/SAAT @3743e69 (model/hash_model/{dpsh,dph,hashnet,csq}.py);
CgAT official code github.com/xunguangwang/CgAT @0d4a334 (model/hashing_loss.py: DSDH, DCH, CSQ
extra centres). Where SAAT and CgAT differ (DPSH's quantisation weight, HashNet's scale and
continuation, CSQ's λ), ``hash_loss`` and clean training use SAAT's constants; CgAT's adversarial
training uses CgAT's own (declared with both values on each loss's registry entry in the core).
"""
from __future__ import annotations

import numpy as np

from . import _core, _schema
from ._validate import check_array, check_bool

__all__ = ["LOSSES", "hash_loss"]

#: Names accepted by :func:`hash_loss`, in the core's order (``saat._core.schemas()``).
LOSSES = _schema.names("loss")


def hash_loss(name: str, u: np.ndarray, labels: np.ndarray, indices: np.ndarray,
              train_labels: np.ndarray, memory: np.ndarray, *, write_memory: bool = False,
              **params) -> tuple[float, np.ndarray]:
    r"""Value and gradient of one deep-hashing loss on a batch, computed by the Swift core.

    Notation: ``theta`` is a B×N matrix of scaled inner products ``a * u @ U.T``; ``softplus(x) =
    log(1 + e^x)`` (computed stably); ``sigma`` the logistic function.

    ``"dpsh"`` (DPSH, IJCAI'16; SAAT dpsh.py), ``a = 1/2``, ``eta = 50``::

        L = sum(softplus(theta) - s*theta) / (B*N) + eta * sum((sign(u) - u)**2) / (B*N)

    ``"dph"`` (HAG's DPH; SAAT dph.py), ``a = 1/K``, ``S~ = 2s - 1``::

        L = sum((theta - S~)**2) / (B*N)

    ``"hashnet"`` (HashNet, ICCV'17; SAAT hashnet.py), ``a = 10/K``, S1/S0 = number of similar /
    dissimilar pairs of the B×N matrix::

        L = sum_{s=1}(softplus(theta) - theta) / S1 + sum_{s=0} softplus(theta) / S0

      (SAAT's continuation scale of tanh lives in the Swift class ``HashNetLoss``, not here.)

    ``"dsdh"`` (DSDH, NeurIPS'17; CgAT hashing_loss.py), ``a = 1/2``, ``mu = nu = 1``, ``eta = 55``::

        L = mean(softplus(theta) - s*theta) + mu*mean((y - B[indices] @ W)**2) + nu*mean(W**2)

      with discrete codes ``B = sign(U)`` (CgAT's ``preinstall``) refined, like at the start of a
      training epoch, by 10 DCC iterations: ``W = (B.T B + nu/mu I)^-1 B.T Y``, then for each bit i
      in turn ``B[:, i] = sign(P[:, i] - sum_{k != i} B[:, k] (W W.T)[k, i])`` with
      ``P = Y W.T + eta/mu U``. Only the first term depends on ``u``.

    ``"dch"`` (Deep Cauchy Hashing, CVPR'18; CgAT hashing_loss.py), in-batch pairs (U unused),
    ``gamma = 20``, ``lambda = 0.1``, ``d_ij = K/2 (1 - min(cos(u_i, u_j), 0.99))`` (cosine
    denominator clamped at 1e-4), ``s`` from the batch labels, ``w = s B^2/sum(s) + (1-s) B^2/sum(1-s)``
    (1 when all pairs are alike)::

        L = mean(w (s log(d/gamma) + log(1 + gamma/d))) + lambda mean_i log(1 + d(|u_i|, 1)/gamma)

    ``"csq"`` (Central Similarity Quantization, CVPR'20; SAAT csq.py), ``lambda = 0.05``. Centres:
    the first C rows of ``[H_K; -H_K]`` (Sylvester-Hadamard, K a power of two); when 2K < C, CgAT's
    random balanced extra centres (drawn from ``seed``). Item centre ``c = sign(y @ T)`` with zero
    entries replaced by a fixed random ±1 vector (from ``seed``), ``sign(0) -> -1`` otherwise::

        L = mean(-max(log((1 + c*u)/2), -100)) + lambda * mean((|u| - 1)**2)

      (binary cross-entropy of (u+1)/2 against (c+1)/2; ``u`` must lie in [-1, 1]).

    Parameters
    ----------
    name : one of :data:`LOSSES`.
    u : float32 (B, K) batch outputs.
    labels : float32 (B, C) 0/1 labels of the batch.
    indices : int64 (B,) rows of the batch in the training set, in ``0..N-1``.
    train_labels : float32 (N, C) 0/1 labels Y of the training set.
    memory : float32 (N, K) memory U. With ``write_memory=False`` it is used as given and left
        untouched; with ``write_memory=True`` its rows ``indices`` are first overwritten with ``u``
        (in place, as a training step does) and the loss is computed against the updated memory.
    params : the loss's parameters, as its schema declares them: ``seed`` (int >= 0, CSQ's random
        centres) for ``"csq"``; the other losses have none (their constants are the papers').

    Returns
    -------
    (loss, grad) : the loss as a Python float and ``dloss/du`` as float32 (B, K).

    Raises
    ------
    TypeError for a non-array or a wrong dtype, ValueError for a wrong shape, a non-contiguous
    array, labels that are not 0/1, non-finite values, an index out of range or an unknown name;
    each message names the argument. Nothing is converted or copied silently.

    Example
    -------
    >>> loss, grad = hash_loss("dpsh", u, y[idx], idx, y, U)   # doctest: +SKIP
    """
    if not isinstance(name, str):
        raise TypeError(f"argument 'name': expected a str, got {type(name).__name__}")
    if name in LOSSES and "seed" in params and not any(p["name"] == "seed" for p in _schema.schema("loss", name)["parameters"]):
        raise _schema.removed("hash_loss", "seed", f"only csq draws random centres; {name} has nothing random")
    check_array(u, "u", np.float32, ndim=2)
    b, k = u.shape
    check_array(train_labels, "train_labels", np.float32, ndim=2)
    n, c = train_labels.shape
    check_array(labels, "labels", np.float32, shape=(b, c))
    check_array(indices, "indices", np.int64, shape=(b,))
    write_memory = check_bool(write_memory, "write_memory")
    check_array(memory, "memory", np.float32, shape=(n, k), writable=write_memory)
    grad = np.empty((b, k), dtype=np.float32)
    loss = _core.hash_loss(name, u, labels, indices, train_labels, memory, grad, params, write_memory=write_memory)
    return loss, grad
