"""`katib validate` on every example, ours and upstream-shaped: accepted unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


# -- wrong types and nulls: a field error and exit 2, never a traceback ---------------------
def _mutated(tmp_path: Path, example: str, change: Any) -> Path:
    doc = yaml.safe_load((ROOT / "tests/api/upstream_examples" / example).read_text())
    change(doc["spec"])
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


RANDOM, ENAS = "hp-tuning/random.yaml", "nas/enas-cpu.yaml"
_FILTER = "spec.metricsCollectorSpec.source.filter.metricsFormat"


@pytest.mark.parametrize("example, change, path, message", [
    (RANDOM, lambda s: s["trialTemplate"]["trialParameters"].append(None),
     "spec.trialTemplate.trialParameters[3]", "must be an object, got null"),
    (RANDOM, lambda s: s["trialTemplate"]["trialSpec"].update(kind={"a": 1}),
     "spec.trialTemplate.trialSpec.kind", "must be a string, got object"),
    (RANDOM, lambda s: s["parameters"].append(None), "spec.parameters[3]", "must be an object, got null"),
    (ENAS, lambda s: s["nasConfig"]["operations"][0]["parameters"].__setitem__(0, None),
     "spec.nasConfig.operations[0].parameters[0]", "must be an object, got null"),
    (RANDOM, lambda s: s.update(metricsCollectorSpec={"source": {"filter": {"metricsFormat": [None]}}}),
     f"{_FILTER}[0]", "must be a string, got null"),
    (RANDOM, lambda s: s.update(metricsCollectorSpec={"source": {"filter": {"metricsFormat": 5}}}),
     _FILTER, "must be a list, got integer"),
    (RANDOM, lambda s: s.update(parallelTrialCount=2**40), "spec.parallelTrialCount",
     "must be an integer from -2147483648 to 2147483647"),
], ids=["trialParameters-null", "trialSpec.kind-object", "parameters-null", "nas-parameter-null",
        "metricsFormat-null", "metricsFormat-int", "count-past-int32"])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_wrong_types_are_field_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str,
                                      example: str, change: Any, path: str, message: str) -> None:
    file = _mutated(tmp_path, example, change)
    assert main([command, str(file), *(["--db", f"sqlite:///{tmp_path}/k.db"] if command == "run" else [])]) == 2
    err = capsys.readouterr().err
    assert f"{path}: {message}" in err and "Traceback" not in err
