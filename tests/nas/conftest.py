"""Shared by the architecture-search tests: PyTorch is the ``nas`` extra.

Tests that need it call :func:`need_torch` or take the ``requires_torch`` fixture (from
another directory: ``from tests.nas.conftest import requires_torch  # noqa: F401``). Without
torch they skip, naming the extra; with ``KATIB_TEST_REQUIRE_NAS=1`` (CI) they fail instead.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

REASON = "needs PyTorch, the nas extra: pip install 'katib-lite[nas]'"


def need_torch() -> None:
    if importlib.util.find_spec("torch") is None:
        if os.environ.get("KATIB_TEST_REQUIRE_NAS") == "1":
            pytest.fail(f"{REASON} (KATIB_TEST_REQUIRE_NAS=1 makes this a failure)")
        pytest.skip(REASON)


@pytest.fixture
def requires_torch() -> None:
    need_torch()
