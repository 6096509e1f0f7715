"""Image data sets for the NAS trainers, held in memory as tensors.

The whole API::

    from katib.trainers import data

    ds = data.load("digits", input_sizes=[8, 8, 1], seed=0)   # -> ImageData
    ds.train_x, ds.train_y        # float32 N x C x H x W (pixels in [0, 1]), int64 N
    ds.valid_x, ds.valid_y        # the validation split, same shapes
    ds.num_classes, ds.shape      # 10, (C, H, W)
    for x, y in ds.batches("train", 64, generator=torch.Generator().manual_seed(0)):
        ...                       # shuffled when a generator is given; ``device=`` moves them

    parser = argparse.ArgumentParser()
    data.add_arguments(parser)    # --data SPEC and --data-limit N
    ds = data.from_args(args, input_sizes=[32, 32, 3], seed=0)

``SPEC`` (the ``--data`` option) is one of:

``digits`` (default)
    scikit-learn's bundled 8x8 grey digits, 10 classes, 1797 images: no download.
    70 % train, 30 % validation, stratified, split by ``seed``.
``cifar10:PATH``
    CIFAR-10 from a local copy of the python version: ``PATH`` is the
    ``cifar-10-batches-py`` directory (or the one that holds it); ``data_batch_1..5`` train,
    ``test_batch`` validates. Nothing is downloaded.
``folder:PATH``
    one sub-directory of images per class (the ImageFolder layout), read with Pillow
    (``pip install pillow``). If ``PATH`` has ``train/`` and ``val/`` (or ``valid/``,
    ``validation/``, ``test/``) sub-directories, those are the splits; otherwise 30 % of each
    class validates.

``input_sizes`` is the network's input as upstream's ``nn_config`` gives it,
``[height, width, channels]``: images are resized (bilinear) and turned grey (channel mean)
or coloured (grey repeated) to fit. ``limit`` keeps the first ``limit`` images of each split
(after shuffling), to fit a run to a CPU. Errors are :class:`DataError` and name ``--data``.
"""

from __future__ import annotations

import argparse
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from katib.trainers import require_torch

if TYPE_CHECKING:
    import torch

__all__ = ["DataError", "ImageData", "load", "add_arguments", "from_args", "SPEC_HELP"]

SPEC_HELP = ("the image data set: digits (scikit-learn's, no download; the default), "
             "cifar10:PATH (a local cifar-10-batches-py directory) or folder:PATH "
             "(one sub-directory of images per class)")
VALID_FRACTION = 0.3
_SPLIT_NAMES = {"train": ("train", "training"), "valid": ("val", "valid", "validation", "test")}
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp"}


class DataError(ValueError):
    """The data set a trainer was pointed at cannot be read; the message says how to fix it."""


