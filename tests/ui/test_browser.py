"""The dashboard in a real browser against a real ``katib ui`` and a store filled by real
``katib run`` and ``katib.tune()`` runs: the numbers each view shows, a failed trial's error,
live updates of a running experiment, the actions behind their confirmation, and the
messages bad input gets."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from katib.errors import NotFoundError
from katib.metrics.strategies import metric_value
from katib.store import Store
from katib.terminal import number
from tests.ui import support
from tests.ui.browser import banner, chrome, errors, text, texts, wait

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    with chrome() as d:
        yield d


@pytest.fixture(scope="module")
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    yield s
    s.close()


def by_css(css: str) -> Any:
    from selenium.webdriver.common.by import By

    return lambda d: d.find_elements(By.CSS_SELECTOR, css)


def find(driver: Any, css: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css)


def click(driver: Any, css: str) -> None:
    from selenium.common.exceptions import StaleElementReferenceException

    def clicked(d: Any) -> bool:
        element = find(d, css)
        if not (element.is_enabled() and element.is_displayed()):
            return False
        try:
            element.click()
        except StaleElementReferenceException:  # a live update redrew it just now: find it again
            return False
        return True

    wait(driver, clicked, what=f"{css} to be clicked")


def select(driver: Any, css: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(find(driver, css)).select_by_value(value)


def clear(field: Any) -> None:
    """Empty a field as a user does (Selenium's clear() fires no input event)."""
    from selenium.webdriver.common.keys import Keys

    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.BACKSPACE)


def open_page(driver: Any, url: str, ready: str) -> None:
    driver.get(url)
    wait(driver, by_css(ready), what=ready)


def run_in_background(home: Path, url: str, name: str, values: tuple[str, ...], sleep: float,
                      max_trials: int | None = None) -> subprocess.Popen[str]:
    path = home / f"{name}.yaml"
    path.write_text(support.grid_yaml(name, values=values, sleep=sleep, parallel=1, max_trials=max_trials))
    return subprocess.Popen([sys.executable, "-m", "katib.cli", "run", str(path), "-q"], env=support.env_for(home, url),
                            cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)


def wait_stored(store: Any, name: str) -> None:
    def exists() -> bool:
        try:
            store.get_experiment(name)
        except NotFoundError:
            return False
        return True
    support.wait_for(exists, what=f"experiment {name} in the store")


# -- views ----------------------------------------------------------------------------------
def test_the_experiments_list_shows_the_stores_numbers_and_filters(driver: Any, server: support.Server,
                                                                   store: Any) -> None:
    open_page(driver, server.url + "/", '#experiments tbody tr[data-name="ui-tune"]')
    for exp in store.list_experiments("default"):
        row = f'#experiments tr[data-name="{exp.name}"]'
        s = exp.status
        assert text(driver, f"{row} td.status") == "Succeeded"
        assert text(driver, f"{row} td.algorithm") == exp.spec.algorithm.algorithm_name
        assert text(driver, f"{row} td.trials") == f"{s.trials}/{exp.spec.max_trial_count}"
        assert text(driver, f"{row} td.running") == str(s.trials_running or 0)
        assert text(driver, f"{row} td.failed") == str(s.trials_failed or 0)
        metric = exp.spec.objective.objective_metric_name
        value = metric_value(s.current_optimal_trial.observation, metric, exp.spec.objective.strategy_for(metric))
        assert text(driver, f"{row} td.best") == f"{metric}={number(value)}"
        assert text(driver, f"{row} td.age").endswith(("s", "m"))
    assert text(driver, '#experiments tr[data-name="ui-grid"] td.failed') == "1"
    find(driver, "#filter-name").send_keys("tune")
    wait(driver, lambda d: texts(d, "#experiments tbody tr td.name") == ["ui-tune"], what="the name filter")
    clear(find(driver, "#filter-name"))
    wait(driver, lambda d: len(texts(d, "#experiments tbody tr")) == 2, what="the filter to be cleared")
    select(driver, "#filter-status", "Failed")
    wait(driver, by_css("#experiments-empty"), what="no Failed experiment")
    assert driver.current_url.endswith("?status=Failed")
    select(driver, "#filter-status", "")
    space = find(driver, "#filter-namespace")
    clear(space)
    space.send_keys("nobody\n")
    wait(driver, lambda d: "in namespace nobody" in text(d, "#experiments-empty"), what="another namespace")
    assert driver.current_url.endswith("?namespace=nobody")
    assert errors(driver) == []


