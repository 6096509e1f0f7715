"""Run a ``tune()`` objective as a trial: ``python3 -m katib.sdk.objective OPTIONS -- TYPES NAME VALUE ...``.

The trial template of every ``tune()`` experiment runs this module. After ``--`` come the
parameter types as JSON (``{"lr": "float", "n": "int", "opt": "str"}``; a categorical list of
non-text values maps each text to its object: ``{"flag": {"map": {"true": true}}}``) and then
one ``NAME VALUE`` pair per parameter, each value its own argv item
(``${trialParameters.lr}``). Values therefore survive any characters, and the objective
receives ``{"lr": 0.01, "n": 3, "opt": "adam"}``, never strings to cast (upstream pastes a
Python repr of strings into a script, reference §11.2).

Options (before ``--``), each ``--key value``:

- ``--metric NAME``: the objective metric; a number returned by the objective is printed
  as ``NAME=value``, a dict as one ``key=value`` line per item (the StdOut collector's format).
  Every returned value must be a finite number (``katib.metrics.values``): NaN, inf, a string
  or any other type fails the trial with a message saying what was returned. None is allowed
  (the objective printed its metrics or reported them); a note in the trial's output says so.
- ``--objective-file PATH`` / ``--objective-pickle BASE64``: the function, pickled with
  cloudpickle (needs the same Python minor version and cloudpickle where it is loaded).
- ``--objective-source TEXT`` with ``--objective-name NAME``: the function's source, as
  upstream ships it (any Python 3 image; the function must import what it uses).
- ``--report push``: report returned metrics with ``katib.report_metrics`` (Push collector)
  instead of printing them.
- ``--fixed JSON``: parameters that are not searched, passed through as given.
- ``--pip PACKAGE`` (repeatable), ``--pip-index-url URL`` (repeatable): installed first.
- ``--python-version X.Y``: the caller's, to explain a pickle that does not load.

Locally ``tune()`` does not exec this per trial: its worker pool parses the same argv
(``parse_argv``) and calls ``run_objective`` in a warm process. In a pod the module's own
source is the container's ``python3 -c`` program, so it imports nothing but the standard
library and works in an image without this package.
"""

from __future__ import annotations

import base64
import json
import math
import os
import pickle
import subprocess
import sys
import traceback
import types
from typing import Any, Callable, Mapping, Sequence

__all__ = ["SEPARATOR", "SINK_ENV", "BadResult", "parse_argv", "decode_value", "metric_text", "result_metrics",
           "result_lines", "run_objective", "main"]

SEPARATOR = "--"
SINK_ENV = "KATIB_METRICS_SINK"  # "stdout": report_metrics prints its values (see katib.sdk.report)
_REPEATED = ("pip", "pip-index-url")


def decode_value(codec: Any, text: str) -> Any:
    """The typed value of an assignment's text under its type code."""
    if codec == "int":
        try:
            return int(text)
        except ValueError:
            return int(float(text))  # "3.0" from an algorithm that rounds in float
    if codec == "float":
        return float(text)
    if codec == "str":
        return text
    if isinstance(codec, dict) and isinstance(codec.get("map"), dict):
        if text not in codec["map"]:
            raise ValueError(f"{text!r} is not one of the listed values {sorted(codec['map'])}")
        return codec["map"][text]
    raise ValueError(f"unknown parameter type {codec!r}")


