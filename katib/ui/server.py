"""``katib ui``: open the client the options name and serve the dashboard with uvicorn.

Locally the dashboard reads the store ``--db`` (default ``$KATIB_DB_URL`` or
``~/.katib/katib.db``); with ``--kubeconfig``, ``--context`` or ``--in-cluster`` it reads the
cluster's Experiments and Trials (read-only unless ``--allow-actions``). The server starts
even when the store or the cluster cannot be reached: the pages say why and the next
request tries again.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

__all__ = ["serve", "client_factory", "REQUIRED"]

log = logging.getLogger(__name__)

REQUIRED = ("starlette", "uvicorn")
# Stop open event streams this long after Ctrl-C instead of waiting for the pages to close.
_GRACE = 2


def missing_extra() -> str | None:
    """The first module of the ``ui`` extra that cannot be imported, or None."""
    import importlib.util

    for module in (*REQUIRED, "plotly"):
        if importlib.util.find_spec(module) is None:
            return module
    return None


def is_loopback(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1", "[::1]") or host.startswith("127.")


def kubernetes_mode(args: argparse.Namespace) -> bool:
    return bool(args.kubeconfig or args.context or args.in_cluster)


def client_factory(args: argparse.Namespace) -> tuple[Any, str]:
    """A function that opens the KatibClient ``args`` name, and what it reads (for messages)."""
    from katib.sdk.client import KatibClient
    from katib.ui.backend import hide_password

    if not kubernetes_mode(args):
        from katib.store import default_url

        url = args.db or default_url()
        return (lambda: KatibClient(backend="local", db_url=url, namespace=args.namespace)), hide_password(url)
    if args.in_cluster:
        def in_cluster() -> Any:
            from katib.backends.kubernetes.client import load_client

            # load_client prefers the pod's service account when no kubeconfig is given.
            return KatibClient(client_configuration=load_client().configuration, namespace=args.namespace)
        return in_cluster, "in-cluster service account"
    where = " ".join(x for x in (f"kubeconfig {args.kubeconfig}" if args.kubeconfig else "",
                                 f"context {args.context}" if args.context else "") if x)
    return (lambda: KatibClient(config_file=args.kubeconfig, context=args.context, namespace=args.namespace)), where


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from katib.ui.app import create_app, plotly_js

    logging.getLogger("alembic").setLevel(logging.WARNING)  # migrations chatter at INFO (-v)
    factory, source = client_factory(args)
    kube = kubernetes_mode(args)
    # Actions run commands on this machine (a created experiment's trials) or change a cluster:
    # by default only for a local store served on a loopback address.
    allow_actions = bool(args.allow_actions) or (not kube and is_loopback(args.host))
    why = ("this dashboard serves Kubernetes (the manifests grant it read-only access)" if kube else
           f"this dashboard listens on {args.host}, beyond this machine")
    app = create_app(factory, backend="kubernetes" if kube else "local", namespace=args.namespace,
                     allow_actions=allow_actions, read_only_reason=why, source=source,
                     db_manager=args.db_manager, host=args.host)
    if plotly_js() is None:
        log.warning("plotly is not installed, so the dashboard shows no charts: pip install 'katib-lite[ui]'")
    shown = f"[{args.host}]" if ":" in args.host else args.host
    what = f"Kubernetes ({source})" if kube else f"the store {source}"
    if not allow_actions:
        what += ", read-only"

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started:  # only once it listens: the address is then worth opening
                print(f"katib ui: serving {what} at http://{shown}:{args.port}/ (Ctrl-C to stop)", file=sys.stderr,
                      flush=True)

    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=_GRACE, lifespan="on")
    server = Server(config)
    try:
        server.run()
    except SystemExit:  # uvicorn's answer to an address it cannot listen on (it logged why)
        sys.stderr.write(f"katib ui: cannot listen on {shown}:{args.port}; choose another with --port or --host\n")
        return 1
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """The ``katib ui`` subcommand's options."""
    u = sub.add_parser("ui", help="serve the web dashboard (local store or Kubernetes)",
                       description="Serve the web dashboard: experiments, trials, charts and live updates of the "
                                   "local store, or of a cluster's experiments with --kubeconfig / --in-cluster.")
    u.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    u.add_argument("--port", type=int, default=8080, help="port to listen on (default: %(default)s)")
    u.add_argument("--db", help="store URL (default: $KATIB_DB_URL or sqlite:///~/.katib/katib.db)")
    u.add_argument("-n", "--namespace", default=None,
                   help="namespace to show (default: 'default', or the kubeconfig context's)")
    k = u.add_argument_group("Kubernetes")
    k.add_argument("--kubeconfig", metavar="PATH", help="read the cluster of this kubeconfig")
    k.add_argument("--context", help="kubeconfig context to use")
    k.add_argument("--in-cluster", action="store_true", help="read the cluster this pod runs in")
    k.add_argument("--db-manager", metavar="ADDRESS",
                   help="DB manager (HOST:PORT) for trials' metrics per step on Kubernetes "
                        "(default: the in-cluster katib-db-manager)")
    u.add_argument("--allow-actions", action="store_true",
                   help="allow creating, changing, stopping and deleting experiments on Kubernetes, or with a "
                        "--host other than a loopback address (read-only otherwise; locally on 127.0.0.1 they "
                        "are allowed)")
    return u  # type: ignore[no-any-return]
