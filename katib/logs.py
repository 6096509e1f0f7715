"""``katib logs TRIAL``: a local trial's output, optionally followed until the trial ends."""

from __future__ import annotations

import codecs
import os
import time
from pathlib import Path
from typing import BinaryIO, Callable, TextIO

from katib.errors import NotFoundError

__all__ = ["show", "last_lines"]

_CHUNK = 1 << 16


def last_lines(f: BinaryIO, count: int) -> int:
    """The offset where the last ``count`` lines of ``f`` start (a final line without a newline
    counts), reading backwards in chunks: a training log can be large."""
    f.seek(0, os.SEEK_END)
    end = f.tell()
    if count == 0:
        return end
    pos = end
    newlines = 0
    # A trailing newline ends the last line rather than starting an empty one.
    f.seek(max(0, end - 1))
    skip_trailing = f.read(1) == b"\n"
    while pos > 0:
        start = max(0, pos - _CHUNK)
        f.seek(start)
        block = f.read(pos - start)
        for i in range(len(block) - 1, -1, -1):
            if block[i:i + 1] == b"\n":
                if skip_trailing and start + i == end - 1:
                    continue
                newlines += 1
                if newlines == count:
                    return start + i + 1
        pos = start
    return 0


def _copy(f: BinaryIO, out: TextIO, decoder: codecs.IncrementalDecoder) -> int:
    copied = 0
    while chunk := f.read(_CHUNK):
        out.write(decoder.decode(chunk))
        copied += len(chunk)
    if copied:
        out.flush()
    return copied


def show(path: Path, out: TextIO, *, tail: int | None = None, follow: bool = False,
         ended: Callable[[], bool] = lambda: True, trial: str = "", poll: float = 0.2,
         check_every: float = 0.5) -> int:
    """Write the log at ``path`` to ``out`` (its last ``tail`` lines when given). With
    ``follow``, keep writing what the trial prints until ``ended()`` says it has ended; the
    log is read once more after that, so its last lines are not lost."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    if not path.is_file():
        if not follow:
            raise NotFoundError(f"trial {trial}: no output at {path} (it has not started yet, ran in a "
                                "cluster, or its directory was removed); `katib describe trial "
                                f"{trial}` shows its state")
        while not path.is_file():  # a pending trial: wait for it to start
            if ended():
                if path.is_file():
                    break
                return 0
            time.sleep(check_every)
    with open(path, "rb") as f:
        f.seek(last_lines(f, tail) if tail is not None else 0)
        _copy(f, out, decoder)
        if not follow:
            out.write(decoder.decode(b"", final=True))
            return 0
        next_check = 0.0
        while True:
            _copy(f, out, decoder)
            now = time.monotonic()
            if now >= next_check:
                if ended():
                    _copy(f, out, decoder)  # whatever it printed before its state was recorded
                    out.write(decoder.decode(b"", final=True))
                    out.flush()
                    return 0
                next_check = now + check_every
            time.sleep(poll)
