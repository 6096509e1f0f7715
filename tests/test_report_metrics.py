"""katib.report_metrics outside a local run: to a real DBManager over gRPC, as in a pod."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from katib.api.observation import MetricLog
from katib.store import Store
from katib.store.dbmanager import serve


def test_report_metrics_reaches_the_db_manager_with_sub_second_timestamps(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/dbm.db")
    server = serve(store, 0, host="127.0.0.1")
    try:
        code = ("import katib\n"
                "for step in range(1, 4): katib.report_metrics({'loss': 1.0 / step, 'acc': 0.5 + step / 10})\n")
        env = {"PATH": "/usr/bin:/bin", "KATIB_TRIAL_NAME": "pod-trial-1",
               "KATIB_DB_MANAGER_ADDRESS": f"127.0.0.1:{server.port}"}
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        loss = store.get_observations("pod-trial-1", "loss")
        assert [float(r.value) for r in loss] == [1.0, 0.5, pytest.approx(1 / 3)]
        # upstream's wire format has no step: the order of reports is the step, so the three
        # reports need distinct, increasing times (upstream stamps whole seconds: all equal)
        assert [r.timestamp for r in loss] == sorted({r.timestamp for r in loss})
        assert len(store.get_observations("pod-trial-1", "acc")) == 3
    finally:
        server.stop(0)


def test_report_metrics_outside_a_trial_says_how_to_fix_it() -> None:
    done = subprocess.run([sys.executable, "-c", "import katib; katib.report_metrics({'loss': 1})"],
                          env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "KATIB_TRIAL_NAME" in done.stderr


def test_report_metrics_rejects_non_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    import katib

    monkeypatch.setenv("KATIB_TRIAL_NAME", "t")
    with pytest.raises(ValueError, match="'loss'"):
        katib.report_metrics({"loss": "high"})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), "-1e400", 10 ** 400])
def test_report_metrics_refuses_values_that_are_not_finite(monkeypatch: pytest.MonkeyPatch, value: object,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    import katib

    monkeypatch.setenv("KATIB_TRIAL_NAME", "t")
    monkeypatch.setenv("KATIB_METRICS_SINK", "stdout")  # would print the rows, were any made
    with pytest.raises(ValueError, match="metric 'loss' must be a (finite )?number"):
        katib.report_metrics({"acc": 0.5, "loss": value})
    assert capsys.readouterr().out == ""  # nothing of the call is recorded, not even 'acc'


def test_the_db_manager_does_not_store_values_that_are_not_finite(tmp_path: Path) -> None:
    from katib.api.observation import MetricLog, utcnow
    from katib.rpc.dbmanager_client import DBManagerClient

    store = Store(f"sqlite:///{tmp_path}/dbm.db")
    server = serve(store, 0, host="127.0.0.1")
    try:
        now = utcnow()  # what upstream's collector sends for "loss=nan loss=-inf" and a string metric
        rows = [MetricLog("loss", v, now) for v in ("nan", "-Infinity", "0.5", "Genotype(x)")]
        DBManagerClient(deadline=10).report(f"127.0.0.1:{server.port}", "t1", rows)
        assert [r.value for r in store.get_observations("t1", "loss")] == ["0.5", "Genotype(x)"]
    finally:
        server.stop(0)


def test_a_retried_report_is_stored_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A report whose write succeeded but raised anyway (a lost reply, a dropped connection
    on commit) is sent again by the caller: the store keeps one row per step."""
    import katib
    from katib.sdk import report

    url = f"sqlite:///{tmp_path}/push.db"
    Store(url).close()
    monkeypatch.setenv("KATIB_TRIAL_NAME", "push-1")
    monkeypatch.setenv("KATIB_DB_URL", url)
    monkeypatch.setattr(report, "_counts", {})
    store = report._store(url)
    write = store.report_observations
    fail = [True]

    def flaky(trial: str, logs: list[MetricLog]) -> int:  # stores the rows, then may fail
        written = write(trial, logs)
        if fail and fail.pop():
            raise ConnectionError("connection reset after commit")
        return written

    monkeypatch.setattr(store, "report_observations", flaky)
    with pytest.raises(ConnectionError):
        katib.report_metrics({"loss": 0.5}, step=10)
    katib.report_metrics({"loss": 0.5}, step=10)  # the caller's retry
    fail.append(True)
    with pytest.raises(ConnectionError):
        katib.report_metrics({"loss": 0.4})  # no step: the first report's count, 1
    katib.report_metrics({"loss": 0.4})  # the retry keeps step 1
    katib.report_metrics({"loss": 0.3})
    rows = Store(url).get_observations("push-1", "loss")
    assert [(r.step, r.value) for r in rows] == [(10, "0.5"), (1, "0.4"), (2, "0.3")]
