"""A 20,000-trial experiment in the browser: the page opens on the right counts and the first
page of the trial table, sorting and filtering work over every trial, and every chart draws.
Timings are printed (pytest -s) and recorded as properties of the test, not asserted: the
speed targets are measured by benchmarks/ui.py, against optuna-dashboard."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui import scale, support
from tests.ui.browser import chrome, errors, text, texts, wait

pytestmark = pytest.mark.slow

TRIALS = 20_000
FILL_VERSION = 1  # bump when scale.fill changes what it writes


@pytest.fixture(scope="module")
def scale_home(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The store of ``scale.fill``; built once and kept in pytest's cache (it takes ~15 s)."""
    cached = Path(request.config.cache.mkdir("katib-ui-scale")) / f"scale-{TRIALS}-v{FILL_VERSION}.db"
    if not cached.exists():
        building = cached.with_suffix(".building")
        building.unlink(missing_ok=True)
        scale.fill(f"sqlite:///{building}", TRIALS)
        building.rename(cached)
    home = tmp_path_factory.mktemp("ui-scale")
    shutil.copyfile(cached, home / "katib.db")
    return home


@pytest.fixture(scope="module")
def scale_server(scale_home: Path) -> Iterator[support.Server]:
    url = f"sqlite:///{scale_home / 'katib.db'}"
    srv = support.start_server(scale_home, url, "--db", url)
    yield srv
    srv.stop()


def timed(driver: Any, action: Any, done: Any, what: str, timeout: float = 30) -> float:
    start = time.perf_counter()
    action()
    wait(driver, done, timeout=timeout, what=what)
    return time.perf_counter() - start


def rows(driver: Any) -> int:
    # One script call: reading 50 rows through WebDriver would take longer than drawing them.
    return int(driver.execute_script("return document.querySelectorAll('#trials tbody tr').length"))


def test_a_20000_trial_experiment_opens_sorts_filters_and_draws_every_chart(scale_server: support.Server,
                                                                record_property: Any) -> None:
    page = f"{scale_server.url}/experiments/default/{scale.NAME}"
    times: dict[str, float] = {}
    with chrome() as driver:
        driver.get("about:blank")  # the browser's own start is not the dashboard's time
        # Opened at once after the server started: its trials are being read meanwhile.
        times["first open (trials not read yet)"] = timed(
            driver, lambda: driver.get(page), lambda d: rows(d) == 50, "the first page of trials")
        assert text(driver, '#counts [data-count="trials"]') == str(TRIALS)
        assert text(driver, "#trial-count") == f"1–50 of {TRIALS} trials"
        times["open again"] = timed(driver, lambda: driver.get(page), lambda d: rows(d) == 50, "the table")
        driver.get(scale_server.url + "/")
        wait(driver, lambda d: texts(d, f'#experiments tr[data-name="{scale.NAME}"] td.name'), what="the list")
        times["from the list"] = timed(
            driver, lambda: driver.find_element("css selector", f'#experiments tr[data-name="{scale.NAME}"] a').click(),
            lambda d: rows(d) == 50 and text(d, '#counts [data-count="trials"]') == str(TRIALS), "the experiment")
        header = '#trials th[data-key="metric:accuracy"]'
        times["sort by accuracy"] = timed(
            driver, lambda: driver.find_element("css selector", header).click(),
            lambda d: "▲" in text(d, header), "the sorted table")
        shown = texts(driver, '#trials tbody td[data-key="metric:accuracy"]')
        assert shown == sorted(shown, key=float)
        box = driver.find_element("css selector", '#trials input[data-filter="metric:accuracy"]')
        times["filter accuracy > 0.6 (typed)"] = timed(
            driver, lambda: box.send_keys(">0.6"),
            lambda d: "matching" in text(d, "#trial-count"), "the filtered table")
        matched = int(driver.find_element("css selector", "#trial-count").get_attribute("data-matched"))
        assert 0 < matched < TRIALS
        for kind in ("history", "parallel", "slice", "contour", "importance", "intermediate", "edf"):
            times[f"{kind} chart"] = timed(
                driver, lambda: driver.find_element("css selector", f'.tabs a[data-tab="{kind}"]').click(),
                lambda d: d.execute_script(
                    f"const c = document.getElementById('chart-{kind}'); return c && !c.classList.contains('loading')"
                    " && c.querySelector('.main-svg') && Number(c.dataset.traces) > 0"),
                f"the {kind} chart", timeout=60)
        assert errors(driver) == []
    report = "\n".join(f"  {k:32} {v:6.2f} s" for k, v in times.items())
    print(f"\n{TRIALS}-trial experiment in the dashboard:\n{report}")
    for key, value in times.items():
        record_property(key, round(value, 3))
