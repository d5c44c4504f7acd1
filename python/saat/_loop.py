"""Python side of the Swift training loops: progress bars, checkpoint files, resume."""
from __future__ import annotations

import os
import tempfile
import zipfile

import numpy as np


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


def read_checkpoint(path, kind: str) -> dict:
    """Read a checkpoint written by :func:`write_checkpoint`; clear errors for missing, truncated
    or foreign files."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"argument 'resume': checkpoint file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise ValueError(f"argument 'resume': {path} is not a readable checkpoint (truncated or corrupted: {e})") from None
    found = str(data.pop("__kind__", ""))
    if found != kind:
        raise ValueError(f"argument 'resume': {path} is a checkpoint of '{found or 'unknown'}', expected '{kind}'")
    for k, v in data.items():
        if v.dtype != np.float32:
            raise ValueError(f"argument 'resume': {path} entry '{k}' has dtype {v.dtype}, expected float32")
    return {k: np.ascontiguousarray(v) for k, v in data.items()}


def run_loop(core_fn, *, kind: str, total_batches: int, progress, checkpoint, checkpoint_every, resume, desc,
             owner=None, **kwargs):
    """Call a core training entry point with progress, checkpoint and resume plumbing.

    ``owner``: the HashingModel being trained; when the core stops a diverged run (non-finite
    loss, ValueError naming 'lr'), the model is told to check its weights (see the NaN policy in
    _validate.py)."""
    if checkpoint_every and checkpoint is None:
        raise ValueError("argument 'checkpoint': a file path is required when checkpoint_every > 0")
    if checkpoint is not None and not checkpoint_every:
        raise ValueError("argument 'checkpoint_every': expected an int > 0 when a checkpoint path is given")
    ckpt_cb = None
    if checkpoint is not None:
        ckpt_path = os.fspath(checkpoint)
        ckpt_cb = lambda st: write_checkpoint(ckpt_path, st, kind)  # noqa: E731
    resume_state = read_checkpoint(resume, kind) if resume is not None else None
    bar = Progress(progress, total_batches, desc)
    try:
        return core_fn(progress=bar, checkpoint=ckpt_cb, checkpoint_every=int(checkpoint_every or 0),
                       resume=resume_state, **kwargs)
    except ValueError as e:
        if owner is not None and str(e).startswith("argument 'lr'"):
            owner._check_weights_finite()
        raise
    finally:
        bar.close()