@dataclass(frozen=True)
class ImageData:
    """Train and validation images, ``float32`` N x C x H x W in [0, 1], and ``int64`` labels."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    valid_x: torch.Tensor
    valid_y: torch.Tensor
    num_classes: int
    name: str = "digits"

    @property
    def shape(self) -> tuple[int, int, int]:
        """One image's (channels, height, width)."""
        c, h, w = self.train_x.shape[1:]
        return int(c), int(h), int(w)

    def batches(self, split: str, batch_size: int, *, generator: torch.Generator | None = None,
                device: torch.device | str | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Mini-batches of ``split`` (``"train"`` or ``"valid"``), in a random order drawn from
        ``generator`` when one is given (so a seed fixes it), in order otherwise."""
        torch = require_torch()
        if split not in ("train", "valid"):
            raise ValueError(f"split must be 'train' or 'valid', got {split!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        x, y = (self.train_x, self.train_y) if split == "train" else (self.valid_x, self.valid_y)
        order = torch.randperm(len(y), generator=generator) if generator is not None else torch.arange(len(y))
        for start in range(0, len(y), batch_size):
            idx = order[start:start + batch_size]
            xb, yb = x[idx], y[idx]
            if device is not None:
                xb, yb = xb.to(device), yb.to(device)
            yield xb, yb


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--data`` and ``--data-limit`` options every trainer takes."""
    parser.add_argument("--data", default="digits", metavar="SPEC", help=SPEC_HELP)
    parser.add_argument("--data-limit", type=int, default=None, metavar="N",
                        help="use at most N images of each split (a quick run on a big data set)")


def from_args(args: argparse.Namespace, input_sizes: Sequence[int] | None = None, seed: int = 0) -> ImageData:
    return load(args.data, input_sizes=input_sizes, seed=seed, limit=args.data_limit)


def load(spec: str = "digits", *, input_sizes: Sequence[int] | None = None, seed: int = 0,
         limit: int | None = None) -> ImageData:
    """The data set ``spec`` names (see the module docstring), fitted to ``input_sizes``."""
    torch = require_torch()
    kind, _, path = spec.partition(":")
    if kind == "digits" and not path:
        xtr, ytr, xva, yva, classes = _digits(seed)
    elif kind == "cifar10" and path:
        xtr, ytr, xva, yva, classes = _cifar10(Path(path).expanduser())
    elif kind == "folder" and path:
        xtr, ytr, xva, yva, classes = _folder(Path(path).expanduser(), seed)
    else:
        raise DataError(f"--data: {spec!r} is not a data set; use digits, cifar10:PATH or folder:PATH")
    if limit is not None:
        if limit < 1:
            raise DataError(f"--data-limit: must be at least 1, got {limit}")
        rng = np.random.default_rng(seed)
        keep_tr, keep_va = rng.permutation(len(ytr))[:limit], rng.permutation(len(yva))[:limit]
        xtr, ytr, xva, yva = xtr[keep_tr], ytr[keep_tr], xva[keep_va], yva[keep_va]
    return ImageData(_fit(torch.from_numpy(xtr), input_sizes), torch.from_numpy(ytr).long(),
                     _fit(torch.from_numpy(xva), input_sizes), torch.from_numpy(yva).long(),
                     classes, spec)


# -- sources: each returns float32 N x C x H x W in [0, 1] and int labels ----------------------
_Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]


def _digits(seed: int) -> _Arrays:
    from sklearn.datasets import load_digits  # type: ignore[import-untyped]
    from sklearn.model_selection import train_test_split  # type: ignore[import-untyped]

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None, :, :]
    y = bunch.target.astype(np.int64)
    xtr, xva, ytr, yva = train_test_split(x, y, test_size=VALID_FRACTION, random_state=seed, stratify=y)
    return xtr, ytr, xva, yva, 10


def _cifar10(path: Path) -> _Arrays:
    if (path / "cifar-10-batches-py").is_dir():
        path = path / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    missing = [n for n in names if not (path / n).is_file()]
    if missing:
        raise DataError(f"--data: cifar10:{path} has no {', '.join(missing)}; point it at the "
                        "cifar-10-batches-py directory of CIFAR-10's python version (nothing is downloaded)")

    def batch(name: str) -> tuple[np.ndarray, np.ndarray]:
        try:
            with open(path / name, "rb") as f:
                d: dict[bytes, Any] = pickle.load(f, encoding="bytes")
            x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            return x.astype(np.float32) / 255.0, np.asarray(d[b"labels"], dtype=np.int64)
        except (OSError, KeyError, ValueError, pickle.UnpicklingError, EOFError) as exc:
            raise DataError(f"--data: {path / name} is not a CIFAR-10 python batch ({exc}); "
                            "download the python version again") from exc

    train = [batch(n) for n in names[:-1]]
    xva, yva = batch(names[-1])
    return np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]), xva, yva, 10


