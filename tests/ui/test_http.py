"""The dashboard's JSON API against a real ``katib ui`` process and a store filled by real
runs: what each endpoint answers, compared with the store, and every error as a message."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from katib.metrics.strategies import objective_value
from katib.store import Store
from katib.terminal import number
from tests.ui import support
from tests.ui.support import Server, call

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def store(db_url: str) -> Any:
    s = Store(db_url)
    yield s
    s.close()


def api(server: Server, path: str, method: str = "GET", body: Any = None, **kw: Any) -> support.Answer:
    return call(server.url + path, method, body, **kw)


def ok(server: Server, path: str) -> Any:
    got = api(server, path)
    assert got.status == 200, got.body
    return got.body


def test_the_shell_and_plotly_are_served_from_this_server(server: Server) -> None:
    page = api(server, "/experiments/default/ui-grid")
    assert page.status == 200 and '<script type="module" src="/static/app.js">' in page.body
    assert "http://" not in page.body and "https://" not in page.body  # nothing from a CDN
    js = urllib.request.urlopen(server.url + "/static/vendor/plotly.min.js").read()
    assert len(js) > 1_000_000 and b"plotly" in js[:2000].lower()
    module = api(server, "/static/experiment.js")
    assert module.status == 200 and "export async function experimentView" in module.body


def test_experiments_list_shows_what_the_store_holds(server: Server, store: Any) -> None:
    body = ok(server, "/api/experiments")
    rows = {r["name"]: r for r in body["experiments"]}
    assert set(rows) == {"ui-grid", "ui-tune"}
    for exp in store.list_experiments("default"):
        row, s = rows[exp.name], exp.status
        assert row["status"] == "Succeeded" and row["algorithm"] == exp.spec.algorithm.algorithm_name
        assert row["counts"]["succeeded"] == s.trials_succeeded and row["counts"]["failed"] == (s.trials_failed or 0)
        assert row["counts"]["done"] == s.trials and row["maxTrialCount"] == exp.spec.max_trial_count
        best = objective_value(s.current_optimal_trial.observation, exp.spec.objective)
        assert row["best"]["value"] == number(best) and row["best"]["trial"] == s.current_optimal_trial.best_trial_name
    assert rows["ui-grid"]["counts"] == {**rows["ui-grid"]["counts"], "succeeded": 3, "failed": 1, "trials": 4}
    assert [r["name"] for r in ok(server, "/api/experiments?q=TUN")["experiments"]] == ["ui-tune"]
    assert ok(server, "/api/experiments?status=Failed")["experiments"] == []


def test_experiment_detail_has_conditions_optimum_budget_and_spec(server: Server, store: Any) -> None:
    e = ok(server, "/api/experiments/default/ui-grid")
    stored = store.get_experiment("ui-grid")
    assert e["budget"] == {"maxTrialCount": 4, "parallelTrialCount": 2, "maxFailedTrialCount": 3}
    assert [c["type"] for c in e["conditions"]] == [c.type for c in stored.status.conditions]
    assert e["reason"] == "ExperimentMaxTrialsReached"
    opt = stored.status.current_optimal_trial
    assert e["optimum"]["trial"] == opt.best_trial_name
    assert {p["name"]: p["value"] for p in e["optimum"]["parameters"]} == {"lr": "0.3", "opt": "sgd"}
    assert yaml.safe_load(e["yaml"])["spec"] == stored.spec.to_dict()
    assert [p["name"] for p in e["parameters"]] == ["lr", "opt"] and e["metricNames"] == ["accuracy", "loss"]
    assert e["runner"] is False  # nothing runs it now


def test_trial_table_sorts_filters_and_pages_on_the_server(server: Server, store: Any) -> None:
    base = "/api/experiments/default/ui-grid/trials"
    trials = store.list_trials("ui-grid")
    page = ok(server, f"{base}?sort=metric:accuracy&order=desc")
    assert page["total"] == page["matched"] == 4
    shown = [r["cells"]["metric:accuracy"] for r in page["rows"]]
    assert shown == sorted(shown, key=float, reverse=True)
    assert page["rows"][0]["name"] == page["best"] == store.get_experiment("ui-grid").status.current_optimal_trial.best_trial_name
    failed = ok(server, f"{base}?f.state=failed")
    assert [r["name"] for r in failed["rows"]] == [t.name for t in trials if t.status.state == "Failed"]
    assert failed["rows"][0]["reason"] == "exit status 1: ValueError: learning rate 0.9 diverged"
    big = ok(server, f"{base}?f.param:lr=%3E0.4&sort=param:lr")
    assert [r["cells"]["param:lr"] for r in big["rows"]] == ["0.5", "0.9"] and big["total"] == 4
    ranged = ok(server, f"{base}?f.param:lr=0.2..0.6&f.metric:loss=%3C0.2")
    assert sorted(r["cells"]["param:lr"] for r in ranged["rows"]) == ["0.3", "0.5"]
    second = ok(server, f"{base}?limit=2&offset=2")
    assert [r["number"] for r in second["rows"]] == [2, 3] and second["matched"] == 4
    bad = api(server, f"{base}?f.param:lr=%3Ebig")
    assert bad.status == 400 and "filter on lr" in bad.body["message"] and "'big' is not a number" in bad.body["message"]
    assert api(server, f"{base}?sort=nope").status == 400


def test_a_failed_trial_says_why_with_its_traceback(server: Server, store: Any) -> None:
    failed = next(t for t in store.list_trials("ui-grid") if t.status.state == "Failed")
    t = ok(server, f"/api/experiments/default/ui-grid/trials/{failed.name}")
    assert t["state"] == "Failed" and t["failure"]["error"] is True
    assert t["failure"]["summary"] == "exit status 1: ValueError: learning rate 0.9 diverged"
    assert t["failure"]["output"].startswith("Traceback (most recent call last):")
    assert t["failure"]["output"].rstrip().endswith("ValueError: learning rate 0.9 diverged")
    assert t["steps"]["metrics"] == ["accuracy", "loss"] and [r[0] for r in t["steps"]["rows"]] == ["1", "2", "3"]
    assert t["log"]["lines"][-1] == "ValueError: learning rate 0.9 diverged"
    assert t["log"]["source"].endswith(f"{failed.name}/stdout.log")
    assert {p["name"]: p["value"] for p in t["parameters"]} == {"lr": "0.9", "opt": "sgd"}
    assert [c["type"] for c in t["chart"]["data"]] == ["scatter", "scatter"]


def test_a_tune_trial_shows_its_reported_steps(server: Server, store: Any) -> None:
    trial = store.list_trials("ui-tune")[0]
    t = ok(server, f"/api/experiments/default/ui-tune/trials/{trial.name}")
    rows = store.get_observations(trial.name, "score")
    assert [r[0] for r in t["steps"]["rows"]] == [str(r.step) for r in rows] == ["1", "2", "3"]
    assert [r[1] for r in t["steps"]["rows"]] == [number(r.value) for r in rows]
    assert t["failure"] is None and t["state"] == "Succeeded"


def test_every_chart_is_a_plotly_figure_of_the_stored_values(server: Server, store: Any) -> None:
    for kind in ("history", "parallel", "slice", "contour", "importance", "intermediate", "edf"):
        fig = ok(server, f"/api/experiments/default/ui-tune/figures/{kind}")
        assert set(fig) >= {"data", "layout"} and fig["data"], kind
    exp = store.get_experiment("ui-tune")
    found = [objective_value(t.status.observation, exp.spec.objective) for t in store.list_trials("ui-tune")]
    values = sorted(v for v in found if v is not None)
    assert len(values) == 5
    history = {t["name"]: t for t in ok(server, "/api/experiments/default/ui-tune/figures/history")["data"]}
    assert sorted(history["Trials"]["y"]) == pytest.approx(values)
    assert history["Best value"]["y"][-1] == pytest.approx(max(values))
    curves = ok(server, "/api/experiments/default/ui-tune/figures/intermediate")["data"]
    steps = {t.name: [float(r.step or 0) for r in store.get_observations(t.name, "score")] for t in store.list_trials("ui-tune")}
    drawn = [c for c in curves if c.get("x") and len(c["x"]) > 1]
    assert len(drawn) == 5 and all(c["x"] == next(iter(steps.values())) for c in drawn)
    contour = ok(server, "/api/experiments/default/ui-tune/figures/contour?x=y&y=x")
    assert contour["layout"]["xaxis"]["title"]["text"] == "y"
    bad = api(server, "/api/experiments/default/ui-tune/figures/contour?x=x&y=nope")
    assert bad.status == 400 and "nope" in bad.body["message"]
    assert api(server, "/api/experiments/default/ui-tune/figures/pie").status == 400


def _first_event(url: str, timeout: float = 15) -> tuple[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        kind = ""
        for raw in stream:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind:
                return kind, json.loads(line[6:])
    raise AssertionError("the stream ended without an event")


def test_the_event_stream_sends_the_watched_data_and_problems(server: Server) -> None:
    kind, data = _first_event(f"{server.url}/api/events?watch=experiment&namespace=default&name=ui-grid")
    assert kind == "update" and data["name"] == "ui-grid" and data["counts"]["trials"] == 4
    kind, data = _first_event(f"{server.url}/api/events?watch=experiment&name=gone")
    assert kind == "problem" and "experiment default/gone not found" in data["message"]
    assert api(server, "/api/events?watch=nothing").status == 400


def test_gone_and_unknown_things_are_404_messages(server: Server, store: Any) -> None:
    gone = api(server, "/api/experiments/default/nope")
    assert gone.status == 404 and gone.body == {"message": "experiment default/nope not found"}
    other = store.list_trials("ui-tune")[0].name
    wrong = api(server, f"/api/experiments/default/ui-grid/trials/{other}")
    assert wrong.status == 404 and "is not a trial of experiment ui-grid" in wrong.body["message"]
    assert api(server, "/api/nothing").status == 404
    page = api(server, "/experiments/default/nope")  # the page itself loads and says so
    assert page.status == 200 and "app.js" in page.body


def _validate_lines(home: Path, db_url: str, text: str) -> list[str]:
    path = home / "bad.yaml"
    path.write_text(text)
    done = support.katib(home, db_url, "validate", str(path))
    assert done.returncode == 2, done.stdout
    return [line.strip() for line in done.stderr.splitlines()[1:] if line.strip()]


def test_bad_yaml_and_invalid_experiments_list_the_errors_as_katib_validate(server: Server, ui_home: Path,
                                                                           db_url: str) -> None:
    broken = "apiVersion: kubeflow.org/v1beta1\nkind: Experiment\nspec: [unclosed\n"
    got = api(server, "/api/validate", "POST", broken)
    assert got.status == 400
    [line] = _validate_lines(ui_home, db_url, broken)  # "FILE:4:1: not valid YAML/JSON: ..."
    [error] = got.body["errors"]
    assert error["path"] == "line 4, column 1" and line.endswith(f"bad.yaml:4:1: {error['message']}")
    assert error["message"].startswith("not valid YAML/JSON: while parsing a flow sequence")
    invalid = support.grid_yaml("bad-one").replace('"maxTrialCount": 4', '"maxTrialCount": -1')
    invalid = invalid.replace('"0.1", ', "")
    got = api(server, "/api/validate", "POST", invalid)
    assert got.status == 400
    assert [e["text"] for e in got.body["errors"]] == _validate_lines(ui_home, db_url, invalid)
    assert any(e["path"] == "spec.maxTrialCount" for e in got.body["errors"])
    assert api(server, "/api/validate", "POST", "grid.yaml").status == 400  # text, never a path on the server
    fine = api(server, "/api/validate", "POST", support.grid_yaml("fine-one"))
    assert fine.status == 200 and fine.body["name"] == "fine-one" and fine.body["maxTrialCount"] == 4
    assert fine.body["namespace"] == "default"
    assert api(server, "/api/validate?namespace=team", "POST", support.grid_yaml("x")).body["namespace"] == "team"


def test_changing_requests_need_the_dashboards_header_and_origin(server: Server) -> None:
    no_header = api(server, "/api/experiments/default/ui-grid/stop", "POST", "{}", ui_header=False)
    assert no_header.status == 403 and "X-Katib-UI" in no_header.body["message"]
    foreign = api(server, "/api/experiments/default/ui-grid/stop", "POST", "{}",
                  headers={"Origin": "http://evil.example"})
    assert foreign.status == 403 and "evil.example" in foreign.body["message"]
    rebinding = call(server.url + "/api/info", headers={"Host": "evil.example"})
    assert rebinding.status == 400
    assert store_alive(server)


def store_alive(server: Server) -> bool:
    return api(server, "/api/experiments").status == 200


def test_actions_answer_with_field_errors(server: Server) -> None:
    bad = api(server, "/api/experiments/default/ui-grid/budget", "POST", {"maxTrialCount": "many"})
    assert bad.status == 400 and bad.body["errors"][0]["path"] == "maxTrialCount"
    lower = api(server, "/api/experiments/default/ui-grid/budget", "POST", {"maxTrialCount": 2})
    assert lower.status == 400 and any("maxTrialCount" in e["path"] for e in lower.body["errors"])
    tuned = api(server, "/api/experiments/default/ui-tune/budget", "POST", {"maxTrialCount": 7})
    assert tuned.status == 400 and "call tune(..., name='ui-tune') again" in tuned.body["errors"][0]["message"]
    exists = api(server, "/api/experiments", "POST", support.grid_yaml("ui-grid"))
    assert exists.status == 409 and "ui-grid" in exists.body["message"]
    assert api(server, "/api/experiments/default/nope", "DELETE").status == 404
    assert store_alive(server)


def test_delete_removes_an_experiment(server: Server, ui_home: Path, db_url: str) -> None:
    path = ui_home / "short.yaml"
    path.write_text(support.grid_yaml("ui-short", values=("0.2",)))
    assert support.katib(ui_home, db_url, "run", str(path), "-q").returncode == 0
    assert ok(server, "/api/experiments/default/ui-short")["counts"]["succeeded"] == 1
    gone = api(server, "/api/experiments/default/ui-short", "DELETE")
    assert gone.status == 200 and gone.body == {"deleted": "ui-short", "namespace": "default"}
    assert api(server, "/api/experiments/default/ui-short").status == 404
    assert api(server, "/api/experiments/default/ui-short/trials").status == 404


# -- a store or a cluster that cannot be reached ------------------------------------------------
def test_a_store_that_cannot_be_opened_is_a_message_and_the_server_keeps_serving(tmp_path: Path) -> None:
    url = "postgresql+psycopg2://katib:secret@127.0.0.1:1/nothing"
    srv = support.start_server(tmp_path, url, "--db", url)
    try:
        for _ in range(2):  # the second attempt opens it again, and fails the same way
            got = api(srv, "/api/experiments")
            assert got.status == 503, got.body
            assert got.body["message"].startswith("Cannot open the store postgresql+psycopg2://katib:***@127.0.0.1:1")
            assert "secret" not in got.body["message"] and "--db" in got.body["message"]
            assert "Traceback" not in got.body["message"]
        assert api(srv, "/api/experiments/default/x").status == 503
        assert api(srv, "/api/info").status == 200 and srv.process.poll() is None
        assert "Traceback" not in srv.log()
    finally:
        srv.stop()


def test_an_unreachable_cluster_is_a_message_and_actions_are_read_only(tmp_path: Path) -> None:
    port = support.free_port()  # nothing listens there
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "gone",
        "clusters": [{"name": "gone", "cluster": {"server": f"https://127.0.0.1:{port}", "insecure-skip-tls-verify": True}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "u", "namespace": "team"}}],
        "users": [{"name": "u", "user": {"token": "t"}}]}))
    srv = support.start_server(tmp_path, "sqlite://", "--kubeconfig", str(kubeconfig))
    try:
        info = ok(srv, "/api/info")
        assert info["backend"] == "kubernetes" and info["allowActions"] is False and "--allow-actions" in info["actionsNote"]
        got = api(srv, "/api/experiments")
        assert got.status == 503 and got.body["message"].startswith("Cannot reach the Kubernetes API server")
        assert f"127.0.0.1', port={port}" in got.body["message"] or f"127.0.0.1:{port}" in got.body["message"]
        refused = api(srv, "/api/experiments/team/x/stop", "POST", "{}")
        assert refused.status == 403 and "--allow-actions" in refused.body["message"]
        assert srv.process.poll() is None and ok(srv, "/api/info")["namespace"] == "team"
    finally:
        srv.stop()
    missing = support.start_server(tmp_path, "sqlite://", "--kubeconfig", str(tmp_path / "none"))
    try:
        got = api(missing, "/api/experiments")
        assert got.status == 503 and got.body["message"].startswith("Cannot connect to Kubernetes")
    finally:
        missing.stop()


def test_katib_ui_without_the_extra_names_it(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['starlette'] = None; from katib.cli import main; "
            "sys.exit(main(['ui', '--port', '1']))")
    done = subprocess.run([sys.executable, "-c", code], env=support.env_for(tmp_path, "sqlite://"),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "pip install 'katib-lite[ui]'" in done.stderr and "starlette" in done.stderr
    quiet = subprocess.run([sys.executable, "-c", "import katib, katib.cli, sys; katib.cli.build_parser(); "
                            "print(sorted(m for m in ('starlette', 'uvicorn', 'plotly') if m in sys.modules))"],
                           env=support.env_for(tmp_path, "sqlite://"), capture_output=True, text=True, timeout=60)
    assert quiet.stdout.strip() == "[]", quiet.stderr


def test_beyond_this_machine_the_dashboard_is_read_only_unless_allowed(ui_home: Path, db_url: str) -> None:
    srv = support.start_server(ui_home, db_url, "--db", db_url, "--host", "0.0.0.0")
    try:
        info = ok(srv, "/api/info")
        assert info["allowActions"] is False and "listens on 0.0.0.0" in info["actionsNote"]
        refused = api(srv, "/api/experiments/default/ui-grid", "DELETE")
        assert refused.status == 403 and "--allow-actions" in refused.body["message"]
        assert "read-only" in srv.log()
    finally:
        srv.stop()
    allowed = support.start_server(ui_home, db_url, "--db", db_url, "--host", "0.0.0.0", "--allow-actions")
    try:
        assert ok(allowed, "/api/info")["allowActions"] is True
    finally:
        allowed.stop()


def test_a_port_in_use_is_a_message(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = support.katib(tmp_path, "sqlite://", "ui", "--port", str(port), timeout=60)
    assert done.returncode == 1
    assert f"katib ui: cannot listen on 127.0.0.1:{port}; choose another with --port" in done.stderr
    assert "serving" not in done.stderr and "Traceback" not in done.stderr


def test_a_large_log_is_read_from_its_end(server: Server, store: Any, ui_home: Path) -> None:
    trial = store.list_trials("ui-tune")[-1].name
    path = ui_home / "runs" / "default" / "ui-tune" / trial / "stdout.log"
    with open(path, "a") as out:
        for i in range(60_000):
            out.write(f"training line {i} " + "x" * 20 + "\n")
        out.write("the end\n")
    assert path.stat().st_size > 1 << 20
    t = ok(server, f"/api/experiments/default/ui-tune/trials/{trial}")
    assert t["log"]["total"] is None and t["log"]["lines"][-1] == "the end" and len(t["log"]["lines"]) == 400
    assert t["log"]["lines"][0].startswith("training line 59601 ")  # 399 of them, then "the end"
