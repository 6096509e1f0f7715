"""NAS assignment values as they travel: ``architecture``, ``nn_config`` (ENAS) and
``algorithm-settings``, ``search-space``, ``num-layers`` (DARTS).

Upstream's services write them as JSON with ``'`` for ``"`` (``{'batch_size': null}``), and
trial templates often wrap them in another pair of quotes (``--architecture="${...}"``).
One reader serves the suggestion side, the trainers and the display.
"""

from __future__ import annotations

import ast
import json
from typing import Any

__all__ = ["parse_nas_value", "unwrap"]


def unwrap(text: str) -> str:
    """``text`` without the matching outer quotes a trial template put around it. NAS values
    are lists, dicts and numbers, never strings, so every matching pair is a wrapper."""
    text = text.strip()
    while len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def parse_nas_value(text: str) -> Any:
    """The value ``text`` holds: JSON, upstream's ``'``-quoted JSON, or a Python literal,
    once unwrapped. Raises ``ValueError`` (or ``SyntaxError``) when it is none of them."""
    text = unwrap(text)
    for attempt in (text, text.replace("'", '"')):
        try:
            return json.loads(attempt)
        except ValueError:
            pass
    return ast.literal_eval(text)
