"""Reading an Experiment from the API server: decode, default, validate (choice 4 of the
Kubernetes mode).

There is no admission webhook. The CRD schema checks structure; the controller applies
upstream's defaults in memory (the stored spec is left as the user wrote it) and validates
with ``katib.api.validation`` before it creates anything. An invalid experiment gets a
``Failed`` condition (reason ``ExperimentFailed``) whose message carries every problem,
each with its field path, and no trial is ever created for it. The checks upstream's webhook
does, plus what this controller needs: a collector kind it can read, a DB for Push and
Custom collectors, readable GJSON conditions, and (once, on the first reconcile, as
upstream's suggestion controller does) the algorithm's and early-stopping rule's settings.
A Failed experiment stays failed; fix the spec and create it again.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from katib.api.defaults import set_defaults
from katib.api.model import CollectorKind, Experiment, ExperimentCondition as EC, ExperimentStatus
from katib.api.validation import validate
from katib.backends.kubernetes.client import ApiError, Kube
from katib.backends.kubernetes.resources import CONFIGMAPS
from katib.backends.kubernetes.services import Services
from katib.controller import gjson
from katib.controller.conditions import is_true, now_rfc3339, set_condition
from katib.errors import FieldError, ServiceError, SettingsError, ValidationError

__all__ = ["ApiConfigMaps", "decode_experiment", "prepare", "invalid_status", "SUPPORTED_COLLECTORS",
           "INVALID_PREFIX"]

log = logging.getLogger(__name__)

SUPPORTED_COLLECTORS = (CollectorKind.STDOUT, CollectorKind.FILE, CollectorKind.PUSH, CollectorKind.CUSTOM,
                        CollectorKind.NONE)
INVALID_PREFIX = "Experiment validation failed: "


class ConfigMaps(Protocol):
    """Where trial templates' ConfigMaps are read, and the namespace they default to."""

    default_namespace: str

    def get(self, name: str, namespace: str | None) -> dict[str, str] | None: ...


class ApiConfigMaps:
    """ConfigMap data from the API server (``ConfigMapGetter`` for trial templates)."""

    def __init__(self, kube: Kube, default_namespace: str) -> None:
        self.kube = kube
        self.default_namespace = default_namespace

    def get(self, name: str, namespace: str | None) -> dict[str, str] | None:
        try:
            cm = self.kube.get_or_none(CONFIGMAPS, namespace or self.default_namespace, name)
        except ApiError as exc:
            if exc.status == 403:
                log.warning("no permission to read ConfigMap %s/%s: %s", namespace, name, exc)
                return None
            raise
        return dict(cm.get("data") or {}) if cm is not None else None


def decode_experiment(obj: dict[str, Any]) -> tuple[Experiment, list[FieldError]]:
    errors: list[FieldError] = []
    exp: Experiment = Experiment.from_dict(obj, "", errors)
    return exp, errors


def _cluster_checks(exp: Experiment, services: Services) -> list[FieldError]:
    errors = []
    mc = exp.spec.metrics_collector_spec
    kind = mc.kind if mc else CollectorKind.STDOUT
    path = "spec.metricsCollectorSpec.collector.kind"
    if kind not in SUPPORTED_COLLECTORS:
        errors.append(FieldError(path, f"{kind} is not supported by this controller; use one of "
                                       f"{', '.join(SUPPORTED_COLLECTORS)}"))
    elif kind in (CollectorKind.PUSH, CollectorKind.CUSTOM) and services.db is None:
        errors.append(FieldError(path, f"the {kind} collector reports metrics to a DB manager; start the "
                                       "controller with --db-manager-address (or --db)"))
    template = exp.spec.trial_template
    for field, cond in (("successCondition", template.success_condition if template else None),
                        ("failureCondition", template.failure_condition if template else None)):
        if cond:
            try:
                gjson.parse(cond)
            except gjson.GJSONSyntaxError as exc:
                errors.append(FieldError(f"spec.trialTemplate.{field}", f"not a GJSON path this controller "
                                                                         f"can evaluate: {exc}"))
    return errors


def _settings_errors(exp: Experiment, suggester: Any, services: Services) -> list[FieldError]:
    errors: list[FieldError] = []
    try:
        suggester.validate(exp)
    except SettingsError as exc:
        errors.append(FieldError("spec.algorithm.algorithmSettings", str(exc)))
    except ValidationError as exc:
        errors.extend(exc.errors)
    except ServiceError as exc:
        if exc.retryable:
            raise  # the service is not reachable yet: try again later, do not fail the experiment
        log.info("experiment %s: the suggestion service did not validate the settings (%s); going on",
                 exp.name, exc)
    es = exp.spec.early_stopping
    if es is not None:
        from earlystop.inprocess import algorithm_class

        remote = services.early_stopping_client(es.algorithm_name)
        try:
            if remote is not None:
                remote.validate(es)
            else:
                algorithm_class(es)
        except SettingsError as exc:
            errors.append(FieldError("spec.earlyStopping.algorithmSettings", str(exc)))
        except ValidationError as exc:
            errors.extend(exc.errors)
        except ServiceError as exc:
            if exc.retryable:
                raise
            log.info("experiment %s: the early-stopping service did not validate the settings (%s); going on",
                     exp.name, exc)
    return errors


def prepare(exp: Experiment, decode_errors: list[FieldError], services: Services, config_maps: ConfigMaps,
            suggester: Any | None) -> list[FieldError]:
    """Default ``exp`` in place and return every problem. ``suggester`` given: also check the
    algorithm's (and early-stopping rule's) settings."""
    exp.metadata.namespace = exp.metadata.namespace or config_maps.default_namespace
    set_defaults(exp, config_maps=config_maps)
    errors = list(decode_errors)
    errors += validate(exp, known_algorithms=services.known_algorithms(),
                       known_early_stopping=sorted(services.known_early_stopping()), config_maps=config_maps)
    if not errors:
        errors += _cluster_checks(exp, services)
    if not errors and suggester is not None:
        errors += _settings_errors(exp, suggester, services)
    return errors


def invalid_status(exp: Experiment, errors: list[FieldError]) -> ExperimentStatus:
    """The status of an experiment refused by validation: Failed, every problem in the message."""
    status = exp.status.copy() if exp.status is not None else ExperimentStatus()
    now = now_rfc3339()
    message = INVALID_PREFIX + "; ".join(str(e) for e in errors)
    set_condition(status.conditions, EC.FAILED, "True", EC.REASON_FAILED, message, now)
    if is_true(status.conditions, EC.RUNNING):
        set_condition(status.conditions, EC.RUNNING, "False", EC.REASON_RUNNING, message, now)
    status.start_time = status.start_time or now
    status.completion_time = status.completion_time or now
    status.last_reconcile_time = now
    return status
