"""``katib controller``: run the Kubernetes controller until SIGTERM/SIGINT.

    katib controller [--kubeconfig PATH] [--namespace NS] [--suggestion-address ALGO=HOST:PORT ...]
                     [--earlystopping-address ALGO=HOST:PORT ...]
                     [--db-manager-address HOST:PORT | --db URL] [--poll-interval S] ...

In a pod it uses the service account; elsewhere the kubeconfig. Algorithms run in the
controller's process unless an address maps their name to a Suggestion service; early
stopping likewise with an EarlyStopping service.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from types import FrameType
from typing import Sequence

from kubernetes.config import ConfigException

from katib.backends.kubernetes.client import Kube, load_client
from katib.backends.kubernetes.controller import Controller, ControllerOptions
from katib.backends.kubernetes.render import RenderOptions
from katib.backends.kubernetes.services import DBManagerClient, ObservationDB, Services, StoreDB

__all__ = ["main", "build_parser", "build_controller"]

log = logging.getLogger(__name__)


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
    p.add_argument("-v", "--verbose", action="count", default=0)
    return p


def build_controller(args: argparse.Namespace) -> Controller:
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
    kube = Kube(load_client(args.kubeconfig, args.context))
    options = ControllerOptions(
        namespace=args.namespace, workers=args.workers, poll_interval=args.poll_interval,
        resync_period=args.resync_period,
        render=RenderOptions(sidecar_image=args.metrics_collector_image,
                             sidecar_python=args.metrics_collector_python,
                             db_manager_address=args.db_manager_address))
    return Controller(kube, services, options)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verbose or not logging.getLogger().handlers:
        level = logging.INFO if args.verbose <= 1 else logging.DEBUG
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    try:
        controller = build_controller(args)
    except ConfigException as exc:
        sys.stderr.write(f"katib controller: cannot reach a cluster: {exc}\n")
        return 2

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping after the current reconciles", signum)
        controller.request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    controller.start()
    controller.wait()
    controller.stop()
    controller.services.close()
    controller.kube.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
