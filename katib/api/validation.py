"""Experiment validation: upstream's admission rules (reference §4.2) plus the checks
upstream misses (§13 item 11).

``validate`` returns every problem as a ``FieldError`` naming the field path and the fix;
it stops early exactly where upstream does (a broken objective ends validation; so do the
trial-template source errors). It expects a defaulted experiment, as the webhook sees one:
call ``set_defaults`` first, or use ``prepare``.

The namespace-label and PersistentVolume pre-checks of upstream's webhook are cluster
matters and live with the Kubernetes backend.
"""

from __future__ import annotations

import math
import re
from typing import Iterable

from katib.api._validate_collector import check_metrics_collector
from katib.api._validate_params import check_nas_config, check_parameters
from katib.api._validate_template import check_trial_template
from katib.api.defaults import set_defaults
from katib.api.model import (
    Experiment,
    ExperimentCondition,
    ObjectiveSpec,
    ObjectiveType,
    ResumePolicy,
)
from katib.api.trialtemplate import ConfigMapGetter
from katib.errors import FieldError, ValidationError

__all__ = ["validate", "validate_or_raise", "prepare", "MAX_NAME_LENGTH", "NAME_PATTERN"]

MAX_NAME_LENGTH = 40
# Upstream uses this pattern unanchored at the end (only the first character is checked);
# we anchor it, because names with '.' or '_' break the Services and Jobs named after them.
NAME_PATTERN = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_EDITABLE = ("parallelTrialCount", "maxTrialCount", "maxFailedTrialCount")
_STRATEGIES = ("min", "max", "latest")


def _name_fix(name: str) -> str:
    fixed = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    fixed = re.sub(r"^[^a-z]+", "", fixed)[:MAX_NAME_LENGTH].rstrip("-")
    return fixed or "my-experiment"


def _check_name(exp: Experiment) -> list[FieldError]:
    name = exp.metadata.name or ""
    path = "metadata.name"
    if not name:
        return [FieldError(path, "must be specified, e.g. 'my-experiment'")]
    errors = []
    if not NAME_PATTERN.fullmatch(name):
        errors.append(FieldError(path, f"name {name!r} must consist of lower case alphanumeric characters or '-', "
                                 "start with an alphabetic character, and end with an alphanumeric character "
                                 f"(trials, jobs and services are named after it); try {_name_fix(name)!r}"))
    if len(name) > MAX_NAME_LENGTH:
        errors.append(FieldError(path, f"name is {len(name)} characters long; use at most {MAX_NAME_LENGTH} so that "
                                 f"the names derived from it fit Kubernetes limits, e.g. {_name_fix(name)!r}"))
    return errors


def _check_counts(exp: Experiment) -> list[FieldError]:
    s = exp.spec
    errors = []
    if s.max_failed_trial_count is not None and s.max_failed_trial_count < 0:
        errors.append(FieldError("spec.maxFailedTrialCount", f"should not be less than 0, got {s.max_failed_trial_count}"))
    if s.max_trial_count is not None and s.max_trial_count <= 0:
        errors.append(FieldError("spec.maxTrialCount", f"must be greater than 0, got {s.max_trial_count}"))
    if s.parallel_trial_count is not None and s.parallel_trial_count <= 0:
        errors.append(FieldError("spec.parallelTrialCount", f"must be greater than 0, got {s.parallel_trial_count}"))
    if s.max_failed_trial_count is not None and s.max_trial_count is not None \
            and s.max_failed_trial_count > s.max_trial_count:
        errors.append(FieldError("spec.maxFailedTrialCount", f"({s.max_failed_trial_count}) should be less than or "
                                 f"equal to spec.maxTrialCount ({s.max_trial_count})"))
    if s.parallel_trial_count is not None and s.max_trial_count is not None \
            and s.parallel_trial_count > s.max_trial_count:
        errors.append(FieldError("spec.parallelTrialCount", f"({s.parallel_trial_count}) should be less than or "
                                 f"equal to spec.maxTrialCount ({s.max_trial_count})"))
    return errors


def _is_completed(exp: Experiment) -> bool:
    st = exp.status
    return st is not None and (st.is_true(ExperimentCondition.SUCCEEDED) or st.is_true(ExperimentCondition.FAILED))


