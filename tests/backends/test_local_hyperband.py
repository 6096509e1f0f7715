"""Hyperband through `katib run`: every bracket and every rung, then SuggestionEndReached."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from katib.cli import main
from katib.store import Store
from suggestion.hyperband import LABEL_FILLER
from tests.backends.localexp import experiment, write

# The score improves with the resource (epochs) and is best near x = 0.3.
TRIAL = """
import sys
x, epochs = float(sys.argv[1]), int(float(sys.argv[2]))
print(f"accuracy={1 - (x - 0.3) ** 2 - 0.5 / epochs:.6f}")
"""


def test_hyperband_eta3_rl9_runs_every_bracket(tmp_path: Path) -> None:
    exp = experiment(
        "hyperband", algorithm="hyperband", max_trials=None, parallel=9,
        settings={"eta": "3", "r_l": "9", "resource_name": "epochs"},
        parameters=[{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}},
                    {"name": "epochs", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "9"}}],
        trial_parameters=[{"name": "x", "reference": "x"}, {"name": "epochs", "reference": "epochs"}],
        command=["python3", "-c", TRIAL, "${trialParameters.x}", "${trialParameters.epochs}"],
        objective={"type": "maximize", "objectiveMetricName": "accuracy"},
    )
    assert main(["run", str(write(tmp_path, exp)), "-q"]) == 0
    store = Store()
    everything = store.list_trials("hyperband")
    assert all(t.status.state == "Succeeded" for t in everything)
    # Where the last rungs leave slots free, the exact-count contract fills them with
    # 1-epoch filler trials outside every bracket. Only a reply that starts a later rung
    # ((2, 1), (1, 1) or (2, 2)) can hold fillers, at most 8 each.
    fillers = [t for t in everything if t.metadata.labels.get(LABEL_FILLER)]
    assert all(t.spec.assignments["epochs"] == "1" for t in fillers) and len(fillers) <= 3 * 8
    trials = [t for t in everything if not t.metadata.labels.get(LABEL_FILLER)]
    # s_max = 2: bracket 2 runs 9 configs at 1 epoch, 3 at 3, 1 at 9; bracket 1 runs 5 at 3
    # and 2 at 9; bracket 0 runs 3 at 9.
    assert Counter(int(t.spec.assignments["epochs"]) for t in trials) == Counter({1: 9, 3: 3 + 5, 9: 1 + 2 + 3})
    assert len(trials) == 23
    # promotions continue a configuration: every x run at 9 epochs in bracket 2 ran at 3 before
    by_x: dict[str, list[int]] = {}
    for t in trials:
        by_x.setdefault(t.spec.assignments["x"], []).append(int(t.spec.assignments["epochs"]))
    assert any(sorted(v) == [1, 3, 9] for v in by_x.values())
    status = store.get_experiment("hyperband").status
    reason = [c.reason for c in status.conditions if c.type == "Succeeded" and c.status == "True"]
    assert reason == ["ExperimentSuggestionEndReached"]