def parse_argv(argv: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(options, typed parameters)`` of a command line (without the program name)."""
    argv = list(argv)
    if SEPARATOR not in argv:
        raise ValueError(f"expected OPTIONS {SEPARATOR} TYPES NAME VALUE ..., got {argv!r}")
    cut = argv.index(SEPARATOR)
    head, tail = argv[:cut], argv[cut + 1:]
    options: dict[str, Any] = {k: [] for k in _REPEATED}
    if len(head) % 2:
        raise ValueError(f"options come in --key value pairs, got {head!r}")
    for key, value in zip(head[::2], head[1::2]):
        if not key.startswith("--"):
            raise ValueError(f"expected an option --key, got {key!r}")
        name = key[2:]
        if name in _REPEATED:
            options[name].append(value)
        else:
            options[name] = value
    if not tail:
        raise ValueError("the parameter types (JSON) must follow --")
    codecs = json.loads(tail[0])
    pairs = tail[1:]
    if len(pairs) % 2:
        raise ValueError(f"parameters come in NAME VALUE pairs, got {pairs!r}")
    params: dict[str, Any] = {}
    for name, text in zip(pairs[::2], pairs[1::2]):
        if name not in codecs:
            raise ValueError(f"parameter {name!r} has no type in {tail[0]}")
        try:
            params[name] = decode_value(codecs[name], text)
        except ValueError as exc:
            raise ValueError(f"parameter {name!r}: cannot read {text!r} as {codecs[name]}: {exc}") from None
    fixed = options.get("fixed")
    if fixed:
        params = {**json.loads(fixed), **params}
    return options, params


class BadResult(TypeError):
    """The objective returned something that is not a metric value: the trial fails with
    this message (no traceback: the objective itself did not fail)."""


def _described(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)  # nan, inf, -inf
    return f"the {type(value).__name__} {value!r:.80}"


def metric_text(value: Any) -> str:
    """A metric value as the StdOut collector's default filter reads it. Raises TypeError
    (not a number) or ValueError (not finite) for anything but a finite number."""
    if isinstance(value, (bool, str, bytes)):
        raise TypeError(f"a metric must be a finite number, got {_described(value)}")
    try:
        number = float(value)  # numpy / torch scalars too; TypeError for anything else
    except OverflowError:  # an int beyond float's range
        raise ValueError(f"a metric must be a finite number, got an int of {len(str(value))} digits") from None
    if not math.isfinite(number):
        raise ValueError(f"a metric must be a finite number, got {number!r}")
    return str(value) if isinstance(value, int) else repr(number)


_EXPECTED = ("return a finite number (the objective metric), a dict of finite numbers, or None when the "
             "objective prints its metrics or calls katib.report_metrics")


def result_metrics(result: Any, metric: str) -> dict[str, str]:
    """The metrics an objective's return value stands for, as text: none for None,
    ``{metric: v}`` for a number, every item of a mapping. Raises BadResult for anything
    else, or a value that is not a finite number."""
    if result is None:
        return {}
    if isinstance(result, Mapping):
        out = {}
        for key, value in result.items():
            try:
                out[str(key)] = metric_text(value)
            except (TypeError, ValueError):
                raise BadResult(f"the objective returned {{{key!r}: {_described(value)}}}; every value of the "
                                f"dict must be a finite number ({_EXPECTED})") from None
        return out
    try:
        return {metric: metric_text(result)}
    except (TypeError, ValueError):
        raise BadResult(f"the objective returned {_described(result)}; {_EXPECTED}") from None


def result_lines(result: Any, metric: str) -> list[str]:
    """The ``name=value`` lines an objective's return value prints (StdOut collector)."""
    return [f"{k}={v}" for k, v in result_metrics(result, metric).items()]


def _user_frames(tb: Any) -> Any:
    """The traceback from the user's first frame on: frames of this machinery (marked with
    ``__tracebackhide__``, pytest's convention) would only bury the user's own code."""
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_locals.get("__tracebackhide__"):
        tb = tb.tb_next
    return tb


def run_objective(fn: Callable[[dict[str, Any]], Any], params: dict[str, Any], metric: str,
                  report: str = "print") -> int:
    """Call ``fn(params)`` and record what it returns: printed as ``name=value`` lines, or
    with ``report="push"`` through ``katib.report_metrics`` (Push collector). Returns the
    trial's exit code; an exception prints its traceback (without this frame) to stderr and
    gives 1, and so does a return value that is no metric (its message, without traceback)."""
    __tracebackhide__ = True
    try:
        result = fn(params)
        if result is None:
            # Not an error (the metrics may be printed or reported), but if none arrive
            # the trial's MetricsUnavailable message shows its last output: this line.
            print("katib: the objective returned None; the trial's metrics are only those it printed "
                  "or reported with katib.report_metrics", file=sys.stderr, flush=True)
        metrics = result_metrics(result, metric)
        if metrics and report == "push":
            from katib import report_metrics

            report_metrics({k: float(v) for k, v in metrics.items()})
            metrics = {}
    except BadResult as exc:
        print(f"katib: {exc}", file=sys.stderr, flush=True)
        return 1
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr, flush=True)
        return 1
    except BaseException as exc:  # noqa: BLE001 - any failure fails this trial only
        traceback.print_exception(type(exc), exc, _user_frames(exc.__traceback__))
        sys.stderr.flush()
        return 1
    for key, value in metrics.items():
        print(f"{key}={value}", flush=True)
    return 0