def _is_restartable(exp: Experiment) -> bool:
    st = exp.status
    if st is None or not st.is_true(ExperimentCondition.SUCCEEDED):
        return False
    cond = st.condition(ExperimentCondition.SUCCEEDED)
    return (cond is not None and cond.reason == ExperimentCondition.REASON_MAX_TRIALS_REACHED
            and exp.spec.resume_policy in (ResumePolicy.LONG_RUNNING, ResumePolicy.FROM_VOLUME))


def _check_update(exp: Experiment, old: Experiment) -> list[FieldError]:
    """Rule 7: on update only the trial budget may change, and a finished experiment only
    when it can be restarted."""
    new_spec, old_spec = exp.spec.to_dict(), old.spec.to_dict()
    if new_spec == old_spec:
        return []
    errors = []
    if _is_completed(old) and not _is_restartable(old):
        errors.append(FieldError("spec.resumePolicy", "Experiment can be restarted if it is in succeeded state by "
                                 "reaching max trials and spec.resumePolicy = LongRunning or spec.resumePolicy = "
                                 "FromVolume, when experiment is completed; create a new experiment instead"))
    done = (old.status.trials if old.status is not None else None) or 0
    if exp.spec.max_trial_count is not None and exp.spec.max_trial_count <= done:
        errors.append(FieldError("spec.maxTrialCount", f"must be greater than status.trials count ({done}), "
                                 f"got {exp.spec.max_trial_count}"))
    for key in sorted(set(new_spec) | set(old_spec)):
        if key not in _EDITABLE and new_spec.get(key) != old_spec.get(key):
            errors.append(FieldError(f"spec.{key}", "cannot be changed after creation: only spec.parallelTrialCount, "
                                     "spec.maxTrialCount and spec.maxFailedTrialCount are editable"))
    return errors


def _check_objective(obj: ObjectiveSpec | None) -> list[FieldError]:
    path = "spec.objective"
    if obj is None:
        return [FieldError(path, "must be specified: the metric to optimize and its direction")]
    errors = []
    if obj.type not in ObjectiveType.ALL:
        errors.append(FieldError(f"{path}.type", f"must be minimize or maximize, got {obj.type!r}"))
    if not obj.objective_metric_name:
        errors.append(FieldError(f"{path}.objectiveMetricName", "must be specified: the metric trials report"))
    if obj.goal is not None and not math.isfinite(obj.goal):
        errors.append(FieldError(f"{path}.goal", f"must be a finite number, got {obj.goal}"))
    seen: dict[str, int] = {}
    for i, name in enumerate(obj.additional_metric_names):
        if name == obj.objective_metric_name:
            errors.append(FieldError(f"{path}.additionalMetricNames", f"should not contain "
                                     f"spec.objective.objectiveMetricName ({name!r}); remove it"))
        elif not name:
            errors.append(FieldError(f"{path}.additionalMetricNames[{i}]", "must not be empty"))
        elif name in seen:
            errors.append(FieldError(f"{path}.additionalMetricNames[{i}]", f"duplicate metric {name!r}; remove it"))
        seen.setdefault(name, i)
    if obj.objective_metric_name:  # else the defaulted strategy has no name; reported above
        known = obj.metric_names
        names: set[str] = set()
        for i, strategy in enumerate(obj.metric_strategies):
            spath = f"{path}.metricStrategies[{i}]"
            if strategy.value not in _STRATEGIES:
                errors.append(FieldError(f"{spath}.value", f"must be min, max or latest, got {strategy.value!r}"))
            if strategy.name not in known:
                errors.append(FieldError(f"{spath}.name", f"{strategy.name!r} is not a metric of the objective; "
                                         f"use one of {', '.join(known)} or add it to additionalMetricNames"))
            elif strategy.name in names:
                errors.append(FieldError(f"{spath}.name", f"duplicate strategy for {strategy.name!r}; keep one"))
            names.add(strategy.name)
    return errors


