"""The gRPC EarlyStopping server (``api.v1.beta1.EarlyStopping``), wire-compatible with Katib.

Run it with ``katib earlystop serve --port 6788`` (or ``python -m earlystop.service``). It
registers gRPC health (service names ``""``, ``manager.v1beta1.EarlyStopping`` as Katib's
probes ask, and the proto name ``api.v1.beta1.EarlyStopping``) and reflection, and on
SIGTERM reports NOT_SERVING, finishes the calls in flight and exits.

RPCs:

* ``ValidateEarlyStoppingSettings``: INVALID_ARGUMENT naming the unknown algorithm or the
  bad setting.
* ``GetEarlyStoppingRules``: keeps one rule instance per experiment. Each call feeds it the
  trials that completed (Succeeded or EarlyStopped) since the last call, reading each one's
  objective log once from the DB manager named in the request (one reused channel per
  address, a deadline on every call). Returns upstream's rule shape: ``[{objective, median at
  start_step, LESS (maximize) / GREATER (minimize), start_step}]`` once enough trials
  completed, else nothing. A trial whose log cannot be read (or is still empty) is read
  again on the next call; when no read succeeds the call fails with UNAVAILABLE. After a
  restart the rule is rebuilt from the request's completed trials (read concurrently).
  The trial list itself is scanned per call (upstream sends every trial each time), but the
  rule only does work for the trials new since the last call.
* ``SetTrialStatus``: upstream's sidecar calls it after stopping a trial; upstream then
  patches the Trial to EarlyStopped through the Kubernetes API. Here it calls an injectable
  callback ``set_trial_status(trial_name)`` (in a cluster: one from the Kubernetes backend
  that appends the EarlyStopped condition, reason TrialEarlyStopped, to the Trial's status);
  the default only records the name in ``EarlyStoppingServicer.stopped_trials`` and logs it,
  because in our design the controller marks trials itself. A callback's KatibError becomes
  the call's status code.

Handlers raise our errors and ``katib.rpc.server``'s ErrorInterceptor maps them to status
codes; the server plumbing (health, reflection, signal handling) is shared with the other
services through ``katib.rpc.server``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections import OrderedDict
from concurrent import futures
from typing import Any, Callable, Mapping, Sequence

import grpc

from earlystop.base import COMPLETED_STATES, EarlyStoppingAlgorithm
from earlystop.inprocess import algorithm_class
from katib.api.model import EarlyStoppingRule, EarlyStoppingSpec, ObjectiveSpec
from katib.api.observation import MetricLog
from katib.errors import ServiceError, ValidationError
from katib.rpc import converters, server as rpc_server
from katib.rpc.dbmanager_client import DB_DEADLINE_SECONDS, DBManagerClient

__all__ = ["EarlyStoppingServicer", "DBManagerClient", "serve", "main",
           "SERVICE_NAME", "HEALTH_SERVICE_NAMES", "DEFAULT_PORT"]

log = logging.getLogger(__name__)

SERVICE_NAME = converters.EARLY_STOPPING_SERVICE  # api.v1.beta1.EarlyStopping
# Health answers for "" (the whole server, added by rpc_server.add_health), the name Katib's
# probes ask for, and the proto name.
HEALTH_SERVICE_NAMES = ("manager.v1beta1.EarlyStopping", SERVICE_NAME)
DEFAULT_PORT = 6788
DB_CONCURRENCY = 8  # GetObservationLog calls in flight while catching up after a restart
MAX_EXPERIMENTS = 256  # rule instances kept; an evicted one is rebuilt from the DB if asked again



class _ExperimentRule:
    """One experiment's rule instance and the completed trials it was fed."""

    def __init__(self, key: tuple[Any, ...], algorithm: EarlyStoppingAlgorithm) -> None:
        self.key = key
        self.algorithm = algorithm
        self.fed: set[str] = set()
        self.lock = threading.Lock()


