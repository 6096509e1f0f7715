"""katib-lite: hyperparameter search with Katib's contract.

The SDK names (``katib.tune``, ``katib.search``, ``katib.report_metrics``,
``katib.KatibClient``, ...) come from ``katib.sdk`` on first use, so ``import katib`` in
training code (for ``katib.report_metrics``) stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["tune", "TuneResult", "Trainer", "KatibClient", "search", "report_metrics"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'katib' has no attribute {name!r}")
    from katib import sdk

    value = sdk.resolve(name)
    globals()[name] = value
    return value