def test_the_experiment_page_shows_the_experiment_and_its_trials(driver: Any, server: support.Server,
                                                                 store: Any) -> None:
    exp = store.get_experiment("ui-grid")
    trials = store.list_trials("ui-grid")
    open_page(driver, server.url + "/experiments/default/ui-grid", "#trials tbody tr[data-trial]")
    wait(driver, by_css("#counts"), what="the experiment's header")  # asked for alongside the table
    assert text(driver, '#counts [data-count="trials"]') == "4"
    assert text(driver, '#counts [data-count="succeeded"]') == "3"
    assert text(driver, '#counts [data-count="failed"]') == "1"
    assert text(driver, '#budget [data-budget="max"]') == "4"
    best = exp.status.current_optimal_trial.best_trial_name
    assert text(driver, "#optimum a") == best
    assert "lr=0.3" in text(driver, "#optimum")
    assert "name: ui-grid" in find(driver, "#spec-yaml").get_attribute("textContent")
    find(driver, "#conditions-box summary").click()
    assert [t for t in texts(driver, "#conditions tbody tr td:first-child")] == [c.type for c in exp.status.conditions]
    rows = {r.get_attribute("data-trial"): r for r in driver.find_elements("css selector", "#trials tbody tr")}
    assert set(rows) == {t.name for t in trials}
    for t in trials:
        cells = {c.get_attribute("data-key"): c.text for c in rows[t.name].find_elements("css selector", "td[data-key]")}
        acc = metric_value(t.status.observation, "accuracy", "max")
        assert cells["param:lr"] == number(t.spec.assignments["lr"]) and cells["metric:accuracy"] == number(acc)
    assert "best" in rows[best].get_attribute("class")
    # Sort by accuracy (ascending on the first click), then filter the failed one.
    click(driver, '#trials th[data-key="metric:accuracy"]')
    wait(driver, lambda d: "▲" in text(d, '#trials th[data-key="metric:accuracy"]'), what="the sort")
    shown = texts(driver, '#trials tbody td[data-key="metric:accuracy"]')
    assert shown == sorted(shown, key=float)
    select(driver, "#trial-state", "Failed")
    wait(driver, lambda d: len(texts(d, "#trials tbody tr")) == 1, what="the state filter")
    assert "ValueError: learning rate 0.9 diverged" in text(driver, "#trials tbody td.reason")
    select(driver, "#trial-state", "")
    wait(driver, lambda d: len(texts(d, "#trials tbody tr")) == 4, what="the state filter to be cleared")
    find(driver, '#trials input[data-filter="param:lr"]').send_keys(">0.4")
    wait(driver, lambda d: sorted(texts(d, '#trials tbody td[data-key="param:lr"]')) == ["0.5", "0.9"],
         what="the lr filter")
    assert text(driver, "#trial-count").startswith("1–2 of 2 matching (4 trials)")
    assert errors(driver) == []


def test_a_failed_trial_shows_its_error_first(driver: Any, server: support.Server, store: Any) -> None:
    failed = next(t for t in store.list_trials("ui-grid") if t.status.state == "Failed")
    open_page(driver, f"{server.url}/experiments/default/ui-grid/trials/{failed.name}", "#failure")
    assert text(driver, "#failure-summary") == "exit status 1: ValueError: learning rate 0.9 diverged"
    output = text(driver, "#failure-output")
    assert output.startswith("Traceback (most recent call last):") and output.endswith("learning rate 0.9 diverged")
    assert find(driver, "#failure").location["y"] < find(driver, "#params").location["y"]  # before the rest
    assert text(driver, '#params tr[data-name="lr"] td') == "0.9"
    assert texts(driver, "#steps tbody tr td:first-child") == ["1", "2", "3"]
    assert text(driver, "#log").splitlines()[-1] == "ValueError: learning rate 0.9 diverged"
    wait(driver, lambda d: d.execute_script("return document.querySelector('#steps-chart .main-svg') !== null"),
         what="the metrics chart")
    assert errors(driver) == []


