"""Code that runs inside a trial: the neural-architecture-search trainers.

* :mod:`katib.trainers.data`: the image data sets (scikit-learn's digits, CIFAR-10 from a
  local copy, a folder of images) as in-memory tensors.
* :mod:`katib.trainers.enas`: builds and trains the child network an ENAS suggestion
  describes (``python -m katib.trainers.enas --architecture=... --nn_config=...``).

This package is the trial side. The algorithms that suggest (``suggestion/``) never import
it, and it never imports them: each side runs without the other's dependencies.

The trainers need PyTorch, the ``nas`` extra (``pip install 'katib-lite[nas]'``). It is
imported lazily, so ``import katib`` and the ``katib`` command work without it;
:func:`require_torch` is the one place that says what to install when it is missing.
"""

from __future__ import annotations

from types import ModuleType

__all__ = ["MissingExtraError", "NAS_EXTRA", "require_torch"]

NAS_EXTRA = "pip install 'katib-lite[nas]'"


class MissingExtraError(ImportError):
    """A trainer needs an optional dependency that is not installed; the message says how to
    install it."""


def require_torch() -> ModuleType:
    """``torch``, or :class:`MissingExtraError` naming the extra that installs it."""
    try:
        import torch
    except ImportError as exc:
        raise MissingExtraError(
            f"the NAS trainers need PyTorch, which is not installed: {NAS_EXTRA} "
            f"(or pip install torch)") from exc
    return torch
