"""tune() on Kubernetes: build the Experiment, create it through KatibClient, optionally wait.

The trial's container runs ``python3 -u -c <katib.sdk.objective's source> OPTIONS -- TYPES
NAME ${trialParameters.NAME} ...``: the runner is shipped in the command itself, so any image
with Python 3 runs it, the katib package not required (``katib.report_metrics`` with the StdOut
collector is provided by a stand-in). The objective travels as

- ``source`` (default, upstream's way): ``inspect.getsource`` + ``textwrap.dedent``; works on
  any Python 3, but the function must be self-contained (imports inside, no closures);
- ``pickle``: cloudpickle, base64 in the command; closures and lambdas too, but the image
  must have the same Python minor version (``base_image`` defaults to python:X.Y-slim of
  this interpreter) and cloudpickle is installed first. A function whose source cannot be
  read (a lambda, a notebook cell without source) is pickled automatically.

Parameters reach the function as typed JSON-decoded values either way. The kubelet expands
``$(VAR)`` in command and args, so every ``$`` we ship is doubled (``$$`` is a literal ``$``).
"""

from __future__ import annotations

import ast
import base64
import inspect
import json
import logging
import textwrap
import time
from pathlib import Path
from typing import Any, Callable

from katib.sdk import objective as runner_module
from katib.sdk.experiment import ExperimentArgs, Plan, Trainer, build_experiment, objective_options, python_version
from katib.sdk.result import TuneResult

__all__ = ["tune_on_kubernetes", "runner_source", "transport_options", "kubernetes_command"]

log = logging.getLogger(__name__)

_TERMINAL = ("Succeeded", "Failed")
_PLACEHOLDER = "${trialParameters."


def _k8s_literal(text: str) -> str:
    """``text`` as a literal in a container's command: the kubelet turns ``$$`` into ``$``."""
    return text.replace("$", "$$")


def runner_source() -> str:
    """``katib.sdk.objective`` without docstrings or comments: smaller, and free of the
    ``${trialParameters...}`` its documentation mentions (Katib would substitute it)."""
    tree = ast.parse(Path(runner_module.__file__).read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree)


def _source_of(fn: Callable[..., Any]) -> str | None:
    if getattr(fn, "__name__", "<lambda>") == "<lambda>":
        return None
    try:
        return textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        return None


def transport_options(objective: Callable[..., Any], plan: Plan, transport: str,
                      packages: list[str]) -> tuple[list[str], list[str]]:
    """(options carrying the objective and fixed parameters, packages to install)."""
    if transport not in ("source", "pickle"):
        raise ValueError(f"objective_transport must be 'source' or 'pickle', got {transport!r}")
    packages = list(packages)
    source = _source_of(objective) if transport == "source" else None
    if transport == "source" and source is None:
        log.info("tune(): the source of %r cannot be read; shipping it pickled (cloudpickle)", objective)
    options: list[str] = []
    if source is not None:
        if _PLACEHOLDER in source:
            raise ValueError("the objective's source contains '${trialParameters.', which Katib would "
                             "substitute; use objective_transport='pickle'")
        options += ["--objective-source", _k8s_literal(source), "--objective-name", objective.__name__]
    else:
        import cloudpickle  # type: ignore[import-untyped]

        payload = base64.b64encode(cloudpickle.dumps(objective)).decode()
        options += ["--objective-pickle", payload, "--python-version", python_version()]
        if not any(p.split("=")[0].split(">")[0].split("<")[0].strip() == "cloudpickle" for p in packages):
            packages.append("cloudpickle")
    if plan.fixed:
        try:
            text = json.dumps(plan.fixed, sort_keys=True)
        except TypeError as exc:
            raise ValueError(f"parameters: the values that are not searched must be JSON on Kubernetes ({exc}); "
                             "pass numbers, strings, lists or dicts") from None
        if _PLACEHOLDER in text:
            raise ValueError("parameters: a fixed value contains '${trialParameters.', which Katib would substitute")
        options += ["--fixed", _k8s_literal(text)]
    return options, packages


def kubernetes_command(objective: Callable[..., Any], plan: Plan, args: ExperimentArgs, *, transport: str = "source",
                       packages: list[str] | None = None, pip_index_urls: list[str] | None = None) -> list[str]:
    """The primary container's command of a tune() trial in a pod."""
    options, packages = transport_options(objective, plan, transport, list(packages or []))
    pip: list[str] = []
    for package in packages:
        pip += ["--pip", package]
    for url in pip_index_urls or []:
        pip += ["--pip-index-url", url]
    return ["python3", "-u", "-c", _k8s_literal(runner_source()), *objective_options(args), *pip, *options,
            *plan.trial_args()]


def tune_on_kubernetes(objective: Callable[..., Any], plan: Plan, args: ExperimentArgs, *, env: list[dict[str, Any]],
                       trainer: Trainer | None, client: Any, wait: bool, namespace_given: bool,
                       base_image: str | None, resources_per_trial: dict[str, Any] | None,
                       packages_to_install: list[str], pip_index_urls: list[str], transport: str,
                       progress: bool, poll_interval: float = 5.0) -> str | TuneResult:
    if client is None:
        from katib.sdk.client import KatibClient

        client = KatibClient()
    if not namespace_given:
        args.namespace = client.namespace
    command = kubernetes_command(objective, plan, args, transport=transport, packages=packages_to_install,
                                 pip_index_urls=pip_index_urls)
    image = base_image or f"docker.io/python:{python_version()}-slim"
    exp = build_experiment(args, plan, command, image=image, env=env, resources_per_trial=resources_per_trial,
                           trainer=trainer)
    client.create_experiment(exp, namespace=args.namespace)
    if progress:
        print(f"Experiment {args.name!r} created in namespace {args.namespace!r}", flush=True)
    if not wait:
        return args.name
    bar = None
    if progress:
        from katib.sdk.progress import TuneProgress

        bar = TuneProgress(args.max_trial_count, line_interval=poll_interval)
    while True:
        current = client.get_experiment(args.name, args.namespace)
        if bar is not None and current.status is not None:
            bar(current, [])
        conds = current.status.conditions if current.status else []
        if any(c.type in _TERMINAL and c.status == "True" for c in conds):
            break
        time.sleep(poll_interval)
    if bar is not None:
        bar.close(current)
    result = TuneResult.from_experiment(current, client.list_trials(args.name, args.namespace))
    if progress:
        print(result.summary(), flush=True)
    return result
