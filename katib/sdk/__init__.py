"""The Python SDK: tune(), search helpers, report_metrics and KatibClient.

Submodules load on first use (``katib.report_metrics`` in training code, and the tune()
workers, must not pay for the rest)."""

from __future__ import annotations

from typing import Any

__all__ = ["tune", "TuneResult", "Trainer", "KatibClient", "search", "report_metrics"]

_LAZY = {
    "tune": ("katib.sdk.tune", "tune"),
    "TuneResult": ("katib.sdk.result", "TuneResult"),
    "Trainer": ("katib.sdk.experiment", "Trainer"),
    "KatibClient": ("katib.sdk.client", "KatibClient"),
    "search": ("katib.sdk.search", None),
    "report_metrics": ("katib.sdk.report", "report_metrics"),
}


def resolve(name: str) -> Any:
    """The object an SDK name stands for. Looked up in ``_LAZY`` rather than as an attribute
    because importing the submodule ``katib.sdk.tune`` sets the attribute ``tune`` of this
    package to the module, shadowing the function of the same name."""
    import importlib

    module_name, attr = _LAZY[name]
    module = importlib.import_module(module_name)
    return module if attr is None else getattr(module, attr)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'katib.sdk' has no attribute {name!r}")
    return resolve(name)