def _check_algorithm(exp: Experiment, known: set[str] | None, known_es: set[str] | None) -> list[FieldError]:
    errors = []
    alg = exp.spec.algorithm
    if alg is None:
        errors.append(FieldError("spec.algorithm", "must be specified, e.g. algorithmName: random"))
    elif not alg.algorithm_name:
        errors.append(FieldError("spec.algorithm.algorithmName", "must be specified, e.g. random"))
    elif known is not None and alg.algorithm_name not in known:
        errors.append(FieldError("spec.algorithm.algorithmName", f"unknown algorithm {alg.algorithm_name!r}; known "
                                 f"algorithms: {', '.join(sorted(known))}"))
    es = exp.spec.early_stopping
    if es is not None:
        if not es.algorithm_name:
            errors.append(FieldError("spec.earlyStopping.algorithmName", "must be specified, e.g. medianstop"))
        elif known_es is not None and es.algorithm_name not in known_es:
            errors.append(FieldError("spec.earlyStopping.algorithmName", f"unknown early stopping algorithm "
                                     f"{es.algorithm_name!r}; known: {', '.join(sorted(known_es)) or 'none'}"))
    if exp.spec.resume_policy not in (None, "", *ResumePolicy.ALL):
        errors.append(FieldError("spec.resumePolicy", f"invalid ResumePolicyType {exp.spec.resume_policy!r}; use "
                                 f"{', '.join(ResumePolicy.ALL)}"))
    return errors


def _check_search_space(exp: Experiment) -> list[FieldError]:
    s = exp.spec
    if not s.parameters and s.nas_config is None:
        return [FieldError("spec", "spec.parameters or spec.nasConfig must be specified")]
    if s.parameters and s.nas_config is not None:
        return [FieldError("spec", "only one of spec.parameters and spec.nasConfig can be specified")]
    if s.parameters:
        return check_parameters(s.parameters, "spec.parameters")
    assert s.nas_config is not None
    algorithm = s.algorithm.algorithm_name if s.algorithm else None
    return check_nas_config(s.nas_config, "spec.nasConfig", algorithm)


def validate(exp: Experiment, *, old: Experiment | None = None, known_algorithms: Iterable[str] | None = None,
             known_early_stopping: Iterable[str] | None = None,
             config_maps: ConfigMapGetter | None = None) -> list[FieldError]:
    """Every problem of ``exp`` (already defaulted), in upstream's order.

    ``old``: the stored experiment when this is an update (rule 7). ``known_algorithms`` /
    ``known_early_stopping``: names that can be served; None skips those checks.
    ``config_maps``: where ConfigMap trial templates are looked up; without it the content
    of a ConfigMap template is not checked.
    """
    errors = _check_name(exp) + _check_counts(exp)
    if old is not None:
        errors += _check_update(exp, old)
    objective = _check_objective(exp.spec.objective)
    if objective:
        return errors + objective  # upstream stops at a broken objective
    known = set(known_algorithms) if known_algorithms is not None else None
    known_es = set(known_early_stopping) if known_early_stopping is not None else None
    errors += _check_algorithm(exp, known, known_es)
    errors += check_trial_template(exp, config_maps)
    errors += _check_search_space(exp)
    errors += check_metrics_collector(exp)
    return errors


def validate_or_raise(exp: Experiment, *, old: Experiment | None = None,
                      known_algorithms: Iterable[str] | None = None,
                      known_early_stopping: Iterable[str] | None = None,
                      config_maps: ConfigMapGetter | None = None) -> None:
    """``validate`` and raise ``ValidationError`` carrying every problem, if any."""
    errors = validate(exp, old=old, known_algorithms=known_algorithms,
                      known_early_stopping=known_early_stopping, config_maps=config_maps)
    if errors:
        raise ValidationError(errors)


def prepare(exp: Experiment, *, old: Experiment | None = None, known_algorithms: Iterable[str] | None = None,
            known_early_stopping: Iterable[str] | None = None,
            config_maps: ConfigMapGetter | None = None) -> Experiment:
    """``set_defaults`` then ``validate_or_raise``, as upstream's two webhooks do; returns ``exp``."""
    set_defaults(exp, config_maps=config_maps)
    validate_or_raise(exp, old=old, known_algorithms=known_algorithms,
                      known_early_stopping=known_early_stopping, config_maps=config_maps)
    return exp
