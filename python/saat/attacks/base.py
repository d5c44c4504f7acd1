"""The call protocol every attack shares, torchattacks-style: construct with the model, the data an
attack needs (training or database codes and labels) and hyper-parameters; call on images (and
labels) to get adversarial images.

A subclass names its registry entry in the Swift core (``name``); its signature, defaults and the
"Arguments" section of its docstring come from the core's schema of that entry
(:mod:`saat._schema`), and the core checks every value once, when the attack is prepared.
"""
from __future__ import annotations

import numpy as np

from .. import _core, _schema
from .._convert import as_float_array, as_images
from .._validate import check_int
from ..models import HashingModel

_MODEL_DOC = "model (HashingModel): the model to attack (call model.eval() first, as the papers do)."


class Attack:
    """Base class of the attacks. After a call, ``last_codes`` holds the guide codes the attack
    steered by ((N, K) int8 in {−1, 0, +1}; None for an attack without one): the "theory" code of
    the papers' tables. ``targeted`` says whether the labels of a call are target labels."""

    #: registry name in the core (``saat._core.schemas()``); set by every concrete attack
    name = ""
    #: parameters removed on purpose: name → what to do instead (a TypeError says so)
    removed: dict = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.name:
            _schema.install(cls, "attack", _MODEL_DOC, "_prepare")

    def _prepare(self, model, args, kwargs):
        s = type(self)._schema
        for k, instead in self.removed.items():
            if k in kwargs:
                raise _schema.removed(s["python"], k, instead)
        _schema.require_model(model)
        inputs, params = _schema.bind(type(self).__init__.__signature__, s, args, kwargs, skip=2)
        arrays = {k: as_float_array(v, k) for k, v in inputs.items()}
        self._handle, info = _core.attack_prepare(s["name"], model._handle, arrays, params)
        self._inputs = arrays   # kept so the attack can be rebuilt elsewhere (pickle, Ray actors)
        self.model = model
        self.targeted = info["targeted"]
        self.params = dict(info["params"])
        for k, v in self.params.items():
            setattr(self, k, v)
        self._label_classes = info["label_classes"]
        self._guides = info["guides"]
        self.last_codes = None

    @property
    def needs_labels(self) -> bool:
        """Whether a call needs labels (true labels, or target labels when ``targeted``)."""
        return self._label_classes is not None

    def __call__(self, images, labels=None, *, first_index: int = 0) -> np.ndarray:
        """Adversarial versions of ``images`` ((N, C, H, W) in [0, 1]) as float32 (N, C, H, W), with
        ‖x' − x‖∞ ≤ eps and 0 ≤ x' ≤ 1.

        ``labels``: (N, C) multi-hot true labels (non-targeted) or target labels (targeted), for
        attacks that use labels; ignored by the others.
        ``first_index``: the index of ``images[0]`` in the whole query set. Every random choice of
        image i (random start, DHTA/P2P's anchor items) is drawn from the stream
        ``(seed, first_index + i)``, and an image's result never depends on the other images of
        the call, so ``atk(x)`` equals, bit for bit, the concatenation of ``atk(x[a:b],
        first_index=a)`` over any split of ``x`` (how :mod:`saat.distributed` shards queries).
        """
        first_index = check_int(first_index, "first_index", 0, 2**31 - 1)
        x = as_images(images, "images", self.model.input_shape)
        y = None
        if self._label_classes is not None:
            if labels is None:
                what = "target labels" if self.targeted else "true labels"
                raise TypeError(f"argument 'labels': {type(self).__name__} needs the {what} of the images")
            y = as_float_array(labels, "labels")
        out = np.empty_like(x)
        guide = np.empty((x.shape[0], self.model.bits), np.int8) if self._guides else None
        _core.attack_run(self._handle, self.model._handle, x, out, labels=y, guide_out=guide, first_index=first_index)
        self.last_codes = guide if x.shape[0] else None
        return out

    def __reduce__(self):
        # Rebuilt from its class, model, data inputs and resolved parameters (the prepared core
        # handle itself cannot be pickled); THA retrains its prototype net from the same seed.
        return (_rebuild_attack, (type(self), self.model, self._inputs, self.params))

    def __repr__(self):
        return f"{type(self).__name__}({_schema.format_params(self.params)})"


def _rebuild_attack(cls, model, inputs, params):
    return cls(model, **inputs, **params)
