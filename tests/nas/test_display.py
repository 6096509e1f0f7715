"""`katib get trials` and `katib run`'s lines show an ENAS trial's architecture readably,
not the long nn_config string every trial repeats."""

from __future__ import annotations

import io
import json
from pathlib import Path

from katib.api.loader import load_experiment
from katib.api.model import (
    Condition,
    ExperimentStatus,
    Metric,
    Observation,
    OptimalTrial,
    ParameterAssignment,
    Trial,
    TrialSpec,
    TrialStatus,
)
from katib.display import Progress, architecture_text, optimum_text, trial_table

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "nas" / "enas-cpu.yaml"
EMBEDDING = {
    "3": {"opt_id": 3, "opt_type": "convolution", "opt_params": {"filter_size": "3", "num_filter": "48", "stride": "2"}},
    "23": {"opt_id": 23, "opt_type": "separable_convolution",
           "opt_params": {"filter_size": "5", "num_filter": "32", "stride": "1", "depth_multiplier": "2"}},
    "30": {"opt_id": 30, "opt_type": "depthwise_convolution",
           "opt_params": {"filter_size": "3", "stride": "1", "depth_multiplier": "1"}},
    "37": {"opt_id": 37, "opt_type": "reduction", "opt_params": {"reduction_type": "avg_pooling", "pool_size": 3}},
}


def _assignments(arch: list[list[int]]) -> list[ParameterAssignment]:
    config = {"num_layers": len(arch), "input_sizes": [8, 8, 1], "output_sizes": [10], "embedding": EMBEDDING}
    # As upstream's ENAS service sends them: JSON with single quotes.
    return [ParameterAssignment("architecture", json.dumps(arch).replace('"', "'")),
            ParameterAssignment("nn_config", json.dumps(config).replace('"', "'"))]


def test_an_architecture_reads_as_its_layers() -> None:
    values = {a.name: a.value for a in _assignments([[3], [37, 1], [23, 0, 1], [30, 1, 0, 0]])}
    assert architecture_text(values) == "conv3x3-48/s2 > avgpool3 +in > sepconv5x5-32x2 +L1 > dwconv3x3 +in"
    assert architecture_text({"x": "1"}) is None
    assert architecture_text({"architecture": "[[9]]", "nn_config": values["nn_config"]}) is None  # no op 9


def test_the_trial_table_and_the_best_trial_show_the_architecture() -> None:
    exp = load_experiment(EXAMPLE.read_text())
    trials = [Trial(spec=TrialSpec(parameter_assignments=_assignments([[3], [37, 1], [23, 0, 1]])),
                    status=TrialStatus(conditions=[Condition(type="Succeeded", status="True")],
                                       observation=Observation([Metric("Validation-Accuracy", "0.9", "0.9", "0.9")])))]
    trials[0].metadata.name = "enas-cpu-abc"
    lines = trial_table(exp, trials).splitlines()
    assert lines[0].split() == ["TRIAL", "STATUS", "ARCHITECTURE", "Validation-Accuracy"]
    assert lines[1].split("  ")[0:1] == ["enas-cpu-abc"]
    assert "conv3x3-48/s2 > avgpool3 +in > sepconv5x5-32x2 +L1" in lines[1] and "nn_config" not in lines[1]

    exp.status = ExperimentStatus(current_optimal_trial=OptimalTrial(
        "enas-cpu-abc", _assignments([[3], [37, 1], [23, 0, 1]]), trials[0].status.observation))
    assert optimum_text(exp).endswith("| architecture=conv3x3-48/s2 > avgpool3 +in > sepconv5x5-32x2 +L1")
    out = io.StringIO()
    Progress(out, width=None)(exp, trials)
    assert out.getvalue().rstrip().endswith("| architecture=conv3x3-48/s2 > avgpool3 +in > sepconv5x5-32x2 +L1")


def test_a_darts_genotype_shows_as_its_cells() -> None:
    from katib.display import genotype_text

    genotype = ("Genotype(normal=[[('separable_convolution_3x3',1),('separable_convolution_3x3',0)],"
                "[('dilated_convolution_5x5',0),('skip_connection',2)]],normal_concat=range(2,4),"
                "reduce=[[('max_pooling_3x3',0),('avg_pooling_3x3',1)],[('max_pooling_3x3',2),"
                "('separable_convolution_3x3',0)]],reduce_concat=range(2,4))")
    assert genotype_text(genotype) == (
        "normal: sepconv3x3<1 sepconv3x3<0 | dilconv5x5<0 skip<2; "
        "reduce: maxpool3x3<0 avgpool3x3<1 | maxpool3x3<2 sepconv3x3<0")
    assert genotype_text("0.97") is None and genotype_text("Genotype(broken") is None
