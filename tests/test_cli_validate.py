"""`katib validate` on every example, ours and upstream-shaped: accepted unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from katib.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted(
    p for base in ("examples", "tests/api/upstream_examples") for p in (ROOT / base).rglob("*.yaml")
    if any(d and d.get("kind") == "Experiment" for d in yaml.safe_load_all(p.read_text()))
)


def test_there_are_examples_to_check() -> None:
    assert len(EXPERIMENTS) >= 60  # ours and upstream's shapes: a vacuous pass is no pass


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_katib_validate_accepts_the_example(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err
    defaulted = yaml.safe_load(capsys.readouterr().out)
    assert defaulted["spec"]["parallelTrialCount"] >= 1 and defaulted["spec"]["resumePolicy"]


def test_config_map_template_is_checked_when_given(capsys: pytest.CaptureFixture[str]) -> None:
    exp = ROOT / "tests/api/upstream_examples/trial-template/trial-configmap-source.yaml"
    assert main(["validate", str(exp)]) == 0
    assert "was not checked" in capsys.readouterr().err
    cms = ROOT / "tests/api/upstream_examples/manifests/trial-templates.yaml"
    assert main(["validate", str(exp), "--config-map", str(cms)]) == 0
    captured = capsys.readouterr()
    assert "was not checked" not in captured.err
    # with the template known, the defaulted experiment carries the job kind's conditions
    assert "successCondition" in captured.out


def test_local_only_limits_are_not_validation_errors_but_stop_katib_run(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    pbt = ROOT / "examples/hp-tuning/simple-pbt.yaml"
    assert main(["validate", str(pbt)]) == 0
    assert main(["run", str(pbt), "-q"]) == 2
    assert "--suggestion-address pbt=HOST:PORT" in capsys.readouterr().err
