"""Fixtures of the dashboard tests: one store filled by real runs per session, and per module
a real ``katib ui`` process (and, for the browser tests, one Chrome)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ui import support


@pytest.fixture(scope="session")
def filled_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A KATIB_HOME whose store holds ``ui-grid`` (katib run, one failed trial) and
    ``ui-tune`` (tune() with reported steps). Each module copies it, so none sees another's
    changes."""
    home = tmp_path_factory.mktemp("ui-filled")
    support.fill(home, f"sqlite:///{home / 'katib.db'}")
    return home


@pytest.fixture(scope="module")
def ui_home(filled_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("ui-home")
    shutil.copytree(filled_home, home, dirs_exist_ok=True)
    yield home
    support.stop_runners(home, f"sqlite:///{home / 'katib.db'}")


@pytest.fixture(scope="module")
def db_url(ui_home: Path) -> str:
    return f"sqlite:///{ui_home / 'katib.db'}"


@pytest.fixture(scope="module")
def server(ui_home: Path, db_url: str) -> Iterator[support.Server]:
    srv = support.start_server(ui_home, db_url, "--db", db_url)
    yield srv
    srv.stop()
