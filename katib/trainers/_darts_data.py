"""Image data sets for the DARTS supernet trainer, as float tensors (N, C, H, W) and labels.

- ``digits`` (default): scikit-learn's bundled 8x8 handwritten digits, no download.
- ``cifar10``: the CIFAR-10 "python version" batches (``data_batch_1`` ... ``data_batch_5``)
  in ``--data-dir`` (the ``cifar-10-batches-py`` folder of the official archive).
- ``folder``: one sub-folder per class of image files in ``--data-dir`` (needs Pillow),
  resized to ``image_size``.

Everything is loaded in memory: these are sets a supernet search on a laptop can hold.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["DATASETS", "ImageSet", "load"]

DATASETS = ("digits", "cifar10", "folder")
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


class ImageSet(NamedTuple):
    images: "torch.Tensor"  # float32, (N, C, H, W), normalised per channel
    labels: "torch.Tensor"  # int64, (N,)
    num_classes: int

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images[:, None, :, :].astype(np.float32) / 16.0, bunch.target.astype(np.int64)


def _cifar10(root: Path) -> tuple[np.ndarray, np.ndarray]:
    files = sorted(root.glob("data_batch_*"))
    if not files:
        raise SystemExit(f"--data-dir {root}: no CIFAR-10 batches (data_batch_1 ...) there; give the "
                         "cifar-10-batches-py folder of https://www.cs.toronto.edu/~kriz/cifar.html")
    images, labels = [], []
    for path in files:
        with path.open("rb") as f:
            batch = pickle.load(f, encoding="bytes")  # the official archive's own format
        images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.extend(batch[b"labels"])
    return np.concatenate(images).astype(np.float32) / 255.0, np.asarray(labels, dtype=np.int64)


def _folder(root: Path, size: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        from PIL import Image
    except ImportError:
        raise SystemExit("--dataset folder reads images with Pillow: pip install pillow") from None
    classes = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if len(classes) < 2:
        raise SystemExit(f"--data-dir {root}: needs one sub-folder of images per class (at least two)")
    images, labels = [], []
    for label, folder in enumerate(classes):
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in _IMAGE_SUFFIXES:
                with Image.open(path) as img:
                    pixels = np.asarray(img.convert("RGB").resize((size, size)), dtype=np.float32) / 255.0
                images.append(pixels.transpose(2, 0, 1))
                labels.append(label)
    if not images:
        raise SystemExit(f"--data-dir {root}: no image files ({', '.join(sorted(_IMAGE_SUFFIXES))}) in its sub-folders")
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def load(name: str = "digits", data_dir: str | None = None, *, image_size: int = 32,
         limit: int | None = None, seed: int = 0) -> ImageSet:
    """The data set ``name``, shuffled with ``seed``, at most ``limit`` examples."""
    import torch

    if name == "digits":
        x, y = _digits()
    elif name in ("cifar10", "folder"):
        if not data_dir:
            raise SystemExit(f"--dataset {name} needs --data-dir")
        x, y = _cifar10(Path(data_dir)) if name == "cifar10" else _folder(Path(data_dir), image_size)
    else:
        raise SystemExit(f"--dataset must be one of {', '.join(DATASETS)}, got {name!r}")
    order = np.random.default_rng(seed).permutation(len(y))[:limit]
    x, y = x[order], y[order]
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    std = x.std(axis=(0, 2, 3), keepdims=True) + 1e-6
    return ImageSet(torch.from_numpy((x - mean) / std), torch.from_numpy(y), int(y.max()) + 1)
