"""Median stopping through `katib run`: known curves, known verdicts."""

from __future__ import annotations

from pathlib import Path

from katib.cli import main
from katib.store import Store
from tests.backends.localexp import experiment, write

# Accuracy per step (1..10) of each curve. With grid search and one trial at a time the
# trials run in list order. medianstop: min_trials_required=2, start_step=2.
#   good1, good2: complete (fewer than 2 references before them, then above the median)
#   bad:   step 2 best 0.22 < median(0.58, 0.57) = 0.575 -> stopped at step 2
#   good3: above the median at every step -> completes
#   late:  0.6 flat. Step 2: references good1 .58, good2 .57, bad .22 (stopped trials keep
#          their best), good3 .63 -> median .575, fine. Step 3: .62, .605, .22, .67 -> median
#          .6125 > .6 -> stopped at step 3 (upstream's rule, checked once at start_step, would
#          never stop it).
CURVES = """
import sys, time
curve = sys.argv[1]
for step in range(1, 11):
    acc = {"good1": 0.5 + 0.04 * step, "good2": 0.5 + 0.035 * step, "bad": 0.2 + 0.01 * step,
           "good3": 0.55 + 0.04 * step, "late": 0.6}[curve]
    print(f"accuracy={acc:.4f}", flush=True)
    time.sleep(0.1)
"""


def test_medianstop_stops_exactly_the_hopeless_trials(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    exp = experiment(
        "median", algorithm="grid", max_trials=5, parallel=1,
        parameters=[{"name": "curve", "parameterType": "categorical",
                     "feasibleSpace": {"list": ["good1", "good2", "bad", "good3", "late"]}}],
        trial_parameters=[{"name": "curve", "reference": "curve"}],
        command=["python3", "-c", CURVES, "${trialParameters.curve}"],
        objective={"type": "maximize", "objectiveMetricName": "accuracy"},
        extra_spec={"earlyStopping": {"algorithmName": "medianstop", "algorithmSettings": [
            {"name": "min_trials_required", "value": "2"}, {"name": "start_step", "value": "2"}]}},
    )
    assert main(["run", str(write(tmp_path, exp)), "-q"]) == 0
    out = capsys.readouterr().out
    store = Store()
    by_curve = {t.spec.assignments["curve"]: t for t in store.list_trials("median")}
    assert {c: t.status.state for c, t in by_curve.items()} == {
        "good1": "Succeeded", "good2": "Succeeded", "bad": "EarlyStopped", "good3": "Succeeded", "late": "EarlyStopped"}
    messages = {c: next(x.message for x in t.status.conditions if x.type == "EarlyStopped")
                for c, t in by_curve.items() if t.status.state == "EarlyStopped"}
    assert "up to step 2" in messages["bad"] and "up to step 3" in messages["late"]
    # observations of stopped trials are kept, and the trial counts as completed
    bad = store.get_observations(by_curve["bad"].name, "accuracy")
    assert 2 <= len(bad) < 10
    assert float(by_curve["bad"].status.observation.metric("accuracy").max) == max(float(r.value) for r in bad)
    exp_status = store.get_experiment("median").status
    assert exp_status.trials_early_stopped == 2 and exp_status.trials == 5
    # the closing table says how many were stopped and how many reports that saved
    assert "2 trial(s) stopped early" in out
    saved = 10 - len(bad) + 10 - len(store.get_observations(by_curve["late"].name, "accuracy"))
    assert f"saving {saved} reported step(s)" in out