# -- in a pod --------------------------------------------------------------------------------
def _pip_install(packages: list[str], index_urls: list[str]) -> None:
    if subprocess.call([sys.executable, "-m", "pip", "--version"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL) != 0:
        subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--prefer-binary",
               "--disable-pip-version-check"]
    if index_urls:
        command += ["--index-url", index_urls[0]]
        for url in index_urls[1:]:
            command += ["--extra-index-url", url]
    subprocess.check_call(command + packages)


def _report_shim() -> None:
    """Without the katib package in the image, ``katib.report_metrics`` still works with the
    StdOut collector: a stand-in module prints what the real one would print."""
    try:
        import katib  # noqa: F401
        return
    except ImportError:
        pass
    counts: dict[str, int] = {}

    def report_metrics(metrics: Mapping[str, Any], step: int | None = None, **_: Any) -> None:
        if not metrics:
            raise ValueError("report_metrics: metrics is empty; pass e.g. {'loss': 0.3}")
        for name, value in metrics.items():
            counts[name] = counts.get(name, 0) + 1
            print(f"step={step if step is not None else counts[name]} {name}={metric_text(value)}", flush=True)

    module = types.ModuleType("katib")
    module.report_metrics = report_metrics  # type: ignore[attr-defined]
    sys.modules["katib"] = module


def _load(options: dict[str, Any]) -> Callable[[dict[str, Any]], Any]:
    if "objective-source" in options:
        namespace: dict[str, Any] = {"__name__": "__main__"}
        exec(compile(options["objective-source"], "<objective>", "exec"), namespace)  # noqa: S102
        return namespace[options.get("objective-name", "objective")]  # type: ignore[no-any-return]
    try:
        if "objective-file" in options:
            with open(options["objective-file"], "rb") as f:
                return pickle.load(f)  # type: ignore[no-any-return]  # noqa: S301 - our own file
        if "objective-pickle" in options:
            return pickle.loads(base64.b64decode(options["objective-pickle"]))  # type: ignore[no-any-return]  # noqa: S301
    except Exception as exc:
        want = options.get("python-version")
        have = f"{sys.version_info[0]}.{sys.version_info[1]}"
        hint = f"; it was pickled by Python {want} and this is Python {have}" if want and want != have else ""
        raise RuntimeError(f"cannot load the pickled objective ({exc}){hint}") from exc
    raise ValueError("no objective given: pass --objective-file, --objective-pickle or --objective-source")


def main(argv: Sequence[str] | None = None) -> int:
    options, params = parse_argv(sys.argv[1:] if argv is None else argv)
    if options["pip"]:
        _pip_install(options["pip"], options["pip-index-url"])
    if os.environ.get(SINK_ENV) == "stdout":
        _report_shim()
    return run_objective(_load(options), params, options.get("metric", "objective"), options.get("report", "print"))


if __name__ == "__main__":
    sys.exit(main())
