"""ProS-GAN: the generative targeted attack (a trained generator, not an iterative attack)."""
from __future__ import annotations

import os

import numpy as np

from .. import _core, _schema
from .._convert import as_float_array, as_images
from .._loop import Progress, atomic_savez, checkpoint_writer, load_npz, read_checkpoint, training_arrays
from ..training import TrainResult

_MODEL_DOC = "model (HashingModel): the model to attack; it stays frozen (eval mode inside training)."
_CHECKPOINT_KIND = "prosgan"


class ProSGAN:
    r"""ProS-GAN, 'Prototype-supervised Adversarial Network for Targeted Attack of Deep Hashing'
    (Wang et al., CVPR 2021; official code github.com/xunguangwang/ProS-GAN).

    A generator G, conditioned on the feature of a label → code prototype network P, learns to
    turn an image into one whose hash code lies near the prototype code of a target label. It is
    trained once (:meth:`fit`) against the frozen model, then attacks any image in one forward
    pass: ``atk(images, target_labels)``. Everything runs in Swift.

    Training (the official recipe): P is trained first (``prototype_steps`` Adam steps on random
    unique label rows of the training set: DPSH likelihood against ``train_codes``, label
    reconstruction and quantisation); then per batch of training images, a spectral-norm
    discriminator D (LSGAN, C label scores + real/fake) is updated every 3rd batch and G
    minimises ``rec_weight·MSE(G(x), x) + 5·(1 − mean(F(x') ⊙ sign P(y_t))) + MSE(D(x'), [y_t,
    real])`` with Adam (lr, β 0.5/0.999; lr constant for the first half of the epochs, then
    decaying linearly). There is no ε-ball: ``rec_weight`` (the paper: 100 on FLICKR-25K, 50 on
    NUS-WIDE and MS-COCO) alone governs how visible the perturbation is; see
    :func:`saat.evaluation.perceptibility`.

    Sizes: the official architecture at 224×224; for images smaller than 112×112 the generator's
    and discriminator's widths are halved and the discriminator has fewer stride-2 layers (3 at
    32×32, ending in a 4×4 kernel); the image side must be a multiple of 16.

    Approximations (see docs/deviations.md): target labels of training are drawn from the
    training set's unique label rows (the official code: the database's); the generator's
    residual blocks use zero padding, as the official code.

    Distance Measure : none (MSE-regularised)

    Shape:
        - images: (N, 3, S, S) in [0, 1]; labels: (N, C) target labels. - output: (N, 3, S, S) in
          [0, 1]. ``last_codes``: the prototype codes sign(P(y_t)) of the last call.

    Examples::
        >>> atk = saat.attacks.ProSGAN(model, model.encode(train_x), train_y, epochs=10)
        >>> atk.fit(train_x, train_y)
        >>> adv = atk(query_x, target_labels)
        >>> atk.save("prosgan.npz")
    """

    name = "prosgan"
    #: a ProS-GAN call's labels are always target labels
    targeted = True

    def _configure(self, model, args, kwargs):
        s = type(self)._schema
        _schema.require_model(model)
        inputs, params = _schema.bind(type(self).__init__.__signature__, s, args, kwargs, skip=2)
        arrays = {k: as_float_array(v, k) for k, v in inputs.items()}
        self._handle, resolved = _core.prosgan_new(model._handle, arrays, params)
        self._inputs = arrays
        self.model = model
        self.params = dict(resolved)
        for k, v in self.params.items():
            setattr(self, k, v)
        self.trained = False
        self.last_codes = None

    @property
    def needs_labels(self) -> bool:
        """A call always needs the target labels."""
        return True

    def fit(self, images, labels=None, *, progress=True, checkpoint=None, checkpoint_every: int = 0,
            resume=None) -> TrainResult:
        """Train the prototype net, the generator and the discriminator on ``images`` (N, 3, S, S)
        in [0, 1] with their true multi-hot ``labels`` (N, C) (the discriminator's real targets).
        ``progress``, ``checkpoint``, ``checkpoint_every`` and ``resume`` work as in
        :func:`saat.train` (checkpoints of kind 'prosgan'; a resumed run ends with the same
        networks as an uninterrupted one). ``images`` may also be an iterable of ``(images,
        labels[, index])`` batches (``labels`` None). Returns the per-epoch mean generator loss."""
        x, y = training_arrays(self.model, images, labels)
        ckpt_cb = checkpoint_writer(checkpoint, checkpoint_every, _CHECKPOINT_KIND)
        resume_state = read_checkpoint(resume, _CHECKPOINT_KIND) if resume is not None else None
        batch = min(self.params["batch_size"], x.shape[0])
        bar = Progress(progress, self.params["epochs"] * -(-x.shape[0] // batch), "ProS-GAN")
        try:
            history = _core.prosgan_fit(self._handle, self.model._handle, x, y, progress=bar, checkpoint=ckpt_cb,
                                        checkpoint_every=int(checkpoint_every or 0), resume=resume_state)
        finally:
            bar.close()
        self.trained = True
        return TrainResult(history=history)

    def __call__(self, images, labels=None) -> np.ndarray:
        """Adversarial versions of ``images`` ((N, 3, S, S) in [0, 1]) steered towards the target
        ``labels`` ((N, C) multi-hot), as float32 (N, 3, S, S) in [0, 1]. An image's result does
        not depend on the other images of the call."""
        if labels is None:
            raise TypeError("argument 'labels': ProSGAN needs the target labels of the images")
        x = as_images(images, "images", self.model.input_shape)
        y = as_float_array(labels, "labels")
        out = np.empty_like(x)
        codes = np.empty((x.shape[0], self.model.bits), np.int8)
        _core.prosgan_generate(self._handle, self.model._handle, x, y, out, codes_out=codes)
        self.last_codes = codes if x.shape[0] else None
        return out

    def state_dict(self) -> dict:
        """The networks' parameters (and the discriminator's spectral-norm vectors) as float32
        arrays under the official code's names, prefixed ``prototype_net.``, ``generator.`` and
        ``discriminator.`` (e.g. ``generator.image_encoder.0.weight``,
        ``discriminator.main.0.weight_bar``)."""
        raw = _core.prosgan_state_dict(self._handle)
        return {k: np.frombuffer(buf, dtype=np.float32).reshape(shape).copy() for k, (buf, shape) in raw.items()}

    def load_state_dict(self, state: dict) -> None:
        """Load a :meth:`state_dict` (strict: every name, no other, matching shapes, finite)."""
        if not isinstance(state, dict):
            raise TypeError(f"argument 'state': expected a dict name -> array, got {type(state).__name__}")
        _core.prosgan_load_state_dict(self._handle, {k: as_float_array(v, f"state['{k}']") for k, v in state.items()})
        self.trained = True

    def save(self, path) -> None:
        """Write :meth:`state_dict` to ``path`` as an ``.npz`` (atomically)."""
        atomic_savez(os.fspath(path), self.state_dict())

    def load(self, path) -> "ProSGAN":
        """Load networks saved by :meth:`save` into this attack (same model sizes); returns self."""
        self.load_state_dict(load_npz(path, "path", "ProSGAN .npz"))
        return self

    def __reduce__(self):
        # Rebuilt from its class, model, data inputs, parameters and (when trained) its networks.
        return (_rebuild, (type(self), self.model, self._inputs, self.params, self.state_dict() if self.trained else None))

    def __repr__(self):
        shown = ("epochs", "batch_size", "rec_weight", "prototype_steps", "seed")
        return f"ProSGAN({_schema.format_params(self.params, shown)})"


def _rebuild(cls, model, inputs, params, state):
    atk = cls(model, **inputs, **params)
    if state is not None:
        atk.load_state_dict(state)
    return atk


_schema.install(ProSGAN, "generative", _MODEL_DOC, "_configure")
