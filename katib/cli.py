"""The ``katib`` command.

Exit codes: 0 done (experiment Succeeded), 1 the experiment Failed or a runtime error,
2 bad input (invalid experiment, unknown name, bad arguments), 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, Sequence

from katib.errors import KatibError, NotFoundError, ValidationError

log = logging.getLogger("katib")

EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 1, 2, 130


def _store(args: argparse.Namespace) -> Any:
    from katib.store import Store

    return Store(args.db) if getattr(args, "db", None) else Store()


def _print_errors(exc: ValidationError, source: str) -> None:
    sys.stderr.write(f"{source}: invalid experiment ({len(exc.errors)} error{'s' if len(exc.errors) != 1 else ''}):\n")
    for e in exc.errors:
        sys.stderr.write(f"  {e}\n")


def _load(path: str, extra_config_maps: Sequence[str] = ()) -> tuple[Any, Any]:
    """The experiment in ``path`` and the ConfigMaps of that file and ``extra_config_maps``
    (trial templates may live in a ConfigMap, as upstream's trial-templates)."""
    from katib.api.loader import ConfigMapLookup, load_experiment

    config_maps = ConfigMapLookup()
    exp = load_experiment(path, config_maps=config_maps)  # the file is read and parsed once
    for extra in extra_config_maps:
        config_maps.add_source(extra)
    return exp, config_maps


def _missing_config_map(exp: Any, config_maps: Any) -> str | None:
    source = exp.spec.trial_template.config_map if exp.spec.trial_template else None
    if source is None or config_maps.get(source.config_map_name, source.config_map_namespace) is not None:
        return None
    return f"{source.config_map_namespace}/{source.config_map_name}"


def _remote_addresses(pairs: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    env = os.environ.get("KATIB_SUGGESTION_ADDRESSES", "")
    for item in [p for p in env.split(",") if p] + list(pairs):
        name, sep, address = item.partition("=")
        if not sep or not name or not address:
            raise ValidationError(f"--suggestion-address: expected ALGORITHM=HOST:PORT, got {item!r}")
        out[name.strip()] = address.strip()
    return out


# -- commands --------------------------------------------------------------------------------
def cmd_validate(args: argparse.Namespace) -> int:
    from katib.api.loader import dump_yaml
    from katib.backends.local import prepare

    try:
        exp, config_maps = _load(args.file, args.config_map or [])
        missing = _missing_config_map(exp, config_maps)
        if missing:
            # In a cluster the ConfigMap is read from the API server; here it may simply not
            # be in this file. Everything else is checked; say what was not.
            sys.stderr.write(f"{args.file}: warning: spec.trialTemplate.configMap: ConfigMap {missing} is not in "
                             "this file, so its trial template was not checked; pass --config-map FILE to check it\n")
            config_maps = None
        prepare(exp, config_maps=config_maps, remote_algorithms=_remote_addresses([]), local=False)
    except ValidationError as exc:
        _print_errors(exc, args.file)
        return EXIT_INVALID
    sys.stdout.write(dump_yaml(exp))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from katib.backends import local

    remote = _remote_addresses(args.suggestion_address or [])
    try:
        exp, config_maps = _load(args.file, args.config_map or [])
        if args.name:
            exp.metadata.name = args.name
        if args.max_trial_count is not None:
            exp.spec.max_trial_count = args.max_trial_count
        local.prepare(exp, config_maps=config_maps, remote_algorithms=remote)
    except ValidationError as exc:
        _print_errors(exc, args.file)
        return EXIT_INVALID
    with local.exclusive(exp):  # before resuming or editing the stored experiment
        try:
            store = _store(args)
            exp, resumed = local.open_experiment(store, exp, config_maps=config_maps, remote_algorithms=remote)
        except ValidationError as exc:
            _print_errors(exc, args.file)
            return EXIT_INVALID
        return _run_opened(args, store, exp, resumed, config_maps, remote)


def cmd_resume(args: argparse.Namespace) -> int:
    """Run a stored experiment again without its file: the detached runner the dashboard and
    KatibClient start, and a way to resume from any directory."""
    from katib.backends import local
    from katib.backends.local.control import check_resumable

    remote = _remote_addresses(args.suggestion_address or [])
    store = _store(args)
    exp = store.get_experiment(args.name, args.namespace)
    check_resumable(exp)
    local.prepare(exp.copy(), remote_algorithms=remote)  # runnable here (e.g. its algorithm's address)
    args.again = f"katib resume {args.name}" + (f" -n {args.namespace}" if args.namespace != "default" else "")
    with local.exclusive(exp):
        exp = store.get_experiment(args.name, args.namespace)  # as it is now that no one else runs it
        return _run_opened(args, store, exp, True, None, remote)


def _run_opened(args: argparse.Namespace, store: Any, exp: Any, resumed: bool, config_maps: Any,
                remote: dict[str, str]) -> int:
    from katib import display
    from katib.backends import local
    from katib.backends.local.runner import SuggestionServiceUnavailable

    algorithm = exp.spec.algorithm.algorithm_name if exp.spec.algorithm else ""
    if algorithm in remote:
        from katib.rpc.suggestion_client import RemoteSuggester

        # One attempt per ask: the runner itself waits out an outage (--suggestion-timeout)
        # without holding up the trials it runs.
        suggester: Any = RemoteSuggester(remote[algorithm], retries=0)
    else:
        from suggestion.inprocess import InProcessSuggester

        suggester = InProcessSuggester()
    early_stopper = None
    if exp.spec.early_stopping is not None:
        from earlystop.inprocess import EarlyStoppingSession

        early_stopper = EarlyStoppingSession.for_experiment(exp.spec)
    print(f"{'Resuming' if resumed else 'Running'} experiment {exp.name!r} "
          f"({algorithm}, up to {exp.spec.max_trial_count or 'unlimited'} trials, "
          f"{exp.spec.parallel_trial_count} at a time); store: {store.url}", file=sys.stderr)
    progress = display.Progress() if not args.quiet else None
    holder: dict[str, Any] = {}
    again = getattr(args, "again", None) or f"katib run {args.file}"

    def on_sigint(signum: int, frame: Any) -> None:
        runner = holder.get("runner")
        if holder.get("interrupted"):
            raise KeyboardInterrupt
        holder["interrupted"] = True
        print("\nInterrupted: stopping running trials (Ctrl-C again to force)...", file=sys.stderr)
        if runner is not None:
            runner.interrupt()

    previous = signal.signal(signal.SIGINT, on_sigint)
    previous_term = signal.signal(signal.SIGTERM, on_sigint)
    options = local.RunOptions(base_dir=local.katib_home(), workdir=os.getcwd(), config_maps=config_maps,
                               suggestion_timeout=args.suggestion_timeout)
    try:
        exp = local.run(store, exp, suggester, early_stopper=early_stopper, on_progress=progress,
                        runner_hook=lambda r: holder.__setitem__("runner", r), options=options)
    except SuggestionServiceUnavailable as exc:
        exp = store.get_experiment(exp.name, exp.metadata.namespace)
        print(display.trial_table(exp, store.list_trials(exp.name, exp.metadata.namespace)))
        sys.stderr.write(f"\nkatib: {exc}.\nAny running trials were stopped and run again on resume. "
                         f"Once the suggestion service{' at ' + exc.address if exc.address else ''} is back, run "
                         f"`{again}` again to resume experiment {exp.name!r} "
                         f"(--suggestion-timeout SECONDS waits longer).\n")
        return EXIT_FAILED
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)
    runner = holder.get("runner")
    if runner is not None and runner.deleted:
        sys.stderr.write(f"katib: experiment {exp.name!r} was deleted while it ran; its trials were stopped\n")
        return EXIT_FAILED
    trials = store.list_trials(exp.name, exp.metadata.namespace)
    print(display.trial_table(exp, trials))
    if early_stopper is not None and runner is not None:
        stopped = sum(1 for t in trials if t.status.state == "EarlyStopped")
        print(f"\nEarly stopping: {stopped} trial(s) stopped early, saving {runner.steps_saved(trials)} "
              f"reported step(s).")
    if holder.get("interrupted"):
        print(f"\nInterrupted. Run `{again}` again to resume experiment {exp.name!r}.")
        return EXIT_INTERRUPTED
    if runner is not None and runner.stop_requested:
        print(f"\nStopped by a request. Run `{again}` again to resume experiment {exp.name!r}.")
        return EXIT_INTERRUPTED
    state = display.state_of(exp)
    reason = next((c.reason for c in (exp.status.conditions if exp.status else []) if c.type == state), "")
    print(f"\nExperiment {exp.name} {state} ({reason}).")
    opt = exp.status.current_optimal_trial if exp.status else None
    if opt is not None and opt.best_trial_name:
        print(f"Best trial: {display.optimum_text(exp)}")
    else:  # a finished experiment: "not yet" would promise a best that will not come
        metric = exp.spec.objective.objective_metric_name if exp.spec.objective else ""
        print(f"No trial reported a finite value of {metric!r}: there is no best trial.")
    return 0 if state == "Succeeded" else EXIT_FAILED


def _experiment_name(trial: Any) -> str | None:
    from katib.store import EXPERIMENT_LABEL

    name = trial.metadata.labels.get(EXPERIMENT_LABEL)
    return str(name) if name else None


def _trial_log(trial: Any) -> Path:
    """Where the local backend keeps a trial's output (``runs/<ns>/<experiment>/<trial>``)."""
    from katib.backends.local import katib_home
    from katib.backends.local.runner import trial_directory

    return trial_directory(katib_home(), trial.metadata.namespace or "default", _experiment_name(trial) or "",
                           trial.name) / "stdout.log"


def _get_trial(store: Any, name: str, namespace: str) -> Any:
    try:
        return store.get_trial(name, namespace)
    except NotFoundError as exc:
        try:
            store.get_experiment(name, namespace)
        except NotFoundError:
            hint = ("`katib get trials EXPERIMENT` lists an experiment's trials "
                    "(`katib get experiments` lists the experiments)")
        else:
            hint = f"{name!r} is an experiment: `katib get trials {name}` lists its trials"
        raise NotFoundError(f"{exc}; {hint}") from None


def _experiment_of(store: Any, trial: Any) -> Any:
    name = _experiment_name(trial)
    return store.get_experiment(name, trial.metadata.namespace or "default") if name else None


def cmd_get(args: argparse.Namespace) -> int:
    from katib import display

    store = _store(args)
    wide = args.output == "wide"
    if args.resource in ("experiments", "experiment", "exp"):
        exps = [store.get_experiment(args.name, args.namespace)] if args.name else store.list_experiments(args.namespace)
        if args.output in ("json", "yaml"):
            items = [e.to_dict() for e in exps]
            display.dump(items[0] if args.name else {"apiVersion": "v1", "kind": "List", "items": items}, args.output)
        elif args.output == "name":
            _print_lines(display.names("experiment", exps))
        else:
            print(display.experiment_rows(exps, wide=wide))
        return 0
    if not args.name:
        return _usage_error("katib get trials: name the experiment (katib get trials EXPERIMENT), "
                            "or a trial (katib get trial NAME)")
    if args.resource == "trial":
        trial = _get_trial(store, args.name, args.namespace)
        if args.output in ("json", "yaml"):
            display.dump(trial.to_dict(), args.output)
            return 0
        trials, exp = [trial], _experiment_of(store, trial)
        if exp is None and args.output != "name":
            raise NotFoundError(f"trial {args.name}: its experiment is not recorded (no experiment label); "
                                f"`katib get trial {args.name} -o yaml` shows it")
    else:
        exp = store.get_experiment(args.name, args.namespace)
        trials = store.list_trials(args.name, args.namespace)
        if args.output in ("json", "yaml"):
            display.dump({"apiVersion": "v1", "kind": "List", "items": [t.to_dict() for t in trials]}, args.output)
            return 0
    if args.output == "name":
        _print_lines(display.names("trial", trials))
    else:
        print(display.trial_table(exp, trials, wide=wide))
    return 0


def _usage_error(message: str) -> int:
    sys.stderr.write(f"katib: {message}\n")
    return EXIT_INVALID


def _print_lines(text: str) -> None:
    if text:
        print(text)


def cmd_describe(args: argparse.Namespace) -> int:
    from katib import describe, display

    store = _store(args)
    if args.resource == "trial":
        trial = _get_trial(store, args.name, args.namespace)
        if args.output in ("json", "yaml"):
            display.dump(trial.to_dict(), args.output)
            return 0
        print(describe.trial_text(trial, _experiment_of(store, trial), _trial_log(trial).parent, _trial_log))
        return 0
    exp = store.get_experiment(args.name, args.namespace)
    if args.output in ("json", "yaml"):
        display.dump(exp.to_dict(), args.output)
        return 0
    print(describe.experiment_text(exp, store.list_trials(args.name, args.namespace), _trial_log))
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from katib import logs

    if args.tail is not None and args.tail < 0:
        return _usage_error(f"katib logs: --tail: expected a line count of 0 or more, got {args.tail}")
    store = _store(args)
    trial = _get_trial(store, args.trial, args.namespace)

    log = _trial_log(trial)

    def ended() -> bool:
        from katib.api.model import TrialCondition

        if store.get_trial(args.trial, args.namespace).status.state in TrialCondition.COMPLETED:
            return True
        # A trial whose runner was killed stays Running in the store until `katib run` is
        # started again; its directory says whether its process has ended meanwhile.
        return _process_ended(log.parent)

    return logs.show(log, sys.stdout, tail=args.tail, follow=args.follow, ended=ended, trial=trial.name)


def _process_ended(directory: Path) -> bool:
    """Whether the local trial process recorded in ``directory`` has ended: it wrote its exit
    status, or it was started and nothing holds its lock any more."""
    from katib.backends.local.process import TrialProcess

    proc = TrialProcess(directory)
    if proc.exit_code() is not None:
        return True
    try:
        return proc.recorded() and not proc.adopt()
    except RuntimeError:  # a lock held by a process that recorded no pid: not ours to judge
        return False


def _version_text() -> str:
    import platform

    from katib.api.model import API_VERSION

    return (f"katib-lite {_package_version()}\n"
            f"API: {API_VERSION} (gRPC api.v1.beta1)\n"
            f"Python: {platform.python_version()} ({platform.python_implementation()})")


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("katib-lite")
    except PackageNotFoundError:  # run from a source tree that is not installed
        import katib

        return katib.__version__


class _VersionAction(argparse.Action):
    """``katib --version``: as ``katib version``; the package metadata is read only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(_version_text())
        parser.exit(0)


def cmd_version(args: argparse.Namespace) -> int:
    print(_version_text())
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from katib.backends.local import control

    control.delete(_store(args), args.name, args.namespace)  # a running one is stopped first
    print(f"experiment {args.name!r} deleted")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from katib.ui import server

    missing = server.missing_extra()
    if missing is not None:
        sys.stderr.write(f"katib ui: the dashboard needs the ui extra ({missing} is not installed): "
                         "pip install 'katib-lite[ui]'\n")
        return EXIT_INVALID
    return server.serve(args)


def cmd_stop(args: argparse.Namespace) -> int:
    from katib.backends.local import control

    store = _store(args)
    pid = control.runner_pid(args.name, args.namespace)
    store.get_experiment(args.name, args.namespace)  # an unknown name is an error, not "not running"
    if pid is None:
        print(f"experiment {args.name!r} is not running")
        return 0
    try:
        control.request_stop(store, args.name, args.namespace, wait=not args.no_wait, timeout=args.timeout)
    except TimeoutError as exc:
        sys.stderr.write(f"katib: {exc}\n")
        return EXIT_FAILED
    done = "asked to stop" if args.no_wait else "stopped"
    print(f"experiment {args.name!r} {done} (runner pid {pid}); `katib resume {args.name}` resumes it")
    return 0


def _delegate(module: str, argv: list[str]) -> int:
    import importlib

    result = importlib.import_module(module).main(argv)
    return int(result or 0)


# -- parser ----------------------------------------------------------------------------------
_DEFAULT_SUGGESTION_TIMEOUT = "300"


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds (0 or more), got {text!r}")
    return value


def _whole(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="katib", description="Hyperparameter search with Katib's contract.")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    p.add_argument("--version", action=_VersionAction, help="print the katib-lite, API and Python versions and exit")
    sub = p.add_subparsers(dest="command", required=True)

    def db(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--db", help="database URL (default: $KATIB_DB_URL or sqlite:///~/.katib/katib.db)")
        sp.add_argument("-n", "--namespace", default="default")

    v = sub.add_parser("validate", help="check an experiment file; print it defaulted")
    v.add_argument("file")
    v.add_argument("--config-map", action="append", metavar="FILE",
                   help="a manifest file with ConfigMaps that hold trial templates (repeatable)")
    v.set_defaults(func=cmd_validate)

    r = sub.add_parser("run", help="run an experiment locally (resumes it if it exists)")
    r.add_argument("file")
    r.add_argument("--name", help="experiment name (default: metadata.name)")
    r.add_argument("--suggestion-address", action="append", metavar="ALGORITHM=HOST:PORT",
                   help="use a remote Katib-compatible suggestion service for ALGORITHM")
    r.add_argument("--suggestion-timeout", type=_seconds, metavar="SECONDS",
                   default=os.environ.get("KATIB_SUGGESTION_TIMEOUT", _DEFAULT_SUGGESTION_TIMEOUT),
                   help="how long to wait for a suggestion service that cannot be reached, asking again with "
                        "backoff while running trials go on, before stopping them (resumable) "
                        "(default: $KATIB_SUGGESTION_TIMEOUT or %(default)s)")
    r.add_argument("--max-trial-count", type=_whole, metavar="N",
                   help="override spec.maxTrialCount; raising it resumes an experiment that ended by reaching it")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    r.add_argument("--config-map", action="append", metavar="FILE",
                   help="a manifest file with ConfigMaps that hold trial templates (repeatable)")
    db(r)
    r.set_defaults(func=cmd_run)

    g = sub.add_parser("get", help="list experiments, an experiment's trials, or one trial",
                       description="katib get experiments [NAME] | katib get trials EXPERIMENT | "
                                   "katib get trial NAME")
    g.add_argument("resource", choices=["experiments", "experiment", "exp", "trials", "trial"])
    g.add_argument("name", nargs="?")
    g.add_argument("-o", "--output", choices=["table", "wide", "name", "json", "yaml"], default="table",
                   help="wide: more columns; name: kind/NAME lines; json/yaml: full objects, every digit")
    db(g)
    g.set_defaults(func=cmd_get)

    d = sub.add_parser("describe", help="show an experiment or a trial in detail, with why trials failed")
    d.add_argument("resource", choices=["experiment", "experiments", "exp", "trial"])
    d.add_argument("name")
    d.add_argument("-o", "--output", choices=["text", "json", "yaml"], default="text")
    db(d)
    d.set_defaults(func=cmd_describe)

    lg = sub.add_parser("logs", help="print a trial's output (-f: follow it until the trial ends)")
    lg.add_argument("trial")
    lg.add_argument("-f", "--follow", action="store_true", help="keep printing until the trial ends")
    lg.add_argument("--tail", type=int, metavar="N", help="only the last N lines")
    db(lg)
    lg.set_defaults(func=cmd_logs)

    ver = sub.add_parser("version", help="the katib-lite, API and Python versions")
    ver.set_defaults(func=cmd_version)

    rs = sub.add_parser("resume", help="run a stored experiment again, without its file",
                        description="Resume an interrupted or stopped experiment, or continue one whose "
                                    "maxTrialCount was raised, from the store alone.")
    rs.add_argument("name")
    rs.add_argument("--suggestion-address", action="append", metavar="ALGORITHM=HOST:PORT",
                    help="use a remote Katib-compatible suggestion service for ALGORITHM")
    rs.add_argument("--suggestion-timeout", type=_seconds, metavar="SECONDS",
                    default=os.environ.get("KATIB_SUGGESTION_TIMEOUT", _DEFAULT_SUGGESTION_TIMEOUT),
                    help="as for katib run (default: $KATIB_SUGGESTION_TIMEOUT or %(default)s)")
    rs.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    db(rs)
    rs.set_defaults(func=cmd_resume)

    st = sub.add_parser("stop", help="stop a running experiment (its runner stops its trials; resumable)")
    st.add_argument("resource", choices=["experiment", "experiments", "exp"])
    st.add_argument("name")
    st.add_argument("--no-wait", action="store_true", help="return once asked, not once stopped")
    st.add_argument("--timeout", type=_seconds, default=60.0, metavar="SECONDS",
                    help="how long to wait for the runner to stop (default: %(default)s)")
    db(st)
    st.set_defaults(func=cmd_stop)

    rm = sub.add_parser("delete", help="delete an experiment, its trials and their metrics (stops it first)")
    rm.add_argument("resource", choices=["experiment", "experiments", "exp"])
    rm.add_argument("name")
    db(rm)
    rm.set_defaults(func=cmd_delete)

    from katib.ui.server import add_parser as add_ui_parser

    add_ui_parser(sub).set_defaults(func=cmd_ui)

    # Listed for `katib --help`; `main` hands their arguments to the service modules, so
    # only `--help` (or nothing) of `katib suggestion` and `katib earlystop` reaches these.
    for name, helptext in [
        ("suggestion", "the gRPC Suggestion service: katib suggestion serve --port 6789"),
        ("earlystop", "the gRPC EarlyStopping service: katib earlystop serve --port 6788"),
    ]:
        service = sub.add_parser(name, help=helptext, description=f"{helptext}. "
                                 f"`katib {name} serve --help` lists its options.")
        service.add_subparsers(dest="action", required=True, metavar="serve").add_parser(
            "serve", help="serve the API over gRPC", add_help=False)
    for name, helptext in [
        ("db-manager", "the gRPC DBManager service: katib db-manager --port 6789"),
        ("controller", "the Kubernetes controller: katib controller --help"),
    ]:
        sub.add_parser(name, help=helptext, add_help=False)
    return p


# Services parse their own options (`katib db-manager --port 6789`): argparse.REMAINDER
# does not take an option as its first item, so these are dispatched before parsing.
_SERVICES = {
    ("suggestion", "serve"): "suggestion.service",
    ("earlystop", "serve"): "earlystop.service",
    ("db-manager",): "katib.store.dbmanager",
    ("controller",): "katib.backends.kubernetes.main",
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    for prefix, module in _SERVICES.items():
        if tuple(argv[: len(prefix)]) == prefix:
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
            logging.getLogger("alembic").setLevel(logging.WARNING)  # migrations chatter at INFO
            return _delegate(module, argv[len(prefix):])
    parser = build_parser()
    if not argv:
        parser.print_help(sys.stderr)
        return EXIT_INVALID
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except ValidationError as exc:
        _print_errors(exc, getattr(args, "file", "katib"))
        return EXIT_INVALID
    except NotFoundError as exc:
        sys.stderr.write(f"katib: {exc}\n")
        return EXIT_INVALID
    except KatibError as exc:
        sys.stderr.write(f"katib: {exc}\n")
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `katib get trials X | head`: the reader has what it wanted. Point stdout at
        # /dev/null so the interpreter's final flush does not fail again, and exit as a
        # process killed by SIGPIPE would (128 + 13), without a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
