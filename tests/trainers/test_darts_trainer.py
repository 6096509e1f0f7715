"""The DARTS supernet trainer on tiny inputs: upstream's argument formats parse, the
architecture parameters learn, every primitive builds at both strides, and the genotype is
printed in upstream's form (which the example's StdOut filter reads and Python parses back).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from katib.metrics.parsers import parse_lines
from katib.trainers import darts
from tests.nas.conftest import need_torch, requires_torch  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
torch_only = pytest.mark.usefixtures("requires_torch")

SPACE = ["max_pooling_3x3", "separable_convolution_3x3", "skip_connection"]
# Upstream's service output for this space, as its trial template renders it (the literal
# quotes around each value come from the template: --search-space="${...}").
UPSTREAM_ARGS = [
    "--algorithm-settings=\"{'num_epochs': '2', 'w_lr': 0.025, 'w_lr_min': 0.001, 'w_momentum': 0.9, "
    "'w_weight_decay': 0.0003, 'w_grad_clip': 5.0, 'alpha_lr': 0.0003, 'alpha_weight_decay': 0.001, "
    "'batch_size': 128, 'num_workers': 4, 'init_channels': '2', 'print_step': 50, 'num_nodes': '2', "
    "'stem_multiplier': '1'}\"",
    "--search-space=\"['max_pooling_3x3', 'separable_convolution_3x3', 'skip_connection']\"",
    "--num-layers=\"2\"",
]


@pytest.mark.parametrize("text, expected", [
    ("\"{'num_epochs': '1', 'batch_size': null}\"", {"num_epochs": "1", "batch_size": None}),
    ("{\"num_epochs\": \"1\"}", {"num_epochs": "1"}),
    ("'{\"num_epochs\": 1}'", {"num_epochs": 1}),
    ("\"['max_pooling_3x3', 'skip_connection']\"", ["max_pooling_3x3", "skip_connection"]),
    ("[\"max_pooling_3x3\"]", ["max_pooling_3x3"]),
    ("\"3\"", 3),
    ("3", 3),
])
def test_argument_formats_parse(text: str, expected: Any) -> None:
    assert darts.parse_value(text) == expected


def test_settings_take_upstream_texts_and_none() -> None:
    s = darts.Settings.from_mapping({"num_epochs": "3", "w_lr": "0.1", "batch_size": None, "init_channels": 4.0})
    assert (s.num_epochs, s.w_lr, s.batch_size, s.init_channels, s.num_nodes) == (3, 0.1, None, 4, 4)


@pytest.mark.parametrize("raw, message", [
    ({"num_epochs": "1.5"}, "num_epochs must be a whole number"),
    ({"w_lr": "fast"}, "w_lr must be a number"),
    ({"num_nodes": "0"}, "num_nodes must be at least 1"),
    ({"learning_rate": "0.1"}, "unknown setting 'learning_rate'"),
])
def test_bad_settings_exit_naming_the_setting(raw: dict[str, str], message: str) -> None:
    with pytest.raises(SystemExit) as caught:
        darts.Settings.from_mapping(raw)
    assert message in str(caught.value)


@torch_only
@pytest.mark.parametrize("stride", [1, 2])
def test_every_primitive_keeps_channels_and_halves_on_reduction(stride: int) -> None:
    import torch

    from katib.trainers import _darts_ops

    x = torch.randn(2, 4, 7, 7)
    for name in [*SPACE, "avg_pooling_5x5", "convolution_3x3", "dilated_convolution_5x5",
                 "separable_convolution_5x5", "none"]:
        assert _darts_ops.build(name, 4, stride)(x).shape == (2, 4, 4 if stride == 2 else 7, 4 if stride == 2 else 7), name


@torch_only
def test_unknown_or_even_primitive_exits_naming_it() -> None:
    from katib.trainers import _darts_ops

    for name, message in [("conv_3x3", "unknown operation 'conv_3x3'"), ("max_pooling_4x4", "odd filter size")]:
        with pytest.raises(SystemExit) as caught:
            _darts_ops.check_primitive(name)
        assert message in str(caught.value)


def _tiny_data() -> Any:
    from katib.trainers import data

    return data.load("digits", seed=0, limit=96)


@torch_only
def test_search_moves_the_alphas_and_derives_a_genotype_of_the_space(capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    from katib.trainers import _darts_model

    settings = darts.Settings(num_epochs=2, batch_size=32, init_channels=2, num_nodes=2, stem_multiplier=1,
                              alpha_lr=0.01)
    torch.manual_seed(0)  # as search() seeds it: the same initial alphas
    untrained = _darts_model.Supernet(SPACE, num_layers=2, num_nodes=2, init_channels=2, stem_multiplier=1,
                                      in_channels=1, num_classes=10)
    start = [a.detach().clone() for a in untrained.alphas()]
    genotype, accuracy, model = darts.search(settings, SPACE, 2, _tiny_data(), seed=0, device="cpu")
    after = [a.detach() for a in model.alphas()]
    assert len(after) == len(start) == 4  # normal and reduce, two nodes each
    # Same seed, same initial alphas: the search moved every one of them.
    assert all(a.shape == b.shape and not torch.allclose(a, b) for a, b in zip(start, after))
    assert 0.0 <= accuracy <= 1.0
    # Two nodes, each keeping its two strongest incoming edges, none of them "none".
    for cell in (genotype.normal, genotype.reduce):
        assert [len(node) for node in cell] == [2, 2]
        for i, node in enumerate(cell):
            assert all(op in SPACE and 0 <= edge < i + 2 for op, edge in node)
    assert genotype.normal_concat == range(2, 4)
    out = capsys.readouterr().out
    assert out.count("Validation-Accuracy=") == 2 and out.count("Best-Genotype=") == 2


@torch_only
def test_one_layer_has_no_reduction_cell() -> None:
    settings = darts.Settings(num_epochs=1, batch_size=48, init_channels=2, num_nodes=1, stem_multiplier=1)
    genotype, _, _ = darts.search(settings, ["max_pooling_3x3", "skip_connection"], 1, _tiny_data(), device="cpu")
    assert genotype.reduce == [] and len(genotype.normal) == 1


@torch_only
def test_cli_prints_upstreams_genotype_line_that_the_example_filter_reads() -> None:
    done = subprocess.run([sys.executable, "-m", "katib.trainers.darts", *UPSTREAM_ARGS, "--data-limit", "64"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("Best-Genotype=")][-1]
    text = line.split("=", 1)[1]
    assert " " not in text  # upstream strips spaces: one token
    # It is the repr of upstream's namedtuple and parses back as Python.
    call = ast.parse(text, mode="eval").body
    assert isinstance(call, ast.Call) and call.func.id == "Genotype"  # type: ignore[attr-defined]
    fields = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg in ("normal", "reduce")}
    assert set(fields) == {"normal", "reduce"}
    assert all(op in SPACE for cell in fields.values() for node in cell for op, _ in node)
    # The example's StdOut filters pick up both metrics.
    logs = parse_lines(done.stdout.splitlines(), ["Best-Genotype", "Validation-Accuracy"], filters=["([\\w-]+)=(Genotype.*)", "([\\w-]+)=([+-]?\\d+(?:\\.\\d+)?)"])
    values = {log.metric_name: log.value for log in logs}  # the last of each
    assert values["Best-Genotype"] == text
    assert 0.0 <= float(values["Validation-Accuracy"]) <= 1.0


@pytest.mark.parametrize("args, message", [
    (["--search-space=[]"], "--search-space must be a non-empty list"),
    (["--search-space=['max_pooling_3x3']", "--num-layers=0"], "--num-layers must be a whole number above 0"),
    (["--search-space=not a list ["], "cannot read the DARTS arguments"),
])
def test_bad_arguments_exit_with_the_fix(args: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as caught:
        darts.main(args)
    assert message in str(caught.value)


def test_without_torch_the_trainer_names_the_extra(tmp_path: Path) -> None:
    # A torch that cannot be imported, first on the path.
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("raise ImportError('no torch here')\n")
    done = subprocess.run([sys.executable, "-m", "katib.trainers.darts", *UPSTREAM_ARGS], cwd=REPO,
                          capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": f"{tmp_path}:{REPO}", "PATH": "/usr/bin:/bin"})
    assert done.returncode != 0
    assert "pip install 'katib-lite[nas]'" in done.stderr, done.stderr
