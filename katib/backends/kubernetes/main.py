"""``katib controller``: run the Kubernetes controller until SIGTERM/SIGINT.

    katib controller [--kubeconfig PATH] [--namespace NS] [--suggestion-address ALGO=HOST:PORT ...]
                     [--earlystopping-address ALGO=HOST:PORT ...]
                     [--db-manager-address HOST:PORT | --db URL] [--poll-interval S] ...
                     [--leader-elect [--leader-elect-namespace NS] [--leader-elect-id NAME] ...]

In a pod it uses the service account; elsewhere the kubeconfig. Algorithms run in the
controller's process unless an address maps their name to a Suggestion service; early
stopping likewise with an EarlyStopping service.

With ``--leader-elect`` (the manifests' setting) it reconciles nothing until it holds the
Lease (``leader``); it exits with status 1 as soon as it loses the lease, so its Deployment
restarts it as a candidate, and on SIGTERM it finishes its reconciles and then releases the
lease so a waiting replica takes over at once. Exit statuses: 0 stopped, 1 lease lost,
2 no cluster or bad leader-election settings.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Callable, Sequence

from kubernetes.config import ConfigException

from katib.backends.kubernetes.client import Kube, load_client
from katib.backends.kubernetes.controller import Controller, ControllerOptions
from katib.backends.kubernetes.leader import LeaderElectionConfig, LeaderElector, default_identity
from katib.backends.kubernetes.render import RenderOptions
from katib.backends.kubernetes.services import DBManagerClient, ObservationDB, Services, StoreDB

__all__ = ["main", "build_parser", "build_controller", "serve"]

log = logging.getLogger(__name__)

EXIT_LEASE_LOST = 1
EXIT_SETUP = 2
# Where a pod finds its own namespace when the downward API does not pass POD_NAMESPACE.
_SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _pairs(items: Sequence[str], env: str, flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in [p for p in os.environ.get(env, "").split(",") if p] + list(items):
        name, sep, address = item.partition("=")
        if not sep or not name.strip() or not address.strip():
            raise SystemExit(f"{flag}: expected ALGORITHM=HOST:PORT, got {item!r}")
        out[name.strip()] = address.strip()
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="katib controller", description=(
        "Reconcile Katib Experiments (kubeflow.org/v1beta1) in a Kubernetes cluster: create Trials and their "
        "workloads, collect metrics from trial pods, decide when experiments end."))
    p.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster service account, else ~/.kube/config)")
    p.add_argument("--context", help="kubeconfig context")
    p.add_argument("--namespace", default=os.environ.get("KATIB_NAMESPACE") or None,
                   help="watch only this namespace (default: all)")
    p.add_argument("--suggestion-address", action="append", default=[], metavar="ALGORITHM=HOST:PORT",
                   help="serve ALGORITHM with a Katib-compatible Suggestion service (repeatable; also "
                        "$KATIB_SUGGESTION_ADDRESSES, comma-separated)")
    p.add_argument("--earlystopping-address", action="append", default=[], metavar="ALGORITHM=HOST:PORT",
                   help="apply the rules of a Katib-compatible EarlyStopping service for ALGORITHM (repeatable; "
                        "also $KATIB_EARLYSTOPPING_ADDRESSES, comma-separated; needs --db-manager-address)")
    db = p.add_mutually_exclusive_group()
    db.add_argument("--db-manager-address", default=os.environ.get("KATIB_DB_MANAGER_ADDRESS") or None,
                    metavar="HOST:PORT", help="DBManager gRPC service that stores observations")
    db.add_argument("--db", metavar="URL", help="store observations straight into this SQL database")
    p.add_argument("--poll-interval", type=float, default=2.0, help="seconds between reads of running trials")
    p.add_argument("--resync-period", type=float, default=30.0, help="seconds between full resyncs")
    p.add_argument("--workers", type=int, default=4, help="experiments reconciled in parallel")
    p.add_argument("--rpc-timeout", type=float, default=60.0, help="deadline of each suggestion call (seconds)")
    p.add_argument("--rpc-retries", type=int, default=4, help="retries of a failed suggestion/DB call")
    p.add_argument("--metrics-collector-image", default="python:3.12-slim",
                   help="image of the File collector sidecar (needs python3)")
    p.add_argument("--metrics-collector-python", default="python3",
                   help="python executable in the File collector sidecar image")
    le = p.add_argument_group(
        "leader election", "Several controllers may run against one cluster (replicas, a developer's next to the "
        "cluster's); with --leader-elect only the holder of a coordination.k8s.io Lease reconciles.")
    le.add_argument("--leader-elect", action="store_true",
                    help="reconcile only while holding the lease (on in the manifests; off by default)")
    le.add_argument("--leader-elect-namespace", default=os.environ.get("POD_NAMESPACE") or None, metavar="NS",
                    help="namespace of the lease (default: $POD_NAMESPACE, else the pod's own namespace; "
                         "required outside a cluster: use the in-cluster controller's, kubeflow in the manifests, "
                         "to take turns with it)")
    le.add_argument("--leader-elect-id", default="katib-controller-lock", metavar="NAME",
                    help="name of the lease (default: katib-controller-lock)")
    le.add_argument("--leader-elect-lease-duration", type=float, default=15.0, metavar="S",
                    help="seconds a candidate waits after the last renewal before taking over")
    le.add_argument("--leader-elect-renew-deadline", type=float, default=10.0, metavar="S",
                    help="seconds the leader keeps trying to renew before it gives up and exits")
    le.add_argument("--leader-elect-retry-period", type=float, default=2.0, metavar="S",
                    help="seconds between attempts to acquire or renew")
    p.add_argument("-v", "--verbose", action="count", default=0)
    return p


def election_config(args: argparse.Namespace) -> LeaderElectionConfig:
    """The lease settings from the flags; ValueError names what is wrong."""
    namespace = args.leader_elect_namespace
    if not namespace and _SERVICE_ACCOUNT_NAMESPACE.is_file():
        namespace = _SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    if not namespace:
        raise ValueError("--leader-elect-namespace is required outside a cluster: give the namespace of the lease "
                         "the other controllers use (kubeflow for the manifests' controller)")
    return LeaderElectionConfig(
        namespace=namespace, name=args.leader_elect_id, identity=default_identity(),
        lease_duration=args.leader_elect_lease_duration, renew_deadline=args.leader_elect_renew_deadline,
        retry_period=args.leader_elect_retry_period)


def build_controller(args: argparse.Namespace, kube: Kube | None = None,
                     leading: Callable[[], bool] | None = None) -> Controller:
    db: ObservationDB | None = None
    if args.db_manager_address:
        db = DBManagerClient(args.db_manager_address, retries=args.rpc_retries)
    elif args.db:
        db = StoreDB(args.db)
    earlystopping = _pairs(args.earlystopping_address, "KATIB_EARLYSTOPPING_ADDRESSES", "--earlystopping-address")
    if earlystopping and not args.db_manager_address:
        raise SystemExit("--earlystopping-address: the early-stopping service reads completed trials' logs "
                         "from a DB manager; give --db-manager-address too")
    services = Services(_pairs(args.suggestion_address, "KATIB_SUGGESTION_ADDRESSES", "--suggestion-address"), db,
                        suggestion_timeout=args.rpc_timeout, suggestion_retries=args.rpc_retries,
                        earlystopping_addresses=earlystopping, db_manager_address=args.db_manager_address)
    if kube is None:
        kube = Kube(load_client(args.kubeconfig, args.context))
    options = ControllerOptions(
        namespace=args.namespace, workers=args.workers, poll_interval=args.poll_interval,
        resync_period=args.resync_period,
        render=RenderOptions(sidecar_image=args.metrics_collector_image,
                             sidecar_python=args.metrics_collector_python,
                             db_manager_address=args.db_manager_address),
        leading=leading)
    return Controller(kube, services, options)


def _wait(stop: threading.Event) -> None:
    # In short waits, so the main thread gets to run signal handlers promptly.
    while not stop.wait(1.0):
        pass


def serve(controller: Controller, elector: LeaderElector | None, stop: threading.Event) -> int:
    """Run ``controller`` until ``stop`` is set (0) or, with ``elector``, the lease is lost (1).

    As controller-runtime's manager: nothing starts before the lease is held; a lost lease
    ends the process at once (without waiting for workers, which the ``leading`` check
    already keeps from writing); a requested stop lets the workers finish, and only then
    releases the lease, so the successor never overlaps with our last reconcile.
    """
    if elector is None:
        controller.start()
        _wait(stop)
        controller.stop()
        return 0
    if not elector.acquire(stop):
        log.info("stopped before becoming the leader")
        return 0
    lost = threading.Event()
    stop_renewing = threading.Event()

    def renew() -> None:
        if not elector.keep_renewing(stop_renewing):
            lost.set()
            controller.request_stop()
            stop.set()

    renewer = threading.Thread(target=renew, name="katib-leader-renew", daemon=True)
    renewer.start()
    try:
        controller.start()
    except BaseException:
        # It cannot run (e.g. discovery failed): let another candidate have the lease now.
        stop_renewing.set()
        renewer.join()
        elector.release()
        raise
    _wait(stop)
    if lost.is_set():
        log.error("leader election lost: exiting so that a new candidate takes over")
        return EXIT_LEASE_LOST
    controller.stop()
    stop_renewing.set()
    renewer.join()
    if lost.is_set():  # lost while the workers were finishing: there is nothing to release
        return EXIT_LEASE_LOST
    elector.release()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verbose or not logging.getLogger().handlers:
        level = logging.INFO if args.verbose <= 1 else logging.DEBUG
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    try:
        elector_config = election_config(args) if args.leader_elect else None
    except ValueError as exc:
        sys.stderr.write(f"katib controller: {exc}\n")
        return EXIT_SETUP
    try:
        kube = Kube(load_client(args.kubeconfig, args.context))
        elector = LeaderElector(kube, elector_config) if elector_config is not None else None
        # The controller asks before every reconcile and every trial it creates: a worker
        # that is mid-way when the lease goes stops writing even before the process exits.
        controller = build_controller(args, kube, (lambda: elector.leading) if elector is not None else None)
    except ConfigException as exc:
        sys.stderr.write(f"katib controller: cannot reach a cluster: {exc}\n")
        return EXIT_SETUP
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping after the current reconciles", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    code = serve(controller, elector, stop)
    if code == EXIT_LEASE_LOST:
        return code  # workers may still be unwinding; closing their clients under them helps no one
    controller.services.close()
    controller.kube.close()
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
