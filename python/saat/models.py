"""Deep hashing models: a CNN backbone with a K-bit hash layer and tanh, run by the Swift core."""
from __future__ import annotations

import inspect
import os
from collections import OrderedDict

import numpy as np

from . import _core, _schema
from ._convert import as_float_matrix, as_images, collect_batches, is_batch_iterable
from ._loop import atomic_savez
from ._validate import check_float

__all__ = ["HashingModel", "BACKBONES", "from_torch_state_dict"]

#: Backbone names, in the core's order (``saat._core.schemas()``).
BACKBONES = _schema.names("backbone")
_MODEL = _schema.defaults(_schema.schema("backbone", BACKBONES[0]))   # bits, seed: the same for every backbone


def _to_numpy_dict(raw) -> "OrderedDict[str, np.ndarray]":
    return OrderedDict((k, np.frombuffer(buf, dtype=np.float32).reshape(shape)) for k, (buf, shape) in raw.items())


class HashingModel:
    """A deep hashing network ``F(x; α) = tanh(α · g(x))`` with binary codes ``sign(F(x))``.

    ``backbone``: ``cnn-small`` (input 3×32×32): conv 3→32 3×3 + ReLU + max-pool 2 → conv 32→64 3×3
    + ReLU + max-pool 2 → linear 4096→512 + ReLU → hash layer; the default for the demo and tests.
    ``alexnet`` and ``vgg11`` (input 3×224×224) are the papers' backbones (torchvision layer
    names, so ImageNet weights load with :meth:`load_state_dict`), with dropout in train mode.
    Initialisation: hash layer N(0, 0.01), bias 0, as CgAT. cnn-small, which has no pretrained
    weights and is trained from scratch, uses Kaiming-normal weights N(0, 2/fan_in) and zero
    biases for its other layers; alexnet/vgg11 use PyTorch's default uniform init U(±1/√fan_in)
    (they are meant to load pretrained weights). ``mean``, ``std``: per-channel input
    normalisation ``(x − mean) / std`` applied inside the model, so images are given in [0, 1];
    defaults: none (0 and 1) for cnn-small, ImageNet's for alexnet/vgg11.

    Notes
    -----
    Images are NCHW arrays in [0, 1]: float32/float64, or uint8 (scaled by 1/255); other dtypes,
    wrong shapes, NaN/inf or values outside [0, 1] raise ``TypeError``/``ValueError`` naming the
    argument. A new model is in eval mode (deterministic); training functions switch to train mode
    for their duration.

    NaN policy: NaN/inf in images, ``grad_out``, labels, codes or a state dict raise
    ``ValueError`` naming the argument (``load_state_dict`` checks every tensor before changing
    anything, so a rejected state leaves the model as it was). A training whose loss becomes
    NaN/inf (e.g. ``lr`` too large) stops with :class:`saat.TrainingDiverged` (a ``ValueError``
    naming ``lr``); its weights may then be non-finite, and ``forward``/``encode``/attacks on such
    a model raise ``ValueError`` naming ``model`` instead of returning NaN codes.

    Threads: every call on a model (forward, encode, input_gradient, attacks, training, state
    dicts) holds the model's lock in the core for its whole duration, with the GIL released, so
    calls on one model from several threads are serialised (each sees the model as a previous
    call left it: an ``encode`` during ``saat.train`` waits until training returns) and calls on
    different models run in parallel. A call on the model *from a progress/checkpoint callback
    of a loop running on that same model* (same thread) raises ``RuntimeError`` instead of
    deadlocking; attack objects may be shared across threads.
    Inside one call the kernels use ``saat.kernels.set_threads`` worker threads (default: all
    CPUs) with OpenBLAS on one thread. Outputs and input gradients are bitwise the same for any
    thread count, by construction: every value is computed by one thread, in a GEMM call whose
    shape depends on the layer and the batch size only (convolutions per image, linear layers in
    fixed blocks of features). Convolution weight gradients are summed per thread, so training is
    bitwise reproducible for a fixed seed and thread count. Across CPU kinds (AVX2, AVX-512) and
    batch sizes, OpenBLAS may pick other micro-kernels: results then agree to float32 rounding,
    not bit for bit.

    Example
    -------
    >>> model = saat.HashingModel("cnn-small", bits=32, seed=0)
    >>> codes = model.encode(images)            # (N, 32) int8 in {-1, +1}
    """

    def __init__(self, backbone: str = BACKBONES[0], *args, **kwargs):
        ba = _bind(HashingModel.__init__, (self, backbone, *args), kwargs)
        mean, std = ba.arguments.get("mean"), ba.arguments.get("std")
        given = {k: ba.arguments[k] for k in ("bits", "seed") if ba.arguments.get(k) is not None}
        m = None if mean is None else self._channel_vector(mean, "mean", positive=False)
        s = None if std is None else self._channel_vector(std, "std", positive=True)
        self._handle = _core.model_new(backbone, given.get("bits", _MODEL["bits"]), given.get("seed"), m, s)
        info = _core.model_info(self._handle)
        self.backbone = info["backbone"]
        self.bits = info["bits"]
        self.seed = info["seed"]
        self.input_shape = tuple(info["input_shape"])

    @staticmethod
    def _channel_vector(v, name, positive):
        try:
            arr = np.asarray(v, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as e:
            raise TypeError(f"argument '{name}': expected 3 per-channel numbers, got {type(v).__name__} ({e})") from None
        if arr.shape != (3,):
            raise ValueError(f"argument '{name}': expected 3 per-channel values, got shape {np.shape(v)}")
        if not np.isfinite(arr).all() or (positive and (arr <= 0).any()):
            raise ValueError(f"argument '{name}': expected finite{' positive' if positive else ''} values, got {arr.tolist()}")
        return np.ascontiguousarray(arr, dtype=np.float32)

    # ----------------------------------------------------------------- properties
    @property
    def mean(self) -> np.ndarray:
        """Per-channel mean subtracted inside the model (0 when no normalisation)."""
        return np.array(_core.model_info(self._handle)["mean"], dtype=np.float32)

    @property
    def std(self) -> np.ndarray:
        """Per-channel std the input is divided by inside the model (1 when no normalisation)."""
        return np.array(_core.model_info(self._handle)["std"], dtype=np.float32)

    def set_normalisation(self, mean, std) -> "HashingModel":
        """Set the per-channel input normalisation ``(x − mean) / std``."""
        _core.model_set_normalisation(self._handle, self._channel_vector(mean, "mean", False),
                                      self._channel_vector(std, "std", True))
        return self

    @property
    def training(self) -> bool:
        """True in train mode (dropout active), False in eval mode."""
        return bool(_core.model_info(self._handle)["training"])

    def train(self, mode: bool = True) -> "HashingModel":
        """Switch to train mode (dropout on); returns self like PyTorch."""
        _core.model_set_mode(self._handle, bool(mode))
        return self

    def eval(self) -> "HashingModel":
        """Switch to eval mode (deterministic); returns self."""
        return self.train(False)

    # ----------------------------------------------------------------- compute
    def forward(self, x, alpha: float = 1.0) -> np.ndarray:
        """Continuous outputs ``tanh(alpha · g(x))``, float32 (N, K), for images x (N, C, H, W)."""
        alpha = check_float(alpha, "alpha", 0.0, lo_open=True)
        x = as_images(x, "x", self.input_shape)
        out = np.empty((x.shape[0], self.bits), dtype=np.float32)
        _core.model_forward(self._handle, x, out, alpha)
        return out

    __call__ = forward

    def encode(self, x) -> np.ndarray:
        """Binary codes ``sign(F(x))`` as int8 (N, K) in {−1, +1}; an exact 0 maps to +1.

        ``x``: images (N, C, H, W) — numpy (float32/float64/uint8, C or F order) or a CPU torch
        tensor — or an iterable of batches (e.g. a ``torch.utils.data.DataLoader`` yielding
        ``images``, ``(images, labels)`` or ``(images, labels, index)``); with an index the codes
        come back in dataset order. The codes work unchanged with the community's numpy MAP
        scripts (DeepHash-pytorch ``CalcTopMap``, SAAT/CgAT ``cal_map``)."""
        if is_batch_iterable(x):
            x, _ = collect_batches(x, "x", self.input_shape, with_labels=False)
        f = self.forward(x)
        return np.where(f >= 0, 1, -1).astype(np.int8)

    def input_gradient(self, x, grad_out, alpha: float = 1.0) -> np.ndarray:
        """Vector–Jacobian product ``(∂F(x; alpha)/∂x)ᵀ · grad_out`` in pixel space.

        x : images (N, C, H, W); grad_out : (N, K). Returns float32 (N, C, H, W). This is the
        primitive every gradient attack uses; parameter gradients are not computed.
        """
        alpha = check_float(alpha, "alpha", 0.0, lo_open=True)
        x = as_images(x, "x", self.input_shape)
        g = as_float_matrix(grad_out, "grad_out", rows=x.shape[0], cols=self.bits)
        out = np.empty_like(x)
        _core.model_input_gradient(self._handle, x, g, out, alpha)
        return out

    # ----------------------------------------------------------------- weights
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Parameters as an ordered dict of float32 arrays with PyTorch names and shapes
        (conv weight (out, in, kh, kw), linear weight (out, in)); copies."""
        return _to_numpy_dict(_core.model_state_dict(self._handle))

    def load_state_dict(self, state) -> "HashingModel":
        """Load parameters by name (strict: every parameter, exact shapes, finite values).

        Accepts any mapping of name → array-like, e.g. ``{k: v.numpy() for k, v in
        torch_model.state_dict().items()}`` of an equivalent PyTorch model.
        """
        if not hasattr(state, "items"):
            raise TypeError(f"argument 'state': expected a mapping of name -> array, got {type(state).__name__}")
        conv = {}
        for k, v in state.items():
            if not isinstance(k, str):
                raise TypeError(f"argument 'state': keys must be str, got {type(k).__name__}")
            if hasattr(v, "detach"):
                v = v.detach().cpu().numpy()
            arr = np.asarray(v)
            if not (np.issubdtype(arr.dtype, np.floating)):
                raise TypeError(f"argument 'state['{k}']': expected a float array, got dtype {arr.dtype}")
            conv[k] = np.ascontiguousarray(arr, dtype=np.float32)
        _core.model_load_state_dict(self._handle, conv)
        return self

    def save(self, path) -> None:
        """Save weights and configuration to a ``.npz`` file (written atomically)."""
        path = os.fspath(path)
        meta = {"__backbone__": np.array(self.backbone), "__bits__": np.array(self.bits),
                "__seed__": np.array(self.seed), "__mean__": self.mean, "__std__": self.std}
        atomic_savez(path, {**meta, **self.state_dict()})

    @classmethod
    def load(cls, path) -> "HashingModel":
        """Load a model written by :meth:`save`."""
        path = os.fspath(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError) as e:
            raise ValueError(f"{path}: not a readable saat model file ({e})") from None
        try:
            model = cls(str(data.pop("__backbone__")), int(data.pop("__bits__")), int(data.pop("__seed__")),
                        mean=data.pop("__mean__"), std=data.pop("__std__"))
        except KeyError as e:
            raise ValueError(f"{path}: not a saat model file (missing {e})") from None
        return model.load_state_dict(data)

    def __reduce__(self):
        # Pickled as configuration + weights + mode (the core handle itself cannot be): how a model
        # travels to Ray workers through the object store. The dropout layers' random state is not
        # carried: a copy in train mode draws its masks from the model's seed afresh (eval-mode
        # outputs, which attacks and metrics use, are unaffected).
        return (_rebuild_model, (self.backbone, self.bits, self.seed, self.mean, self.std, dict(self.state_dict()),
                                 self.training))

    def __repr__(self) -> str:
        return (f"HashingModel(backbone='{self.backbone}', bits={self.bits}, seed={self.seed}, "
                f"mode={'train' if self.training else 'eval'})")


def _rebuild_model(backbone, bits, seed, mean, std, state, training):
    return HashingModel(backbone, bits, seed, mean=mean, std=std).load_state_dict(state).train(training)


def _bind(fn, args, kwargs):
    """Bind a call of ``fn`` against its signature, the TypeError naming the callable."""
    try:
        return fn.__signature__.bind(*args, **kwargs)
    except TypeError as e:
        raise TypeError(f"HashingModel(): {e}") from None


_P = inspect.Parameter
HashingModel.__init__.__signature__ = _schema.signature(
    _schema.schema("backbone", BACKBONES[0]),
    [_P("self", _P.POSITIONAL_OR_KEYWORD), _P("backbone", _P.POSITIONAL_OR_KEYWORD, default=BACKBONES[0])],
    [_P("mean", _P.POSITIONAL_OR_KEYWORD, default=None), _P("std", _P.POSITIONAL_OR_KEYWORD, default=None)])
HashingModel.__signature__ = inspect.Signature(list(HashingModel.__init__.__signature__.parameters.values())[1:])
_schema.document(HashingModel, _schema.schema("backbone", BACKBONES[0]),
                 leading=f"backbone (str): one of {', '.join(BACKBONES)}. (Default: {BACKBONES[0]!r})\n"
                         "mean, std (3 floats or None): per-channel normalisation inside the model.")


def from_torch_state_dict(backbone: str, bits: int, state_dict, mean=None, std=None) -> HashingModel:
    """Build a :class:`HashingModel` from a PyTorch ``state_dict`` (tensors or arrays) of the
    equivalent network; tensors are converted with ``.detach().cpu().numpy()`` (no torch import)."""
    return HashingModel(backbone, bits, mean=mean, std=std).load_state_dict(state_dict)