class EarlyStoppingServicer(rpc_server.EarlyStoppingServicer):
    """Implements ``api.v1.beta1.EarlyStopping``. Thread-safe. Handlers raise our errors;
    the server's ErrorInterceptor turns them into status codes (SettingsError and
    ValidationError: INVALID_ARGUMENT; ServiceError: UNAVAILABLE)."""

    def __init__(self, *, set_trial_status: Callable[[str], None] | None = None,
                 db: DBManagerClient | None = None) -> None:
        self.db = db or DBManagerClient()
        self.stopped_trials: list[str] = []
        self._set_trial_status = set_trial_status or self._record_stopped
        self._experiments: OrderedDict[str, _ExperimentRule] = OrderedDict()
        self._lock = threading.Lock()

    # -- RPCs -------------------------------------------------------------------------------

    def ValidateEarlyStoppingSettings(self, request: Any, context: grpc.ServicerContext) -> Any:
        algorithm_class(converters.early_stopping_spec_from_pb(request.early_stopping))
        return converters.validate_early_stopping_settings_reply()

    def GetEarlyStoppingRules(self, request: Any, context: grpc.ServicerContext) -> Any:
        experiment = converters.experiment_from_pb(request.experiment)
        if experiment.spec.early_stopping is None or experiment.spec.objective is None:
            raise ValidationError("experiment.spec.earlyStopping and experiment.spec.objective are required",
                                  path="experiment.spec")
        metric = experiment.spec.objective.objective_metric_name or ""
        # Only the state is decoded per trial: the assignments are of no use here.
        states = {t.name: converters.trial_status_from_pb(t, metric)[0] for t in request.trials}
        rules = self.rules_for(experiment=experiment.name, spec=experiment.spec.early_stopping,
                               objective=experiment.spec.objective, trial_states=states,
                               db_manager_address=request.db_manager_address)
        return converters.early_stopping_rules_reply(rules)

    def SetTrialStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
        if not request.trial_name:
            raise ValidationError("is required", path="trial_name")
        self._set_trial_status(request.trial_name)
        return converters.set_trial_status_reply()

    # -- the work, in domain terms ------------------------------------------------------------

    def rules_for(self, *, experiment: str, spec: EarlyStoppingSpec, objective: ObjectiveSpec,
                  trial_states: Mapping[str, str], db_manager_address: str) -> list[EarlyStoppingRule]:
        """The rules for an experiment given every trial's state (name -> TrialCondition
        value); completed trials not seen before are read from the DB manager."""
        entry = self._entry(experiment, spec, objective)
        with entry.lock:
            new = [name for name, state in trial_states.items()
                   if state in COMPLETED_STATES and name not in entry.fed]
            if new and not db_manager_address:
                raise ValidationError("is required to read the completed trials' observation logs",
                                      path="db_manager_address")
            metric = entry.algorithm.metric_name
            failures: list[str] = []
            # After a restart every completed trial is new: read them concurrently.
            with futures.ThreadPoolExecutor(max_workers=min(len(new), DB_CONCURRENCY) or 1) as pool:
                fetched = pool.map(lambda n: self._fetch(db_manager_address, n, metric), new)
                for name, logs in zip(new, fetched):
                    if isinstance(logs, ServiceError):
                        log.warning("%s; will retry on the next call", logs)
                        failures.append(str(logs))
                        continue
                    entry.algorithm.observe(name, logs)
                    entry.algorithm.trial_finished(name, trial_states[name])
                    # A completed trial whose logs are not in the DB yet is asked again next time.
                    if logs:
                        entry.fed.add(name)
            if new and len(failures) == len(new):
                # Nothing could be read: most likely a wrong address; say so to the caller.
                raise ServiceError(failures[0])
            return entry.algorithm.rules()

    def _fetch(self, address: str, trial_name: str, metric: str) -> list[MetricLog] | ServiceError:
        try:
            return self.db.objective_logs(address, trial_name, metric)
        except ServiceError as err:
            return err

    def _entry(self, experiment: str, spec: EarlyStoppingSpec, objective: ObjectiveSpec) -> _ExperimentRule:
        # An experiment recreated under the same name with other settings gets a fresh rule.
        key = (spec.algorithm_name, tuple(sorted(spec.settings.items())),
               objective.objective_metric_name, objective.type)
        with self._lock:
            entry = self._experiments.get(experiment)
            if entry is not None and entry.key == key:
                self._experiments.move_to_end(experiment)
                return entry
            if not objective.objective_metric_name:
                raise ValidationError("is required for early stopping",
                                      path="experiment.spec.objective.objectiveMetricName")
            cls = algorithm_class(spec)
            entry = self._experiments[experiment] = _ExperimentRule(key, cls(objective, spec.settings))
            self._experiments.move_to_end(experiment)
            while len(self._experiments) > MAX_EXPERIMENTS:
                self._experiments.popitem(last=False)
            return entry

    def _record_stopped(self, trial_name: str) -> None:
        log.info("trial %s reported early stopped (the controller marks it EarlyStopped)", trial_name)
        with self._lock:
            self.stopped_trials.append(trial_name)


# -- server ---------------------------------------------------------------------------------


def serve(port: int = DEFAULT_PORT, *, host: str = "::", max_workers: int = 16,
          servicer: EarlyStoppingServicer | None = None) -> rpc_server.ManagedServer:
    """Start the server without blocking and return it; ``.port`` is the bound port (useful
    with ``port=0``), ``.stop(grace)`` reports NOT_SERVING first, then drains. Pass a
    ``servicer`` to choose its SetTrialStatus callback or DB deadline, or to inspect it."""
    server = rpc_server.new_server(max_workers)
    servicer = servicer or EarlyStoppingServicer()
    converters.add_early_stopping_servicer(server, servicer)
    health_servicer = rpc_server.add_health(server, HEALTH_SERVICE_NAMES)
    rpc_server.add_reflection(server, [SERVICE_NAME])
    bound = rpc_server.bind(server, host, port)
    managed = rpc_server.ManagedServer(server, bound, health_servicer)
    managed.start()
    log.info("early-stopping service listening on port %d", bound)
    return managed


def main(argv: Sequence[str] | None = None) -> int:
    """``katib earlystop serve [--port 6788]``: serve until SIGTERM or SIGINT, then let calls
    in flight finish within ``--grace`` seconds."""
    parser = argparse.ArgumentParser(prog="katib earlystop serve",
                                     description="Serve early stopping over gRPC (api.v1.beta1.EarlyStopping).")
    parser.add_argument("command", nargs="?", choices=["serve"], default="serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (0 picks a free one); default 6788")
    parser.add_argument("--host", default="::", help="address to listen on; default all")
    parser.add_argument("--grace", type=float, default=10.0, help="seconds to finish calls on shutdown")
    parser.add_argument("--db-deadline", type=float, default=DB_DEADLINE_SECONDS,
                        help="deadline of each DB manager call in seconds")
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:  # run directly, not through the katib CLI
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    servicer = EarlyStoppingServicer(db=DBManagerClient(args.db_deadline))
    server = serve(args.port, host=args.host, servicer=servicer)
    print(f"early-stopping service listening on port {server.port}", flush=True)  # scripts read the port
    try:
        rpc_server.run_until_signal(server, args.grace)
    finally:
        servicer.db.close()
    log.info("early-stopping service stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
