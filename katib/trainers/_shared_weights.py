"""ENAS weight sharing: a directory of tensors that child networks load before they train and
write back after, so a child starts from what earlier children learned for the same operation
at the same place instead of from scratch.

The store is one ``torch.save`` file, ``weights.pt``, mapping a stable key to a tensor (see
:meth:`katib.trainers._enas_ops.ChildNetwork.shared_keys`: layer, operation id and input
channels for each layer's operation; the classifier by its shape). Only a tensor whose key and
shape both match is loaded. Trials run side by side, so reading and writing each hold an
exclusive ``flock`` on ``DIR/.lock``; a write merges this child's tensors into what is stored
(last writer wins per key, as ENAS's asynchronous updates do) and replaces the file atomically
(temporary file + ``os.replace``), so a crash leaves the previous store whole.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Mapping

if TYPE_CHECKING:
    import torch

__all__ = ["STORE_FILE", "ENV_TRIAL_DIR", "default_store", "resolve_store", "read", "write", "load_into",
           "save_from"]

log = logging.getLogger(__name__)

STORE_FILE = "weights.pt"
LOCK_FILE = ".lock"
ENV_TRIAL_DIR = "KATIB_TRIAL_DIR"
DEFAULT_DIR_NAME = "enas-shared-weights"


def default_store(environ: Mapping[str, str] | None = None) -> Path | None:
    """The experiment's store when the trial runs locally (``$KATIB_TRIAL_DIR/../enas-shared-weights``,
    next to the experiment's trial directories), else None (sharing off)."""
    trial_dir = (os.environ if environ is None else environ).get(ENV_TRIAL_DIR)
    if not trial_dir:
        return None
    return Path(trial_dir).parent / DEFAULT_DIR_NAME


def resolve_store(value: str | None, environ: Mapping[str, str] | None = None) -> Path | None:
    """The store a ``--shared-weights`` value names: a directory, ``none`` (off), or, when not
    given, :func:`default_store`."""
    if value is None:
        return default_store(environ)
    if value.strip().lower() in ("none", ""):
        return None
    return Path(value)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    import fcntl  # POSIX; trials run on Linux (locally or in pods)

    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK_FILE, "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _read_unlocked(directory: Path) -> dict[str, torch.Tensor]:
    import torch

    path = directory / STORE_FILE
    if not path.exists():
        return {}
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a foreign or damaged file: train from scratch, the next write replaces it
        log.warning("shared weights %s cannot be read (%s); starting from scratch", path, exc)
        return {}
    if not isinstance(stored, dict):
        log.warning("shared weights %s holds %s, not a dict of tensors; starting from scratch",
                    path, type(stored).__name__)
        return {}
    return {str(k): v for k, v in stored.items() if isinstance(v, torch.Tensor)}


def read(directory: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor in the store (on the CPU); empty when there is none yet."""
    directory = Path(directory)
    with _locked(directory):
        return _read_unlocked(directory)


def write(directory: str | Path, tensors: Mapping[str, torch.Tensor]) -> None:
    """Merge ``tensors`` into the store (replacing those under the same keys), atomically."""
    import torch

    directory = Path(directory)
    with _locked(directory):
        merged = _read_unlocked(directory)
        merged.update({k: v.detach().cpu().clone() for k, v in tensors.items()})
        fd, tmp = tempfile.mkstemp(prefix=".weights-", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as out:
                torch.save(merged, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, directory / STORE_FILE)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def load_into(model: torch.nn.Module, keys: Mapping[str, str], directory: str | Path) -> list[str]:
    """Copy into ``model`` the stored tensors whose key and shape match. ``keys`` maps the
    model's state-dict names to store keys. Returns the state-dict names loaded."""
    import torch

    stored = read(directory)
    state = model.state_dict()
    fits = {name for name, key in keys.items()
            if key in stored and stored[key].shape == state[name].shape}
    # A batch-norm step counter is a scalar, so its shape always fits: take it only with its
    # batch norm's weights.
    fits = {name for name in fits
            if not name.endswith(".num_batches_tracked") or name.rsplit(".", 1)[0] + ".weight" in fits}
    loaded = [name for name in keys if name in fits]
    with torch.no_grad():
        for name in loaded:
            state[name].copy_(stored[keys[name]])  # state_dict tensors share storage with the model
    return loaded


def save_from(model: torch.nn.Module, keys: Mapping[str, str], directory: str | Path) -> int:
    """Write ``model``'s tensors named in ``keys`` to the store under their keys; the count."""
    state = model.state_dict()
    write(directory, {key: state[name] for name, key in keys.items()})
    return len(keys)
