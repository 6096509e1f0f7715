"""Early-stopping algorithm names -> classes.

Built-ins are imported lazily. Plug-ins register through the Python entry-point group
``katib.earlystop``: the entry point's name is the ``spec.earlyStopping.algorithmName`` and
its object an ``EarlyStoppingAlgorithm`` subclass.
"""

from __future__ import annotations

from earlystop.base import EarlyStoppingAlgorithm
from katib.plugins import Registry

__all__ = ["get", "names", "register", "ENTRY_POINT_GROUP"]

ENTRY_POINT_GROUP = "katib.earlystop"

_registry: Registry[EarlyStoppingAlgorithm] = Registry(
    EarlyStoppingAlgorithm, ENTRY_POINT_GROUP, {"medianstop": "earlystop.medianstop:MedianStop"},
    "spec.earlyStopping.algorithmName", "early-stopping algorithm")

get = _registry.get
names = _registry.names
register = _registry.register
