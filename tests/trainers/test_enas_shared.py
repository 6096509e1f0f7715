"""ENAS weight sharing: a child starts from what earlier children of the experiment learned for
the same operation at the same layer, never from a different operation's or shape's tensors; the
store survives children writing at once; ``--shared-weights none`` and the local default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from katib.metrics.parsers import parse_lines
from katib.trainers import _shared_weights, enas
from tests.nas.conftest import requires_torch  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("requires_torch")

EMBEDDING: dict[str, Any] = {
    "0": {"opt_id": 0, "opt_type": "convolution", "opt_params": {"filter_size": "3", "num_filter": "8", "stride": "1"}},
    "1": {"opt_id": 1, "opt_type": "separable_convolution",
          "opt_params": {"filter_size": "3", "num_filter": "8", "stride": "1"}},
    "2": {"opt_id": 2, "opt_type": "reduction", "opt_params": {"reduction_type": "max_pooling", "pool_size": 2}},
}
CONFIG = {"num_layers": 3, "input_sizes": [8, 8, 1], "output_sizes": [10], "embedding": EMBEDDING}
ARCH = [[0], [2, 0], [0, 0, 1]]  # conv, pool, conv reading the pool and layer 1


def _stored(directory: Path) -> dict[str, Any]:
    return _shared_weights.read(directory)


def test_a_second_child_starts_from_the_first_childs_trained_weights(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    store = tmp_path / "store"
    enas.train(ARCH, CONFIG, seed=1, shared_weights=store)
    saved = _stored(store)
    net = enas.build_network(ARCH, CONFIG)
    keys = net.shared_keys()
    assert set(keys.values()) == set(saved)  # everything it used, batch-norm statistics too
    assert any(k.endswith("running_mean") for k in saved) and any(k.startswith("classifier.") for k in saved)
    assert "shared-weights: loaded 0 of" in capsys.readouterr().out

    loaded = _shared_weights.load_into(net, keys, store)
    assert sorted(loaded) == sorted(keys)
    state = net.state_dict()
    assert all(torch.equal(state[name], saved[keys[name]]) for name in keys)

    # What a user sees: trained from the shared weights, the first epoch's loss is far lower
    # than the same child's (same seed) from scratch.
    fresh: list[dict[str, float]] = []
    shared: list[dict[str, float]] = []
    enas.train(ARCH, CONFIG, seed=2, report=lambda e, m: fresh.append(m))
    enas.train(ARCH, CONFIG, seed=2, report=lambda e, m: shared.append(m), shared_weights=store)
    assert shared[0]["Training-Loss"] < fresh[0]["Training-Loss"]
    out = capsys.readouterr().out
    assert f"shared-weights: loaded {len(keys)} of {len(keys)} tensors from {store}" in out
    assert parse_lines(out.splitlines(), ["shared-weights", "loaded", "tensors"]) == []  # not a metric


def test_a_different_operation_at_a_layer_does_not_load_that_layer(tmp_path: Path) -> None:
    enas.train(ARCH, CONFIG, seed=1, shared_weights=tmp_path)
    other = [[1], [2, 0], [0, 0, 1]]  # separable convolution at layer 1, same shapes after it
    net = enas.build_network(other, CONFIG)
    keys = net.shared_keys()
    loaded = _shared_weights.load_into(net, keys, tmp_path)
    assert loaded and not any(name.startswith("ops.0.") for name in loaded)
    assert all(name in loaded for name in keys if not name.startswith("ops.0."))  # layers 2, 3, classifier


def test_tensors_of_another_shape_are_skipped(tmp_path: Path) -> None:
    import torch

    enas.train(ARCH, CONFIG, seed=1, shared_weights=tmp_path)
    wider = json.loads(json.dumps(CONFIG))
    wider["embedding"]["0"]["opt_params"]["num_filter"] = "12"  # same keys, other shapes
    net = enas.build_network(ARCH, wider)
    keys = net.shared_keys()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    loaded = _shared_weights.load_into(net, keys, tmp_path)
    assert loaded == []
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    # and the wider child trains and writes its own tensors without an error
    enas.train(ARCH, wider, seed=1, shared_weights=tmp_path)
    assert _stored(tmp_path)["layer1.op0.in1.2.weight"].shape == (12, 1, 3, 3)


_WRITER = """
import sys, torch
from katib.trainers import _shared_weights
store, name = sys.argv[1], sys.argv[2]
for i in range(40):
    _shared_weights.write(store, {f"{name}.{i}": torch.full((64,), float(i)), "common": torch.zeros(3)})
"""


def test_children_writing_at_once_leave_a_loadable_store_with_every_tensor(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), name], env=env, cwd=REPO)
             for name in ("a", "b")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    stored = _stored(tmp_path)
    assert set(stored) == {"common"} | {f"{n}.{i}" for n in "ab" for i in range(40)}  # no update lost
    assert float(stored["b.39"][0]) == 39.0
    assert not list(tmp_path.glob("*.tmp"))


def _cli(*args: str, trial_dir: Path | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != _shared_weights.ENV_TRIAL_DIR}
    if trial_dir is not None:
        env[_shared_weights.ENV_TRIAL_DIR] = str(trial_dir)
    return subprocess.run([sys.executable, "-m", "katib.trainers.enas", f"--architecture={json.dumps(ARCH)}",
                           f"--nn_config={json.dumps(CONFIG)}", "--data-limit=200", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_locally_the_store_is_the_experiments_directory_and_none_turns_it_off(tmp_path: Path) -> None:
    experiment = tmp_path / "runs" / "default" / "exp"
    first = _cli(trial_dir=experiment / "trial-1")
    assert first.returncode == 0, first.stderr
    store = experiment / "enas-shared-weights"
    assert (store / _shared_weights.STORE_FILE).is_file()
    second = _cli(trial_dir=experiment / "trial-2")
    assert second.returncode == 0, second.stderr
    total = len(_stored(store))
    assert f"shared-weights: loaded {total} of {total} tensors from {store}" in second.stdout

    before = (store / _shared_weights.STORE_FILE).stat().st_mtime_ns
    off = _cli("--shared-weights", "none", trial_dir=experiment / "trial-3")
    assert off.returncode == 0, off.stderr
    assert "shared-weights" not in off.stdout
    assert (store / _shared_weights.STORE_FILE).stat().st_mtime_ns == before


def test_without_a_trial_directory_sharing_is_off_unless_asked(tmp_path: Path) -> None:
    assert _shared_weights.resolve_store(None, {}) is None
    assert _shared_weights.resolve_store("none", {"KATIB_TRIAL_DIR": str(tmp_path / "t")}) is None
    assert _shared_weights.resolve_store(None, {"KATIB_TRIAL_DIR": str(tmp_path / "t")}) == \
        tmp_path / "enas-shared-weights"
    done = _cli(f"--shared-weights={tmp_path / 'pvc'}", trial_dir=None)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "pvc" / _shared_weights.STORE_FILE).is_file()
