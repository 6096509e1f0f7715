"""Name -> class registries with lazily imported built-ins and entry-point plug-ins.

Used for search algorithms (group ``katib.suggestion``) and early-stopping rules (group
``katib.earlystop``): a plug-in package declares an entry point whose name is the
``algorithmName`` and whose object is a subclass of the registry's base class.
"""

from __future__ import annotations

import importlib
from importlib.metadata import EntryPoint, entry_points
from typing import Generic, Mapping, TypeVar

from katib.errors import NotFoundError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    # ``base`` is a plain ``type``: the registries' base classes are abstract, which mypy does
    # not accept as ``type[T]``.
    def __init__(self, base: type, group: str, builtin: Mapping[str, str], field_path: str, what: str) -> None:
        self.base = base
        self.group = group
        self.builtin = dict(builtin)  # name -> "module:attribute", imported on first use
        self.field_path = field_path  # where the name comes from, for error messages
        self.what = what
        self._registered: dict[str, type[T]] = {}

    def register(self, name: str, cls: type[T]) -> None:
        """Register ``cls`` under ``name`` (tests and embedding applications)."""
        self._registered[name] = cls

    def _plugins(self) -> dict[str, EntryPoint]:
        return {ep.name: ep for ep in entry_points(group=self.group)}

    def names(self) -> list[str]:
        return sorted(set(self.builtin) | set(self._registered) | set(self._plugins()))

    def get(self, name: str) -> type[T]:
        """The class serving ``name``; NotFoundError names the field and the known names."""
        if name in self._registered:
            return self._registered[name]
        if name in self.builtin:
            module, attr = self.builtin[name].split(":")
            cls = getattr(importlib.import_module(module), attr)
        else:
            plugin = self._plugins().get(name)
            if plugin is None:
                raise NotFoundError(f"{self.field_path}: unknown {self.what} {name!r}; "
                                    f"known algorithms: {', '.join(self.names())}")
            cls = plugin.load()
            if not (isinstance(cls, type) and issubclass(cls, self.base)):
                raise NotFoundError(f"entry point {name!r} in group {self.group} is not a "
                                    f"{self.base.__name__} subclass")
        self._registered[name] = cls
        return cls  # type: ignore[no-any-return]
