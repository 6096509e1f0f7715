"""Our examples and upstream-shaped examples are accepted; example trials render and run."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from katib.api.defaults import set_defaults
from katib.api.loader import ConfigMapLookup, load_experiment, load_experiments
from katib.api.model import Experiment, ParameterSpec
from katib.api.validation import validate
from katib.controller.template import primary_container, render_trial_spec
from tests.api.factory import UPSTREAM_ALGORITHMS, find
from tests.nas.conftest import need_torch

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
UPSTREAM = Path(__file__).resolve().parent / "upstream_examples"
LAYOUT = """
hp-tuning/random hp-tuning/grid hp-tuning/tpe hp-tuning/multivariate-tpe hp-tuning/cma-es hp-tuning/sobol
hp-tuning/bayesian-optimization hp-tuning/hyperband hp-tuning/hyperopt-distribution hp-tuning/optuna-distribution
hp-tuning/simple-pbt early-stopping/median-stop early-stopping/median-stop-with-json-format
metrics-collector/file-metrics-collector metrics-collector/file-metrics-collector-with-json-format
metrics-collector/custom-metrics-collector metrics-collector/metrics-collection-strategy
kubeflow-training-operator/pytorchjob kubeflow-training-operator/tfjob-with-summaries
kubeflow-training-operator/mpijob kubeflow-training-operator/xgboostjob kubeflow-trainer/trainjob-pytorch
argo/argo-workflow tekton/pipeline-run nas/enas-cpu nas/darts-cpu resume-experiment/long-running-resume
resume-experiment/from-volume-resume trial-template/trial-configmap-source trial-template/trial-metadata-substitution
quickstart
""".split()


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.yaml") if p.parent.name != "manifests")


def _accept(path: Path, lookup: ConfigMapLookup) -> Experiment:
    (exp,) = load_experiments(path, config_maps=lookup)
    set_defaults(exp, config_maps=lookup)
    errors = validate(exp, known_algorithms=UPSTREAM_ALGORITHMS, known_early_stopping=["medianstop"],
                      config_maps=lookup)
    assert errors == [], "\n".join(map(str, errors))
    return exp


def test_layout_is_complete() -> None:
    missing = [name for name in LAYOUT if not (EXAMPLES / f"{name}.yaml").is_file()]
    assert missing == []


@pytest.mark.parametrize("path", _files(EXAMPLES), ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_our_examples_are_valid(path: Path) -> None:
    _accept(path, ConfigMapLookup())


@pytest.mark.parametrize("path", _files(UPSTREAM), ids=lambda p: str(p.relative_to(UPSTREAM)))
def test_upstream_shaped_examples_are_accepted_unchanged(path: Path) -> None:
    lookup = ConfigMapLookup.from_files(UPSTREAM / "manifests" / "trial-templates.yaml")
    exp = _accept(path, lookup)
    assert exp.metadata.namespace in ("kubeflow", "argo")


def test_upstream_examples_without_the_configmap_still_validate() -> None:
    # katib validate on the file alone: the ConfigMap lives in the cluster.
    exp = load_experiment(UPSTREAM / "trial-template" / "trial-configmap-source.yaml")
    assert validate(set_defaults(exp)) == []


def test_upstream_simple_pbt_budget_is_rejected_as_upstream_does() -> None:
    # Upstream's simple-pbt.yaml sets maxFailedTrialCount 3 with maxTrialCount 2; its own webhook
    # rejects that (rule 5), so our copy uses 2. The original numbers are rejected here too.
    text = (UPSTREAM / "hp-tuning" / "simple-pbt.yaml").read_text().replace("maxFailedTrialCount: 2",
                                                                            "maxFailedTrialCount: 3")
    find(validate(set_defaults(load_experiment(text))), "spec.maxFailedTrialCount",
         "less than or equal to spec.maxTrialCount (2)")


NAS_VALUES = {
    "architecture": "[[1]]",
    "nn_config": "{'num_layers': 1, 'input_sizes': [8, 8, 1], 'output_sizes': [10], 'embedding': {'1': "
                 "{'opt_id': 1, 'opt_type': 'convolution', 'opt_params': {'num_filter': '48', 'stride': '1'}}}}",
    "algorithm-settings": "{'num_epochs': '1', 'num_nodes': '1', 'init_channels': '2', 'stem_multiplier': '1'}",
    "search-space": "['max_pooling_3x3', 'separable_convolution_3x3', 'skip_connection']",
    "num-layers": "1",
}


def _value(p: ParameterSpec) -> str:
    fs = p.feasible_space
    if fs.list:
        return fs.list[-1]
    return fs.max if p.parameter_type == "int" else repr((float(fs.min or 0) + float(fs.max or 0)) / 2)


def _assignments(exp: Experiment) -> dict[str, str]:
    if exp.spec.parameters:
        return {p.name: _value(p) for p in exp.spec.parameters}
    assert exp.spec.trial_template is not None
    refs = {tp.reference for tp in exp.spec.trial_template.trial_parameters or []}
    return {k: v for k, v in NAS_VALUES.items() if k in refs}


def _primary(path: Path) -> tuple[Experiment, Any]:
    lookup = ConfigMapLookup()
    exp = _accept(path, lookup)
    tt = exp.spec.trial_template
    assert tt is not None
    run = render_trial_spec(tt, _assignments(exp), f"{exp.name}-x1y2z3", "default", lookup)
    return exp, primary_container(run, tt.primary_container_name or "", primary_pod_labels=tt.primary_pod_labels)


@pytest.mark.parametrize("path", _files(EXAMPLES), ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_example_trials_run_scripts_of_this_repository(path: Path) -> None:
    _, ref = _primary(path)
    assert ref.argv[0] == "python3"
    if "-m" in ref.argv:  # a trainer that ships with the package: python3 -m katib.trainers.enas
        module = ref.argv[ref.argv.index("-m") + 1]
        assert module.startswith("katib.") and (REPO / (module.replace(".", "/") + ".py")).is_file(), module
    else:
        script = next(a for a in ref.argv[1:] if a.endswith(".py"))
        assert (REPO / script).is_file(), script  # relative to the repository root
    assert not any("${trialParameters." in a for a in ref.argv)


def _run(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable if a == "python3" else a for a in argv]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def test_quickstart_trial_trains_and_reports_every_epoch() -> None:
    _, ref = _primary(EXAMPLES / "quickstart.yaml")
    done = _run(ref.argv)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("epoch=")]
    assert len(lines) == 5
    accuracy = float(lines[-1].split("Validation-accuracy=")[1])
    assert 0.5 < accuracy <= 1.0


def test_json_and_custom_formats(tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    done = _run(["python3", "examples/trials/digits_mlp.py", "--epochs=2", "--format=json", f"--log-path={out}"])
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert all(isinstance(r["accuracy"], str) and r["timestamp"].endswith("Z") for r in rows)
    done = _run(["python3", "examples/trials/digits_mlp.py", "--epochs=1", "--format=custom"])
    assert "{metricName: accuracy, metricValue: " in done.stdout


def test_tfevent_trial_writes_valid_event_files(tmp_path: Path) -> None:
    sys.path.insert(0, str(EXAMPLES / "trials"))
    try:
        from _tfevents import crc32c, _masked  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    done = _run(["python3", "examples/trials/digits_tfevent.py", "--epochs=2", f"--log-path={tmp_path}"])
    assert done.returncode == 0, done.stderr
    (events,) = (tmp_path / "test").iterdir()
    data, records = events.read_bytes(), []
    while data:
        (n,) = struct.unpack("<Q", data[:8])
        assert struct.unpack("<I", data[8:12])[0] == _masked(data[:8])
        payload = data[12:12 + n]
        assert struct.unpack("<I", data[12 + n:16 + n])[0] == _masked(payload)
        records.append(payload)
        data = data[16 + n:]
    assert b"brain.Event:2" in records[0]
    assert len(records) == 3 and all(b"accuracy" in r and b"loss" in r for r in records[1:])


def test_gbm_trial_prints_lightgbm_style_metrics() -> None:
    _, ref = _primary(EXAMPLES / "kubeflow-training-operator" / "xgboostjob.yaml")
    done = _run([a.replace("--num_trees=20", "--num_trees=3") for a in ref.argv])
    assert done.returncode == 0, done.stderr
    assert "Iteration:3, valid_1 auc : " in done.stdout


@pytest.mark.parametrize("example, expect", [("nas/enas-cpu.yaml", "Validation-Accuracy="),
                                             ("nas/darts-cpu.yaml", "Best-Genotype=Genotype(normal=")])
def test_nas_trials_read_their_suggestion(example: str, expect: str) -> None:
    _, ref = _primary(EXAMPLES / example)
    if "-m" in ref.argv:  # the package's NAS trainers need the nas extra
        need_torch()
    done = _run(ref.argv)
    assert done.returncode == 0, done.stderr
    assert expect in done.stdout


def test_custom_collector_follows_a_metrics_file(tmp_path: Path) -> None:
    log = tmp_path / "metrics.log"
    log.write_text("{metricName: accuracy, metricValue: 0.5}, {metricName: loss, metricValue: 1.2}\n"
                   "{metricName: accuracy, metricValue: 0.75}\n")
    done = _run(["python3", "examples/trials/custom_collector.py", "-m", "accuracy", "-path", str(log),
                 "--wait-pid", "999999999", "--idle", "0"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["accuracy=0.5", "accuracy=0.75"]


def test_api_imports_no_grpc_kubernetes_or_sqlalchemy() -> None:
    code = ("import sys, katib.api.defaults, katib.api.validation, katib.api.loader, katib.api.trialtemplate; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('grpc', 'kubernetes', 'sqlalchemy')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr
