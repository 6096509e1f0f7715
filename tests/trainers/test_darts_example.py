"""examples/nas/darts-cpu.yaml end to end with `katib run`: the darts algorithm suggests, the
packaged supernet trainer searches, the collector reads the genotype, and the CLI shows it as
the best and in `katib get trials`.

The example itself takes under a minute on 2 CPUs; this runs the same file with its
settings shrunk (one epoch, two channels, 64 images) so the whole path takes seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from katib.cli import main
from katib.store import Store
from tests.nas.conftest import requires_torch  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples/nas/darts-cpu.yaml"
TINY = {"num_epochs": "1", "batch_size": "32", "init_channels": "2", "num_nodes": "2", "stem_multiplier": "1"}


def _tiny_copy(tmp_path: Path) -> Path:
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    spec = doc["spec"]
    spec["algorithm"]["algorithmSettings"] = [{"name": k, "value": v} for k, v in TINY.items()]
    (container,) = spec["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"]
    container["command"].append("--data-limit=64")
    path = tmp_path / "darts-cpu.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.usefixtures("requires_torch")
def test_katib_run_darts_example_prints_the_genotype_as_best(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(_tiny_copy(tmp_path)), "-q"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    (trial,) = Store().list_trials("darts-cpu")
    assert trial.status.state == "Succeeded", trial.status.conditions
    values = {m.name: m.latest or "" for m in trial.status.observation.metrics}  # type: ignore[union-attr]
    genotype = values["Best-Genotype"]
    assert genotype.startswith("Genotype(normal=[[(") and genotype.endswith("reduce_concat=range(2,4))")
    assert 0.0 <= float(values["Validation-Accuracy"]) <= 1.0
    # The best trial's line shows the genotype, not "unavailable" (it is a string metric).
    (best,) = [line for line in out.splitlines() if line.startswith("Best trial:")]
    assert f"Best-Genotype={genotype}" in best, out

    assert main(["get", "trials", "darts-cpu"]) == 0
    table = capsys.readouterr().out
    assert "Best-Genotype" in table.splitlines()[0]
    # The table shows the genotype's cells, short: every edge of the stored genotype is there.
    from katib.display import genotype_text

    assert genotype_text(genotype) in table and "unavailable" not in table, table

    assert main(["get", "experiments"]) == 0
    assert f"Best-Genotype={genotype}"[:40] in capsys.readouterr().out
