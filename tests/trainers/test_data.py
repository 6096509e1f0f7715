"""The trainers' data sets: digits without a download, CIFAR-10 from a local copy, a folder of
images, each fitted to the network's input size."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from katib.trainers import data
from tests.nas.conftest import requires_torch  # noqa: F401

pytestmark = pytest.mark.usefixtures("requires_torch")


def test_digits_split_into_train_and_validation() -> None:
    ds = data.load("digits", input_sizes=[8, 8, 1])
    assert ds.shape == (1, 8, 8) and ds.num_classes == 10
    assert len(ds.train_y) + len(ds.valid_y) == 1797 and len(ds.valid_y) == 540
    assert 0.0 <= float(ds.train_x.min()) and float(ds.train_x.max()) <= 1.0
    assert sorted(set(ds.valid_y.tolist())) == list(range(10))  # stratified


def test_images_are_fitted_to_the_input_size() -> None:
    ds = data.load("digits", input_sizes=[16, 12, 3], limit=20)
    assert tuple(ds.train_x.shape) == (20, 3, 16, 12) and tuple(ds.valid_x.shape) == (20, 3, 16, 12)
    assert bool((ds.train_x[:, 0] == ds.train_x[:, 2]).all())  # grey made colour: channels repeat


def test_batches_cover_a_split_once_in_a_seeded_order() -> None:
    import torch

    ds = data.load("digits", limit=50)
    first = [y for _, y in ds.batches("train", 16, generator=torch.Generator().manual_seed(1))]
    again = [y for _, y in ds.batches("train", 16, generator=torch.Generator().manual_seed(1))]
    assert [len(y) for y in first] == [16, 16, 16, 2]
    assert torch.equal(torch.cat(first), torch.cat(again))
    assert sorted(torch.cat(first).tolist()) == sorted(ds.train_y.tolist())


def _cifar_batch(path: Path, n: int, label: int) -> None:
    rows = np.full((n, 3072), 255, dtype=np.uint8)
    rows[:, 1024:] = 0  # red images: the green and blue planes are zero
    with open(path, "wb") as f:
        pickle.dump({b"data": rows, b"labels": [label] * n}, f)


def test_cifar10_reads_a_local_copy_of_the_python_batches(tmp_path: Path) -> None:
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    for i in range(1, 6):
        _cifar_batch(root / f"data_batch_{i}", 2, i)
    _cifar_batch(root / "test_batch", 3, 9)
    ds = data.load(f"cifar10:{tmp_path}", input_sizes=[32, 32, 3])
    assert tuple(ds.train_x.shape) == (10, 3, 32, 32) and ds.train_y.tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert ds.valid_y.tolist() == [9, 9, 9]
    assert float(ds.train_x[:, 0].min()) == 1.0 and float(ds.train_x[:, 1:].max()) == 0.0
    grey = data.load(f"cifar10:{root}", input_sizes=[8, 8, 1])
    assert grey.shape == (1, 8, 8)


def test_cifar10_without_the_batches_says_where_to_point(tmp_path: Path) -> None:
    with pytest.raises(data.DataError, match=r"--data: cifar10:.* has no data_batch_1.*cifar-10-batches-py"):
        data.load(f"cifar10:{tmp_path}")


def _image(path: Path, value: int, size: tuple[int, int] = (6, 6)) -> None:
    from PIL import Image

    Image.new("L", size, color=value).save(path)


def test_a_folder_of_images_is_one_class_per_subdirectory(tmp_path: Path) -> None:
    for cls, value in (("cat", 0), ("dog", 255)):
        (tmp_path / cls).mkdir()
        for i in range(10):
            _image(tmp_path / cls / f"{i}.png", value, (6, 6) if i else (9, 7))  # one of another size
    ds = data.load(f"folder:{tmp_path}", input_sizes=[4, 4, 1])
    assert ds.num_classes == 2 and ds.shape == (1, 4, 4)
    assert sorted(ds.valid_y.tolist()) == [0, 0, 0, 1, 1, 1] and len(ds.train_y) == 14
    dogs = ds.train_x[ds.train_y == 1]
    assert float(dogs.min()) > 0.999 and float(ds.train_x[ds.train_y == 0].max()) < 0.001  # white dogs, black cats


def test_a_folder_with_train_and_val_uses_those_splits(tmp_path: Path) -> None:
    for split, n in (("train", 3), ("val", 1)):
        for cls in ("a", "b"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(n):
                _image(tmp_path / split / cls / f"{i}.jpg", 100)
    ds = data.load(f"folder:{tmp_path}")
    assert (len(ds.train_y), len(ds.valid_y), ds.shape) == (6, 2, (3, 6, 6))


def test_a_folder_without_pillow_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(data.DataError, match=r"Pillow, which is not installed: pip install pillow"):
        data.load(f"folder:{tmp_path}")


@pytest.mark.parametrize("spec", ["mnist", "cifar10", "folder:", "digits:x"])
def test_an_unknown_data_set_lists_the_choices(spec: str) -> None:
    with pytest.raises(data.DataError, match="use digits, cifar10:PATH or folder:PATH"):
        data.load(spec)