def _folder(path: Path, seed: int) -> _Arrays:
    try:
        from PIL import Image
    except ImportError as exc:
        raise DataError("--data: folder:PATH reads images with Pillow, which is not installed: "
                        "pip install pillow") from exc
    if not path.is_dir():
        raise DataError(f"--data: folder:{path} is not a directory; give one with a sub-directory per class")
    subdirs = {p.name.lower(): p for p in path.iterdir() if p.is_dir()}
    train_dir = next((subdirs[n] for n in _SPLIT_NAMES["train"] if n in subdirs), None)
    valid_dir = next((subdirs[n] for n in _SPLIT_NAMES["valid"] if n in subdirs), None)
    split = train_dir is not None and valid_dir is not None
    classes = sorted(p.name for p in (train_dir if split else path).iterdir() if p.is_dir())  # type: ignore[union-attr]
    if len(classes) < 2:
        raise DataError(f"--data: folder:{path} needs one sub-directory of images per class, "
                        f"at least 2; found {len(classes)}")

    def read(root: Path) -> tuple[list[np.ndarray], list[int]]:
        images: list[np.ndarray] = []
        labels: list[int] = []
        for label, cls in enumerate(classes):
            files = sorted(f for f in (root / cls).glob("*") if f.suffix.lower() in _IMAGE_SUFFIXES) \
                if (root / cls).is_dir() else []
            for f in files:
                try:
                    with Image.open(f) as img:
                        images.append(np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0)
                except OSError as exc:
                    raise DataError(f"--data: cannot read image {f}: {exc}; remove or replace it") from exc
                labels.append(label)
        if not images:
            raise DataError(f"--data: no images ({', '.join(sorted(_IMAGE_SUFFIXES))}) under {root}")
        return images, labels

    def stack(images: list[np.ndarray]) -> np.ndarray:
        # Images of different sizes are brought to the first one's size before stacking.
        h, w = images[0].shape[:2]
        out = []
        for im in images:
            if im.shape[:2] != (h, w):
                pil = Image.fromarray((im * 255).astype(np.uint8)).resize((w, h), Image.Resampling.BILINEAR)
                im = np.asarray(pil, dtype=np.float32) / 255.0
            out.append(im.transpose(2, 0, 1))
        return np.stack(out)

    if split:
        tr, ytr = read(train_dir)  # type: ignore[arg-type]
        va, yva = read(valid_dir)  # type: ignore[arg-type]
        both = stack(tr + va)
        return both[:len(tr)], np.array(ytr), both[len(tr):], np.array(yva), len(classes)
    images, labels = read(path)
    x, y = stack(images), np.array(labels)
    rng = np.random.default_rng(seed)
    valid = np.zeros(len(y), dtype=bool)
    for c in range(len(classes)):  # stratified: each class gives its share to validation
        idx = rng.permutation(np.flatnonzero(y == c))
        valid[idx[:int(round(len(idx) * VALID_FRACTION))]] = True
    if valid.all() or not valid.any():
        raise DataError(f"--data: folder:{path} has too few images to split into train and validation; "
                        "add images or give train/ and val/ sub-directories")
    return x[~valid], y[~valid], x[valid], y[valid], len(classes)


def _fit(x: torch.Tensor, input_sizes: Sequence[int] | None) -> torch.Tensor:
    """``x`` resized to ``input_sizes`` ([height, width, channels], as nn_config has it)."""
    if not input_sizes:
        return x.contiguous()
    torch = require_torch()
    sizes = [int(s) for s in input_sizes]
    if len(sizes) != 3 or min(sizes) < 1:
        raise DataError(f"input_sizes must be [height, width, channels] with positive sizes, got {list(input_sizes)}; "
                        "set spec.nasConfig.graphConfig.inputSizes so")
    h, w, c = sizes
    if c not in (1, 3):
        raise DataError(f"input_sizes: images have 1 (grey) or 3 (colour) channels, not {c}; "
                        "set the last of spec.nasConfig.graphConfig.inputSizes to 1 or 3")
    if x.shape[1] != c:
        x = x.mean(dim=1, keepdim=True) if c == 1 else x.expand(-1, c, -1, -1)
    if tuple(x.shape[2:]) != (h, w):
        shrink = h < x.shape[2] or w < x.shape[3]
        x = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False,
                                            antialias=shrink).clamp_(0.0, 1.0)
    return x.contiguous()