def test_charts_are_drawn_by_plotly_from_the_server(driver: Any, server: support.Server, store: Any) -> None:
    open_page(driver, server.url + "/experiments/default/ui-tune#history", "#chart-history")
    for kind in ("history", "parallel", "slice", "contour", "importance", "intermediate", "edf"):
        click(driver, f'.tabs a[data-tab="{kind}"]')
        wait(driver, lambda d: d.execute_script(
            f"const c = document.getElementById('chart-{kind}'); return c && c.querySelector('.main-svg') && "
            "Number(c.dataset.traces) > 0"), what=f"the {kind} chart")
    assert driver.execute_script("return typeof window.Plotly") == "object"
    assert errors(driver) == []


# -- live updates and actions -----------------------------------------------------------------
def test_a_running_experiment_updates_without_reloading(driver: Any, server: support.Server, ui_home: Path,
                                                        db_url: str, store: Any) -> None:
    run = run_in_background(ui_home, db_url, "ui-live", ("0.2", "0.4", "0.6"), sleep=0.8)
    row = '#experiments tr[data-name="ui-live"]'
    try:
        wait_stored(store, "ui-live")
        # The list: the running experiment's counts move.
        open_page(driver, server.url + "/", row)
        driver.execute_script("window.__notReloaded = true;")
        wait(driver, lambda d: text(d, f"{row} td.trials") in ("1/3", "2/3"), timeout=60, what="a trial done in the list")
        assert driver.execute_script("return window.__notReloaded === true")
        # A running trial's page: its log grows and it ends, without a reload.
        trial = support.wait_for(lambda: next((t.name for t in store.list_trials("ui-live")
                                               if t.status.state == "Running"), None), what="a running trial")
        open_page(driver, f"{server.url}/experiments/default/ui-live/trials/{trial}", "#log-note")
        driver.execute_script("window.__notReloaded = true;")
        wait(driver, lambda d: text(d, "h1 .badge") == "Succeeded", timeout=30, what="the trial to succeed")
        assert "epoch 3:" in text(driver, "#log") and texts(driver, "#steps tbody tr td:first-child") == ["1", "2", "3"]
        assert driver.execute_script("return window.__notReloaded === true")
        # The experiment's page: counts, status and table follow it to the end.
        open_page(driver, server.url + "/experiments/default/ui-live", '#counts [data-count="succeeded"]')
        driver.execute_script("window.__notReloaded = true;")
        assert int(text(driver, '#counts [data-count="succeeded"]')) < 3
        wait(driver, lambda d: text(d, '#counts [data-count="succeeded"]') == "3", timeout=60,
             what="3 succeeded trials")
        wait(driver, lambda d: text(d, "h1 .badge") == "Succeeded", what="the Succeeded status")
        wait(driver, lambda d: len(texts(d, "#trials tbody tr")) == 3, what="3 rows in the table")
        assert driver.execute_script("return window.__notReloaded === true")
        assert run.wait(30) == 0
    finally:
        if run.poll() is None:
            run.terminate()
            run.wait(10)
    assert errors(driver) == []


def confirm(driver: Any, title: str) -> None:
    wait(driver, lambda d: find(d, "#confirm").get_attribute("open") is not None, what="the confirmation dialog")
    assert text(driver, "#confirm-title") == title
    click(driver, "#confirm-ok")


