"""Python side of the Swift training loops: the training arrays, progress bars, checkpoint files,
resume, and the one call into the core's generic ``train`` entry (clean training and defences)."""
from __future__ import annotations

import os
import tempfile
import zipfile

import numpy as np

from . import _core, _schema
from ._convert import as_float_array, as_images, collect_batches, is_batch_iterable


class Progress:
    """Adapts the core's per-batch callback ``(epoch, batch, batches, loss, lr)`` to a tqdm bar
    (when ``progress is True`` and tqdm is installed), a user callable, or nothing."""

    def __init__(self, progress, total: int, desc: str):
        self.user = progress if callable(progress) else None
        self.bar = None
        if progress is True:
            try:
                from tqdm.auto import tqdm
            except ImportError:  # progress bars are optional
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, desc=desc, unit="batch", leave=False)
        elif progress not in (False, None) and self.user is None:
            raise TypeError(f"argument 'progress': expected True, False, None or a callable, got {type(progress).__name__}")

    def __call__(self, epoch, batch, batches, loss, lr):
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(epoch=epoch, loss=f"{loss:.4f}", lr=f"{lr:.3g}", refresh=False)
        if self.user is not None:
            return self.user(epoch, batch, batches, loss, lr)
        return None

    def close(self):
        if self.bar is not None:
            self.bar.close()


def write_checkpoint(path: str, raw_state: dict, kind: str) -> None:
    """Write the core's state dict name → (bytearray, shape) atomically (temp file + fsync + rename)."""
    arrays = {k: np.frombuffer(buf, dtype=np.float32).reshape(shape) for k, (buf, shape) in raw_state.items()}
    arrays["__kind__"] = np.array(kind)
    atomic_savez(path, arrays)


def atomic_savez(path: str, arrays: dict) -> None:
    """``np.savez`` to ``path`` so that a reader (or a crash) sees the old file or the new one,
    never a partial one: write a uniquely named temp file in the same folder, fsync it, rename it
    over ``path``, then fsync the folder so the rename itself survives a power loss. Concurrent
    writers to one path each use their own temp file; the last rename wins."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dfd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def load_npz(path, argument: str, what: str) -> dict:
    """Every array of the ``.npz`` at ``path`` (no pickles); FileNotFoundError / ValueError naming
    ``argument`` for a missing, truncated or corrupted file (``what`` it should be)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"argument '{argument}': {what} file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise ValueError(f"argument '{argument}': {path} is not a readable {what} (truncated or corrupted: {e})") from None


def checkpoint_writer(checkpoint, checkpoint_every, kind: str, writer: bool = True):
    """The core's checkpoint callback for a ``checkpoint`` path (None: no checkpoints), after the
    checks both arguments share: a path needs ``checkpoint_every`` > 0 and vice versa. Returns
    None when there is no path or this process does not write (``writer`` False)."""
    if checkpoint_every and checkpoint is None:
        raise ValueError("argument 'checkpoint': a file path is required when checkpoint_every > 0")
    if checkpoint is not None and not checkpoint_every:
        raise ValueError("argument 'checkpoint_every': expected an int > 0 when a checkpoint path is given")
    if checkpoint is None or not writer:
        return None
    path = os.fspath(checkpoint)
    return lambda st: write_checkpoint(path, st, kind)


def read_checkpoint(path, kind: str) -> dict:
    """Read a checkpoint written by :func:`write_checkpoint`; clear errors for missing, truncated
    or foreign files."""
    path = os.fspath(path)
    data = load_npz(path, "resume", "checkpoint")
    found = str(data.pop("__kind__", ""))
    if found != kind:
        raise ValueError(f"argument 'resume': {path} is a checkpoint of '{found or 'unknown'}', expected '{kind}'")
    for k, v in data.items():
        if v.dtype != np.float32:
            raise ValueError(f"argument 'resume': {path} entry '{k}' has dtype {v.dtype}, expected float32")
    return {k: np.ascontiguousarray(v) for k, v in data.items()}


def training_arrays(model, images, labels):
    """The images and labels of a training call as the core takes them: ``images`` (N, C, H, W) in
    [0, 1] with ``labels`` (N, C), or an iterable of ``(images, labels[, index])`` batches (e.g. a
    DataLoader; ``labels`` None) collected into memory once. Values are checked by the core."""
    if is_batch_iterable(images):
        if labels is not None:
            raise ValueError("argument 'labels': pass None when 'images' is an iterable of (images, labels) batches")
        images, labels = collect_batches(images, "images", model.input_shape, with_labels=True)
    elif labels is None:
        raise TypeError("argument 'labels': required when 'images' is an array")
    x = as_images(images, "images", model.input_shape)
    if x.shape[0] == 0:
        raise ValueError("argument 'images': expected at least one training image, got an empty batch")
    y = as_float_array(labels, "labels")
    if y.ndim != 2 or y.shape[0] != x.shape[0]:
        raise ValueError(f"argument 'labels': expected {x.shape[0]} rows (one label row per image), got shape {y.shape}")
    return x, y


def run_training(method: str, model, images, labels, params: dict, *, progress, checkpoint, checkpoint_every,
                 resume, desc: str, settings: dict | None = None, memory_out: bool = False, comm=None):
    """Train ``model`` in place with the core's recipe ``method`` ("hashing", "saat", "cgat",
    "atrdh") and its ``params`` (checked by the core), with progress, checkpoint and resume
    plumbing. ``settings``: the recipe's resolved parameters when the caller has them (a defence
    resolved them at construction); otherwise the core resolves them once here, to size the
    progress bar and name the checkpoint kind. Returns ``(history, memory)``: the per-epoch mean
    losses and, with ``memory_out``, the loss memory (N, K) of continuous training outputs.

    ``comm``: an mpi4py communicator for data-parallel training (see :mod:`saat.distributed`):
    every rank is given the same arrays and computes its slice of each global batch; only rank 0
    writes the checkpoint file and shows a progress bar (a progress callable runs on every rank)."""
    group = None
    if comm is not None:
        from .distributed._mpi import Collectives
        group = Collectives(comm)
    x, y = training_arrays(model, images, labels)
    kind = "training" if method in _schema.names("training") else "defence"
    settings = settings if settings is not None else _core.resolve(kind, method, params)
    ckpt_kind = f"{'train' if kind == 'training' else method}:{settings['loss']}"
    if group is not None and group.size > 1:
        weights = np.concatenate([v.ravel() for v in model.state_dict().values()])
        group.require_same(images=x, labels=y, model=weights)
        group.require_same_params(settings)
    writer = group is None or group.rank == 0
    # Other ranks get no callback: the core then skips converting the state for them.
    ckpt_cb = checkpoint_writer(checkpoint, checkpoint_every, ckpt_kind, writer)
    resume_state = read_checkpoint(resume, ckpt_kind) if resume is not None else None
    if group is not None and group.size > 1 and resume_state is not None:
        group.require_same(resume=np.concatenate([resume_state[n].ravel() for n in sorted(resume_state)]))
    batch = min(settings["batch_size"], x.shape[0])
    memory = np.empty((x.shape[0], model.bits), np.float32) if memory_out else None
    bar = Progress(progress if writer or progress is not True else False, settings["epochs"] * -(-x.shape[0] // batch),
                   desc)
    try:
        history = _core.train(method, model._handle, x, y, params, progress=bar, checkpoint=ckpt_cb,
                              checkpoint_every=int(checkpoint_every or 0), resume=resume_state, memory_out=memory,
                              **(group.core_kwargs() if group is not None else {}))
    finally:
        bar.close()
    return history, memory
