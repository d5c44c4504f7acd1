"""The papers' list formats (ProS-GAN/SAAT/CgAT ``{split}_img.txt`` + ``{split}_label.txt``, and
DeepHash-pytorch ``path l1 ... lC``) and the image loading behind them. Every malformed input
raises an error naming the file and the 1-based line number."""
from __future__ import annotations

import dataclasses
import os
from typing import Iterator, Sequence

import numpy as np

from .._validate import check_int
from .containers import DataFormatError, HashingDataset, Split


def _fspath(v, name: str) -> str:
    """``os.fspath(v)`` with a TypeError naming the argument."""
    try:
        out = os.fspath(v)
    except TypeError:
        raise TypeError(f"argument '{name}': expected a path (str or os.PathLike), got {type(v).__name__}") from None
    if isinstance(out, bytes):
        out = os.fsdecode(out)
    if not out:
        raise ValueError(f"argument '{name}': expected a non-empty path (use '.' for the current folder)")
    return out


def _read_lines(path: str) -> list[str]:
    """Non-blank lines of a text file (trailing blank lines dropped; a blank line inside the file
    is an error). Raises FileNotFoundError / DataFormatError naming the file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: list file not found")
    try:
        with open(path, "r", encoding="utf-8") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as e:
        raise DataFormatError(f"{path}: not a UTF-8 text file ({e})") from None
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise DataFormatError(f"{path}, line 1: file is empty")
    for i, line in enumerate(lines, 1):
        if not line.strip():
            raise DataFormatError(f"{path}, line {i}: blank line")
    return lines


def _parse_label_tokens(tokens: Sequence[str], path: str, line: int, width: int | None) -> list[int]:
    if width is not None and len(tokens) != width:
        raise DataFormatError(f"{path}, line {line}: {len(tokens)} labels, expected {width} "
                              f"(the width of line 1)")
    if not tokens:
        raise DataFormatError(f"{path}, line {line}: no labels")
    out = []
    for t in tokens:
        try:
            v = float(t)
        except ValueError:
            raise DataFormatError(f"{path}, line {line}: label {t!r} is not a number") from None
        if v != 0.0 and v != 1.0:
            raise DataFormatError(f"{path}, line {line}: label {t!r} is not 0 or 1")
        out.append(int(v))
    return out


@dataclasses.dataclass
class _Entries:
    """Parsed list: image paths, their (file, line) origin, labels (N, C) float32."""
    paths: list[str]
    origin_file: str
    labels: np.ndarray


def _parse_pair(img_file: str, label_file: str) -> _Entries:
    paths = [ln.strip() for ln in _read_lines(img_file)]
    rows = _read_lines(label_file)
    if len(rows) != len(paths):
        first = min(len(rows), len(paths)) + 1
        longer = img_file if len(paths) > len(rows) else label_file
        other = label_file if longer == img_file else img_file
        raise DataFormatError(
            f"{longer}, line {first}: {len(paths) if longer == img_file else len(rows)} lines, but "
            f"{other} has {len(rows) if longer == img_file else len(paths)} (line counts differ)")
    width = None
    labels = []
    for i, row in enumerate(rows, 1):
        vals = _parse_label_tokens(row.split(), label_file, i, width)
        width = len(vals)
        labels.append(vals)
    return _Entries(paths, img_file, np.asarray(labels, dtype=np.float32))


def _parse_deephash(list_file: str) -> _Entries:
    paths, labels, width = [], [], None
    for i, row in enumerate(_read_lines(list_file), 1):
        tokens = row.split()
        if len(tokens) < 2:
            raise DataFormatError(f"{list_file}, line {i}: expected 'path l1 ... lC', got {row.strip()!r}")
        vals = _parse_label_tokens(tokens[1:], list_file, i, width)
        width = len(vals)
        paths.append(tokens[0])
        labels.append(vals)
    return _Entries(paths, list_file, np.asarray(labels, dtype=np.float32))


def _check_sizes(image_size, resize) -> tuple[int, int]:
    image_size = check_int(image_size, "image_size", lo=1, hi=1 << 14)
    return image_size, check_int(resize, "resize", lo=image_size, hi=1 << 14)


def _check_batch(batch_size) -> int:
    return check_int(batch_size, "batch_size", lo=1, hi=1 << 31)


def _load_image(path: str, list_file: str, line: int, image_size: int, resize: int) -> np.ndarray:
    """Open with Pillow as RGB, Resize(resize) on the shorter side (bilinear), CenterCrop(image_size),
    to float32 (3, S, S) in [0, 1] -- torchvision's Resize/CenterCrop/ToTensor on a PIL image."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise ImportError('the list loaders open images with Pillow, part of the data extra: pip install "saat[data]"') from None

    if not os.path.isfile(path):
        raise FileNotFoundError(f"{list_file}, line {line}: image {path!r} not found")
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as e:
        raise DataFormatError(f"{list_file}, line {line}: cannot read image {path!r} ({e})") from None
    w, h = im.size
    # torchvision Resize(int): the shorter side becomes `resize`, the longer int(resize * long / short).
    if w <= h:
        nw, nh = resize, int(resize * h / w)
    else:
        nw, nh = int(resize * w / h), resize
    if (nw, nh) != (w, h):
        im = im.resize((nw, nh), Image.BILINEAR)
    # torchvision CenterCrop: top = round((h - S) / 2), left = round((w - S) / 2).
    top = int(round((nh - image_size) / 2.0))
    left = int(round((nw - image_size) / 2.0))
    im = im.crop((left, top, left + image_size, top + image_size))
    arr = np.asarray(im, dtype=np.uint8)
    return arr.transpose(2, 0, 1).astype(np.float32) * np.float32(1.0 / 255.0)


