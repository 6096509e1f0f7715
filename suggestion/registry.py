"""Algorithm names -> classes.

Built-in algorithms are imported lazily (skopt and optuna take a while to import). Plug-ins
register through the Python entry-point group ``katib.suggestion``: the entry point's name is
the ``algorithmName`` and its object an ``Algorithm`` subclass.
"""

from __future__ import annotations

from katib.plugins import Registry
from suggestion.base import Algorithm

__all__ = ["get", "names", "builtin_names", "register", "ENTRY_POINT_GROUP"]

ENTRY_POINT_GROUP = "katib.suggestion"

_BUILTIN: dict[str, str] = {
    "random": "suggestion.random:RandomSearch",
    "grid": "suggestion.grid:GridSearch",
    "bayesianoptimization": "suggestion.bayesianoptimization:BayesianOptimization",
    "tpe": "suggestion.tpe:TPE",
    "multivariate-tpe": "suggestion.tpe:MultivariateTPE",
    "cmaes": "suggestion.cmaes:CMAES",
    "sobol": "suggestion.sobol:Sobol",
    "hyperband": "suggestion.hyperband:Hyperband",
    "darts": "suggestion.darts:Darts",
    "enas": "suggestion.enas:ENAS",
}

_registry: Registry[Algorithm] = Registry(Algorithm, ENTRY_POINT_GROUP, _BUILTIN, "spec.algorithm.algorithmName",
                                          "algorithm")

get = _registry.get
names = _registry.names
register = _registry.register


def builtin_names() -> list[str]:
    """The algorithms this package serves itself (not plug-ins or test registrations)."""
    return sorted(_BUILTIN)
