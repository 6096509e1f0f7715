"""`katib run examples/nas/enas-cpu.yaml` end to end: the built-in ENAS algorithm suggests,
the package's child trainer trains, and the run and `katib get trials` show architectures."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from katib.cli import main
from katib.display import architecture_text
from katib.store import Store
from tests.backends.localexp import write
from tests.nas.conftest import need_torch

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "nas" / "enas-cpu.yaml"


@pytest.mark.slow
def test_katib_run_finishes_the_enas_example_and_prints_the_best_architecture(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    need_torch()
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["spec"].update(maxTrialCount=4, parallelTrialCount=2)  # the file's 12 take minutes
    monkeypatch.chdir(REPO)
    assert main(["run", str(write(tmp_path, doc)), "-q"]) == 0
    out = capsys.readouterr().out

    trials = Store().list_trials("enas-cpu")
    assert [t.status.state for t in trials] == ["Succeeded"] * 4
    archs = {t.name: architecture_text(t.spec.assignments) for t in trials}
    assert all(archs.values()), {t.name: t.spec.assignments for t in trials}
    values = {t.name: float(t.status.observation.metric("Validation-Accuracy").max)  # type: ignore[union-attr,arg-type]
              for t in trials}
    assert all(0.0 <= v <= 1.0 for v in values.values())
    best = max(values, key=lambda name: values[name])
    best_line = next(line for line in out.splitlines() if line.startswith("Best trial:"))
    assert best_line.startswith(f"Best trial: {best}: Validation-Accuracy=")
    assert best_line.endswith(f"| architecture={archs[best]}")

    assert main(["get", "trials", "enas-cpu"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["TRIAL", "STATUS", "ARCHITECTURE", "Validation-Accuracy"]
    for name, arch in archs.items():
        row = next(line for line in table if line.startswith(name))
        assert f"  {arch}  " in row and "nn_config" not in row