def _iter_entries(entries: _Entries, image_root: str, image_size: int, resize: int,
                  batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    n = len(entries.paths)
    for a in range(0, n, batch_size):
        b = min(n, a + batch_size)
        imgs = np.empty((b - a, 3, image_size, image_size), dtype=np.float32)
        for k in range(a, b):
            imgs[k - a] = _load_image(os.path.join(image_root, entries.paths[k]), entries.origin_file,
                                      k + 1, image_size, resize)
        yield imgs, entries.labels[a:b].copy()


def _load_entries(entries: _Entries, image_root: str, image_size: int, resize: int) -> Split:
    n = len(entries.paths)
    images = np.empty((n, 3, image_size, image_size), dtype=np.float32)
    a = 0
    for imgs, _ in _iter_entries(entries, image_root, image_size, resize, 256):
        images[a:a + imgs.shape[0]] = imgs
        a += imgs.shape[0]
    return Split(images, entries.labels, paths=tuple(entries.paths))


def _pair_files(root: str, split: str) -> tuple[str, str]:
    if not isinstance(split, str) or not split or os.sep in split:
        raise ValueError(f"argument 'split': expected a split name such as 'train', 'test' or "
                         f"'database', got {split!r}")
    return os.path.join(root, f"{split}_img.txt"), os.path.join(root, f"{split}_label.txt")


def iter_list_split(root: str, split: str, image_size: int = 224, resize: int = 256, *,
                    batch_size: int = 64, image_root: str | None = None
                    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream one split of a ProS-GAN/SAAT/CgAT list dataset in batches.

    Reads ``{root}/{split}_img.txt`` (one image path per line, relative to ``image_root``) and
    ``{root}/{split}_label.txt`` (one line per image: C space-separated 0/1 values, as read by
    ``np.loadtxt`` in SAAT utils/data_provider.py and CgAT utils/data_provider.py). Both files are
    parsed and checked before the first batch; images are opened lazily.

    Transform (SAAT data_provider.py:17-22, CgAT test/database transform): Pillow RGB ->
    Resize(``resize``) of the shorter side, bilinear (longer side ``int(resize*long/short)``) ->
    CenterCrop(``image_size``) -> values /255. CgAT's random crop/flip training augmentation is
    not applied (SAAT uses none).

    Parameters
    ----------
    root : str, folder holding the list files.
    split : str, e.g. "train", "test", "database".
    image_size : int, crop side S (224 in the papers).
    resize : int >= image_size, shorter-side size before cropping (256 in the papers).
    batch_size : int >= 1.
    image_root : str or None, folder the image paths are relative to (default ``root``).

    Yields
    ------
    images : numpy.ndarray, float32, shape (B, 3, S, S), in [0, 1], C-contiguous.
    labels : numpy.ndarray, float32, shape (B, C), 0/1.

    Raises
    ------
    FileNotFoundError : a list file or an image is missing (image: list file + line in the message).
    DataFormatError (ValueError) : empty file, blank line, label width differing from line 1,
        a value other than 0/1, different line counts of the two files, an unreadable image;
        the message names the file and the 1-based line.
    """
    (image_size, resize), batch_size = _check_sizes(image_size, resize), _check_batch(batch_size)
    entries = _parse_pair(*_pair_files(_fspath(root, 'root'), split))
    return _iter_entries(entries, _fspath(image_root if image_root is not None else root, 'image_root' if image_root is not None else 'root'),
                         image_size, resize, batch_size)


def load_list_split(root: str, split: str, image_size: int = 224, resize: int = 256, *,
                    image_root: str | None = None) -> Split:
    """Load one split of a ProS-GAN/SAAT/CgAT list dataset into memory.

    Same files, transform and errors as :func:`iter_list_split`. Memory: N x 3 x S x S float32
    (0.6 MB per image at S = 224).

    Returns
    -------
    Split with ``images`` float32 (N, 3, S, S) in [0, 1], ``labels`` float32 (N, C), ``paths``.
    """
    image_size, resize = _check_sizes(image_size, resize)
    entries = _parse_pair(*_pair_files(_fspath(root, 'root'), split))
    return _load_entries(entries, _fspath(image_root if image_root is not None else root, 'image_root' if image_root is not None else 'root'),
                         image_size, resize)


def load_list_dataset(root: str, image_size: int = 224, resize: int = 256, *,
                      image_root: str | None = None, classes: Sequence[str] | None = None
                      ) -> HashingDataset:
    """Load a whole list dataset (FLICKR-25K / NUS-WIDE / MS-COCO as shipped by ProS-GAN).

    ``train`` <- ``train_img.txt``/``train_label.txt``, ``query`` <- ``test_*``, ``database`` <-
    ``database_*``. All three label files are parsed (and their widths compared) before any image
    is opened. ``train_indices`` matches each training path to its database row (-1 if absent).

    Parameters
    ----------
    root, image_size, resize, image_root : as :func:`load_list_split`.
    classes : sequence of C names, default ``("class 0", ..., "class C-1")``.

    Returns
    -------
    HashingDataset (``name`` = basename of ``root``).
    """
    image_size, resize = _check_sizes(image_size, resize)
    root = _fspath(root, 'root')
    img_root = _fspath(image_root if image_root is not None else root, 'image_root' if image_root is not None else 'root')
    parsed = {s: _parse_pair(*_pair_files(root, s)) for s in ("train", "test", "database")}
    widths = {s: e.labels.shape[1] for s, e in parsed.items()}
    if len(set(widths.values())) != 1:
        raise DataFormatError(f"{root}: label widths differ between splits: " +
                              ", ".join(f"{s}_label.txt line 1 has {w}" for s, w in widths.items()))
    c = widths["train"]
    if classes is None:
        classes = tuple(f"class {i}" for i in range(c))
    else:
        try:
            if isinstance(classes, (str, bytes)):
                raise TypeError("a single string")
            classes = tuple(str(x) for x in classes)
        except TypeError as e:
            raise TypeError(f"argument 'classes': expected a sequence of {c} names, got {type(classes).__name__} "
                            f"({e})") from None
        if len(classes) != c:
            raise ValueError(f"argument 'classes': expected {c} names (the label width), got {len(classes)}")
    row = {p: i for i, p in reversed(list(enumerate(parsed["database"].paths)))}
    train_indices = np.array([row.get(p, -1) for p in parsed["train"].paths], dtype=np.int64)
    splits = {s: _load_entries(e, img_root, image_size, resize) for s, e in parsed.items()}
    return HashingDataset(train=splits["train"], query=splits["test"], database=splits["database"],
                          classes=classes, train_indices=train_indices,
                          name=os.path.basename(os.path.normpath(root)),
                          info={"root": root, "image_root": img_root, "image_size": image_size,
                                "resize": resize})


def iter_deephash_list(list_file: str, image_root: str, image_size: int = 224, resize: int = 256, *,
                       batch_size: int = 64) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream a DeepHash-pytorch list file (swuxyj/DeepHash-pytorch utils/tools.py): one image per
    line, ``path l1 ... lC`` separated by whitespace (so paths contain no spaces), paths relative
    to ``image_root``. The file is parsed and checked before the first batch.

    Same transform, yields and errors as :func:`iter_list_split`.
    """
    (image_size, resize), batch_size = _check_sizes(image_size, resize), _check_batch(batch_size)
    entries = _parse_deephash(_fspath(list_file, 'list_file'))
    return _iter_entries(entries, _fspath(image_root, 'image_root'), image_size, resize, batch_size)


def load_deephash_list(list_file: str, image_root: str, image_size: int = 224, resize: int = 256) -> Split:
    """Load a DeepHash-pytorch list file (``path l1 ... lC`` per line) into a :class:`Split`.

    Returns
    -------
    Split with ``images`` float32 (N, 3, S, S) in [0, 1], ``labels`` float32 (N, C), ``paths``.
    Errors as :func:`iter_list_split`.
    """
    image_size, resize = _check_sizes(image_size, resize)
    entries = _parse_deephash(_fspath(list_file, 'list_file'))
    return _load_entries(entries, _fspath(image_root, 'image_root'), image_size, resize)