def test_stop_raise_budget_and_delete_need_a_confirmation(driver: Any, server: support.Server, ui_home: Path,
                                                          db_url: str, store: Any) -> None:
    # 6 trials of a grid of 8: room to raise the budget (the grid refuses more than 8).
    run = run_in_background(ui_home, db_url, "ui-stop", ("0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8"),
                            sleep=1.0, max_trials=6)
    try:
        wait_stored(store, "ui-stop")
        open_page(driver, server.url + "/experiments/default/ui-stop", "#runner")
        wait(driver, lambda d: text(d, "#runner") == "a runner is working on it", what="the runner")
        click(driver, "#action-stop")
        confirm(driver, "Stop ui-stop?")
        wait(driver, lambda d: text(d, "h1 .badge") == "Interrupted", timeout=30, what="the Interrupted status")
        assert run.wait(30) != 0  # the runner ended, interrupted
        assert store.get_experiment("ui-stop").status.is_true("Running") is False
    finally:
        if run.poll() is None:
            run.terminate()
            run.wait(10)
    click(driver, "#action-budget")
    field = find(driver, "#budget-input")
    clear(field)
    field.send_keys("8")
    confirm(driver, "Raise the budget of ui-stop?")
    wait(driver, lambda d: text(d, '#budget [data-budget="max"]') == "8", what="the new budget")
    assert store.get_experiment("ui-stop").spec.max_trial_count == 8
    click(driver, "#action-delete")
    wait(driver, lambda d: find(d, "#confirm").get_attribute("open") is not None, what="the delete dialog")
    click(driver, "#confirm-cancel")  # cancelled: nothing happens
    assert store.get_experiment("ui-stop").name == "ui-stop"
    click(driver, "#action-delete")
    confirm(driver, "Delete ui-stop?")
    wait(driver, lambda d: d.current_url == server.url + "/", what="the experiments list")
    wait(driver, by_css('#experiments tr[data-name="ui-grid"]'), what="the list")
    assert texts(driver, '#experiments tr[data-name="ui-stop"]') == []
    with pytest.raises(NotFoundError):
        store.get_experiment("ui-stop")
    assert errors(driver) == []


def paste(driver: Any, content: str) -> None:
    area = find(driver, "#create-yaml")
    driver.execute_script("arguments[0].value = arguments[1];", area, content)


def test_create_from_pasted_yaml_checks_it_then_runs_it(driver: Any, server: support.Server, ui_home: Path,
                                                        db_url: str, store: Any) -> None:
    open_page(driver, server.url + "/", "#experiments")
    click(driver, "#new-experiment")
    paste(driver, "apiVersion: kubeflow.org/v1beta1\nkind: Experiment\nspec: [unclosed\n")
    click(driver, "#create-check")
    wait(driver, lambda d: texts(d, "#create-errors li"), what="the YAML error")
    assert texts(driver, "#create-errors li")[0].startswith("line 4, column 1: not valid YAML/JSON")
    invalid = support.grid_yaml("ui-bad").replace('"maxTrialCount": 4', '"maxTrialCount": -1')
    paste(driver, invalid)
    click(driver, "#create-check")
    (ui_home / "invalid.yaml").write_text(invalid)
    expected = [line.strip() for line in support.katib(ui_home, db_url, "validate", str(ui_home / "invalid.yaml"))
                .stderr.splitlines()[1:]]
    wait(driver, lambda d: texts(d, "#create-errors li") == expected, what="the same errors as katib validate")
    paste(driver, support.grid_yaml("ui-made", values=("0.2", "0.3")))
    click(driver, "#create-submit")
    confirm(driver, "Create experiment ui-made?")
    wait(driver, lambda d: d.current_url.endswith("/experiments/default/ui-made"), what="the new experiment's page")
    wait(driver, lambda d: text(d, "h1 .badge") == "Succeeded", timeout=60, what="the created experiment to finish")
    wait(driver, lambda d: len(texts(d, "#trials tbody tr")) == 2, what="its two trials")
    assert store.get_experiment("ui-made").status.trials_succeeded == 2
    assert errors(driver) == []


def test_bad_input_and_gone_experiments_get_messages(driver: Any, server: support.Server, tmp_path: Path) -> None:
    driver.get(server.url + "/experiments/default/nope")
    wait(driver, lambda d: "experiment default/nope not found" in banner(d), what="the not-found message")
    open_page(driver, server.url + "/experiments/default/ui-grid", "#action-budget")
    click(driver, "#action-budget")
    field = find(driver, "#budget-input")
    clear(field)
    field.send_keys("2")
    click(driver, "#confirm-ok")
    wait(driver, lambda d: texts(d, "#confirm-errors li"), what="the budget error in the dialog")
    assert any("spec.maxTrialCount" in e for e in texts(driver, "#confirm-errors li"))
    assert find(driver, "#confirm").get_attribute("open") is not None  # still open to fix it
    click(driver, "#confirm-cancel")
    bad = "postgresql+psycopg2://katib:secret@127.0.0.1:1/nothing"
    other = support.start_server(tmp_path, bad, "--db", bad)
    try:
        driver.get(other.url + "/")
        wait(driver, lambda d: banner(d).startswith("Cannot open the store"), what="the store message")
        assert "secret" not in banner(driver) and "Traceback" not in driver.page_source
    finally:
        other.stop()
