"""Validation without a webhook, and the bounded status (no cluster needed)."""

from __future__ import annotations

from typing import Any

from katib.backends.kubernetes.controller import MAX_LISTED_TRIALS, _bounded
from katib.backends.kubernetes.experiments import INVALID_PREFIX, decode_experiment, invalid_status, prepare
from katib.backends.kubernetes.services import Services
from suggestion.inprocess import InProcessSuggester
from tests.kubernetes.test_random_job import experiment


class ConfigMaps:
    default_namespace = "ns"

    def __init__(self, maps: dict[tuple[str, str], dict[str, str]] | None = None) -> None:
        self.maps = maps or {}

    def get(self, name: str, namespace: str | None) -> dict[str, str] | None:
        return self.maps.get((namespace or self.default_namespace, name))


def _prepare(body: dict[str, Any], services: Services | None = None, maps: ConfigMaps | None = None,
             settings: bool = True) -> list[str]:
    exp, errors = decode_experiment(body)
    found = prepare(exp, errors, services or Services(), maps or ConfigMaps(),
                    InProcessSuggester() if settings else None)
    return [str(e) for e in found]


def test_a_valid_experiment_has_no_errors_and_is_defaulted() -> None:
    body = experiment("ok", "ns")
    exp, errors = decode_experiment(body)
    assert prepare(exp, errors, Services(), ConfigMaps(), InProcessSuggester()) == []
    assert exp.spec.trial_template is not None and exp.spec.trial_template.success_condition
    assert exp.spec.metrics_collector_spec is not None and exp.spec.metrics_collector_spec.kind == "StdOut"


def test_every_problem_is_reported_with_its_path() -> None:
    body = experiment("Bad_Name", "ns", parallelTrialCount=0)
    body["spec"]["objective"]["additionalMetricNames"] = ["accuracy"]
    errors = _prepare(body)
    assert any(e.startswith("metadata.name") for e in errors)
    assert any(e.startswith("spec.parallelTrialCount") for e in errors)
    assert any(e.startswith("spec.objective.additionalMetricNames") for e in errors)


def test_cluster_checks() -> None:
    push = experiment("push", "ns", metricsCollectorSpec={"collector": {"kind": "Push"}})
    assert any("--db-manager-address" in e for e in _prepare(push))
    assert _prepare(push, Services(db=object())) == []  # type: ignore[arg-type]
    tf = experiment("tf", "ns", metricsCollectorSpec={"collector": {"kind": "TensorFlowEvent"}})
    assert any("not supported by this controller" in e for e in _prepare(tf))
    bad = experiment("cond", "ns")
    bad["spec"]["trialTemplate"]["successCondition"] = 'status.conditions.#(type=="Complete"'
    bad["spec"]["trialTemplate"]["failureCondition"] = "status.failed"
    assert any(e.startswith("spec.trialTemplate.successCondition") for e in _prepare(bad))


def test_settings_are_checked_by_the_algorithm() -> None:
    body = experiment("grid", "ns", algorithm={"algorithmName": "grid"})  # doubles without step
    errors = _prepare(body)
    assert errors and "step" in " ".join(errors)
    assert _prepare(body, settings=False) == []  # only on the first reconcile
    es = experiment("es", "ns", earlyStopping={"algorithmName": "medianstop", "algorithmSettings": [
        {"name": "min_trials_required", "value": "zero"}]})
    assert any(e.startswith("spec.earlyStopping.algorithmSettings") for e in _prepare(es))


def test_remote_names_are_known_algorithms() -> None:
    body = experiment("plugin", "ns", algorithm={"algorithmName": "mine"})
    assert any("spec.algorithm.algorithmName" in e for e in _prepare(body, settings=False))
    assert _prepare(body, Services({"mine": "host:1"}), settings=False) == []


def test_configmap_template_is_read_and_defaulted() -> None:
    body = experiment("cm", "ns")
    template = body["spec"]["trialTemplate"]
    import json

    text = json.dumps(template.pop("trialSpec"))
    template["configMap"] = {"configMapName": "templates", "configMapNamespace": "ns", "templatePath": "job.yaml"}
    maps = ConfigMaps({("ns", "templates"): {"job.yaml": text}})
    exp, errors = decode_experiment(body)
    assert prepare(exp, errors, Services(), maps, None) == []
    assert exp.spec.trial_template is not None and exp.spec.trial_template.success_condition  # defaulted
    missing = _prepare(body, settings=False)
    assert any("templates" in e for e in missing)


def test_invalid_status_carries_every_message() -> None:
    exp, _ = decode_experiment(experiment("x", "ns"))
    from katib.errors import FieldError

    status = invalid_status(exp, [FieldError("a.b", "broken"), FieldError("c", "also broken")])
    (failed,) = status.conditions
    assert (failed.type, failed.status, failed.reason) == ("Failed", "True", "ExperimentFailed")
    assert failed.message == INVALID_PREFIX + "a.b: broken; c: also broken"
    assert status.completion_time and status.start_time


def test_status_lists_are_bounded_but_counts_are_not() -> None:
    names = [f"t-{i}" for i in range(MAX_LISTED_TRIALS + 50)]
    status = _bounded({"succeededTrialList": list(names), "trialsSucceeded": len(names), "runningTrialList": ["a"]})
    assert status["succeededTrialList"] == names[-MAX_LISTED_TRIALS:]
    assert status["trialsSucceeded"] == MAX_LISTED_TRIALS + 50 and status["runningTrialList"] == ["a"]
