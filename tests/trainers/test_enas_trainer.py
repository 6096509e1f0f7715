"""The ENAS child trainer: networks built from upstream's architecture and nn_config train,
every operation builds, upstream's quoting parses, the CLI prints what the collector reads,
and a missing PyTorch or a bad argument says what to do."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from katib.metrics.parsers import parse_lines
from katib.trainers import enas
from tests.nas.conftest import requires_torch  # noqa: F401
from tests.test_layering import _imports, _modules, _rel

REPO = Path(__file__).resolve().parents[2]
torch_only = pytest.mark.usefixtures("requires_torch")

EMBEDDING: dict[str, Any] = {
    "0": {"opt_id": 0, "opt_type": "convolution", "opt_params": {"filter_size": "3", "num_filter": "16", "stride": "1"}},
    "1": {"opt_id": 1, "opt_type": "separable_convolution",
          "opt_params": {"filter_size": "5", "num_filter": "16", "stride": "2", "depth_multiplier": "2"}},
    "2": {"opt_id": 2, "opt_type": "depthwise_convolution",
          "opt_params": {"filter_size": "3", "stride": "1", "depth_multiplier": "2"}},
    "3": {"opt_id": 3, "opt_type": "reduction", "opt_params": {"reduction_type": "avg_pooling", "pool_size": 2}},
}
# Four layers; layer 3 also reads the input, layer 4 reads layers 1 and 2 (different sizes:
# layer 2 has stride 2, so the concatenation pads).
ARCH = [[0], [1, 0], [2, 1, 0], [0, 0, 1, 1]]
CONFIG = {"num_layers": 4, "input_sizes": [8, 8, 1], "output_sizes": [10], "embedding": EMBEDDING}


def upstream_quoted(value: Any) -> str:
    """As upstream's ENAS service sends a value: JSON with every double quote made single."""
    return json.dumps(value).replace('"', "'")


@torch_only
def test_a_multi_layer_network_with_skips_classifies_digits() -> None:
    import torch

    net = enas.build_network(ARCH, CONFIG)
    assert net(torch.zeros(5, 1, 8, 8)).shape == (5, 10)
    history: list[dict[str, float]] = []
    accuracy = enas.train(ARCH, CONFIG, num_epochs=2, report=lambda epoch, m: history.append(m))
    assert len(history) == 2 and history[-1]["Validation-Accuracy"] == accuracy
    assert history[1]["Training-Loss"] < history[0]["Training-Loss"]
    assert accuracy > 0.5  # ten classes: chance is 0.1


@torch_only
def test_the_same_seed_trains_the_same_network() -> None:
    arch, config = [[0], [3, 1]], dict(CONFIG, num_layers=2)
    first = enas.train(arch, config, seed=3)
    assert enas.train(arch, config, seed=3) == first


@torch_only
@pytest.mark.parametrize("op_id, shape", [
    ("0", (16, 9, 9)),  # convolution 3x3, 16 filters
    ("1", (16, 5, 5)),  # separable 5x5, stride 2 ("same" padding: ceil(9 / 2))
    ("2", (6, 9, 9)),   # depthwise, multiplier 2 on 3 channels
    ("3", (3, 4, 4)),   # average pooling of 2
], ids=["convolution", "separable_convolution", "depthwise_convolution", "reduction"])
def test_every_operation_type_builds(op_id: str, shape: tuple[int, int, int]) -> None:
    import torch

    from katib.trainers._enas_ops import ChildNetwork

    specs, _ = enas.layer_specs([[int(op_id)]], {"num_layers": 1, "embedding": EMBEDDING})
    net = ChildNetwork(specs, (3, 9, 9), 4)
    x = torch.rand(2, 3, 9, 9)
    assert net.ops[0](x).shape == (2, *shape)
    assert net(x).shape == (2, 4)


@torch_only
def test_a_reduction_on_a_single_pixel_passes_it_through() -> None:
    import torch

    pools = {"0": {"opt_type": "reduction", "opt_params": {"reduction_type": "max_pooling", "pool_size": 3}}}
    net = enas.build_network([[0], [0, 0], [0, 0, 0]], {"num_layers": 3, "input_sizes": [4, 4, 1],
                                                       "output_sizes": [2], "embedding": pools})
    assert net(torch.rand(2, 1, 4, 4)).shape == (2, 2)  # 4 -> pool 3 -> 1 -> 1 -> 1


@pytest.mark.parametrize("wrap", [
    lambda v: json.dumps(v),                     # JSON
    upstream_quoted,                             # upstream's service: single quotes
    lambda v: f'"{upstream_quoted(v)}"',         # inside the template's literal quotes
    lambda v: f"'{json.dumps(v)}'",
    lambda v: repr(v),                           # a Python literal
], ids=["json", "single-quoted", "template-quotes", "single-wrapped", "python"])
def test_upstream_argument_quoting_parses(wrap: Any) -> None:
    specs, config = enas.layer_specs(wrap(ARCH), wrap(CONFIG))
    assert config["input_sizes"] == [8, 8, 1]
    assert [s.op_type for s in specs] == ["convolution", "separable_convolution", "depthwise_convolution",
                                          "convolution"]
    assert [s.skips for s in specs] == [(), (), (0,), (1, 2)]  # 0 is the input, i is layer i
    assert specs[1].params == {"filter_size": 5, "num_filter": 16, "stride": 2, "depth_multiplier": 2}


def _cli(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "katib.trainers.enas", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120, **kwargs)


@torch_only
def test_the_command_prints_the_metric_the_stdout_collector_reads() -> None:
    done = _cli("--num_epochs=2", f'--architecture="{upstream_quoted([[0], [3, 1]])}"',
                f'--nn_config="{upstream_quoted(dict(CONFIG, num_layers=2))}"')
    assert done.returncode == 0, done.stderr
    logs = parse_lines(done.stdout.splitlines(), ["Validation-Accuracy"])
    assert [log.metric_name for log in logs] == ["Validation-Accuracy"] * 2
    assert all(0.0 <= float(log.value) <= 1.0 for log in logs)
    assert "layer 2: reduction (pool_size 2, reduction_type avg_pooling) + skip from input" in done.stdout


@pytest.mark.parametrize("arch, config, expect", [
    ([[5]], CONFIG | {"num_layers": 1}, "--nn_config: embedding has no operation 5 (used by --architecture[0])"),
    ([[0], [1]], CONFIG | {"num_layers": 2}, "--architecture[1]: layer 2 takes 1 skip flag(s)"),
    ([[0]], CONFIG, "--architecture: has 1 layers but --nn_config num_layers is 4"),
    ([[0]], CONFIG | {"num_layers": 1, "embedding": {"0": {"opt_type": "dense"}}},
     "embedding['0'].opt_type is 'dense'; use one of convolution, separable_convolution"),
    ([[0]], CONFIG | {"num_layers": 1, "embedding": {"0": {"opt_type": "convolution",
                                                           "opt_params": {"stride": "0"}}}},
     "embedding['0'].opt_params.stride is '0'; it must be a whole number of at least 1"),
])
def test_a_bad_argument_names_what_to_fix(arch: Any, config: Any, expect: str) -> None:
    with pytest.raises(enas.ArgumentError) as err:
        enas.layer_specs(upstream_quoted(arch), upstream_quoted(config))
    assert expect in str(err.value)


@torch_only
def test_the_command_rejects_a_bad_argument_with_status_2() -> None:
    done = _cli("--architecture=[[7]]", f"--nn_config={json.dumps(CONFIG | {'num_layers': 1})}")
    assert done.returncode == 2
    assert "error: --nn_config: embedding has no operation 7" in done.stderr


def test_without_torch_the_trainer_names_the_extra(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    assert enas.main(["--architecture=[[0]]", f"--nn_config={json.dumps(CONFIG | {'num_layers': 1})}"]) == 2
    assert "pip install 'katib-lite[nas]'" in capsys.readouterr().err


def test_katib_and_its_command_work_without_torch() -> None:
    code = ("import sys; sys.modules['torch'] = None\n"
            "import katib, katib.cli, katib.trainers.enas, katib.trainers.data\n"
            "sys.argv = ['katib', '--help']\n"
            "katib.cli.main()")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "usage: katib" in done.stdout


def test_trainers_and_algorithms_do_not_import_each_other() -> None:
    trainers = [p for p in _modules() if _rel(p).startswith("katib/trainers/")]
    assert trainers, "the check must see katib/trainers"
    for path in trainers:
        assert not any(i == "suggestion" or i.startswith("suggestion.") for i in _imports(path)), _rel(path)
    for path in _modules():
        if _rel(path).startswith("suggestion/"):
            assert not any(i.startswith("katib.trainers") for i in _imports(path)), _rel(path)
