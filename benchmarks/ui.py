"""Dashboard speed: `katib ui` against optuna-dashboard on the same trials.

    python benchmarks/ui.py                          # 100, 2,000 and 20,000 trials
    python benchmarks/ui.py --trials 100,2000 --repeat 3 --no-browser

For each size the same synthetic random search (benchmarks/_ui_data.py: 4 parameters, 10
reported steps a trial, 5 % failed, 10 % stopped early) is written to a katib-lite SQLite
store and to an Optuna SQLite study. Both servers run as real processes on real ports:
`katib ui --db ...` and `optuna-dashboard sqlite:///...` (pip install optuna-dashboard; it is
not a dependency of the project). Measured:

* API: wall time of the first request after the server starts (it reads the store), then the
  median wall time of each request over --repeat runs, and the server process's CPU
  time per request (utime + stime from /proc, so a busy shared machine inflates the wall
  time but not the CPU column). Rows pair what each dashboard's page asks for.
* Page: Debian's Chromium (headless, through chromedriver) opens the experiment page and
  waits until the optimization-history chart holds every finished trial; the number is
  ``performance.now()`` at that moment, i.e. from the start of navigation to a page that
  shows the data and answers input. Each page is loaded --repeat times in a fresh tab of a
  warm browser; the median is shown.

The ratio column is optuna-dashboard's time divided by ours: above 1 means we are faster.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _ui_data  # noqa: E402

CACHE = Path(tempfile.gettempdir()) / "katib-ui-bench"
_TICKS = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


@dataclass
class Server:
    name: str
    argv: list[str]
    port: int
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(default_factory=lambda: Path(tempfile.mkstemp(suffix=".log")[1]))

    def start(self, ready_path: str) -> None:
        self.proc = subprocess.Popen(self.argv, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-2000:]}")
            try:
                status, _ = self.get(ready_path)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer {ready_path} within 120 s")

    def get(self, path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def time_requests(server: Server, paths: list[str], repeat: int) -> tuple[float, float, int]:
    """(median wall ms, median server CPU ms, bytes) of fetching ``paths`` one after another."""
    walls, cpus, size = [], [], 0
    assert server.proc is not None
    for _ in range(repeat):
        cpu0, t0 = _cpu_seconds(server.proc.pid), time.perf_counter()
        size = 0
        for path in paths:
            status, body = server.get(path)
            if status != 200:
                raise RuntimeError(f"{server.name} GET {path}: {status} {body[:300]!r}")
            size += len(body)
        walls.append((time.perf_counter() - t0) * 1000)
        cpus.append((_cpu_seconds(server.proc.pid) - cpu0) * 1000)
    return statistics.median(walls), statistics.median(cpus), size


def _browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1400,1000", f"--user-data-dir={tempfile.mkdtemp()}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    # optuna-dashboard's page keeps the browser busy for minutes at 20,000 trials, and a
    # WebDriver command waits for it.
    driver.command_executor.client_config.timeout = 1800
    driver.set_page_load_timeout(1800)
    driver.set_script_timeout(1800)
    return driver


PAGE_TIMEOUT = 600.0


def time_page(driver: Any, url: str, ready_js: str, repeat: int) -> float | None:
    """Median ms from navigation start until ``ready_js`` returns a time (performance.now());
    None when a load was not ready within PAGE_TIMEOUT seconds (--page-timeout)."""
    times = []
    for _ in range(repeat):
        driver.switch_to.new_window("tab")
        start = time.monotonic()
        driver.get(url)
        while True:
            got = driver.execute_script(ready_js)
            if got:
                times.append(float(got))
                break
            if time.monotonic() - start > PAGE_TIMEOUT:
                print(f"# {url}: not ready within {PAGE_TIMEOUT:.0f} s", file=sys.stderr, flush=True)
                driver.close()
                driver.switch_to.window(driver.window_handles[0])
                return None
            time.sleep(0.02)
        driver.close()
        driver.switch_to.window(driver.window_handles[0])
    return statistics.median(times)


def history_drawn(selector: str, expect: int) -> str:
    """JS: performance.now() once the history chart holds ``expect`` markers, else null."""
    return f"""
var plots = document.querySelectorAll({json.dumps(selector)});
for (var i = 0; i < plots.length; i++) {{
  var p = plots[i];
  if (!p.data) continue;
  var n = 0;
  p.data.forEach(function (tr) {{ if (tr.mode && tr.mode.indexOf('markers') >= 0) n += (tr.x || []).length; }});
  if (n >= {expect}) return performance.now();
}}
return null;
"""


# Our experiment page opens on its trial table (the charts are tabs): usable once the summary
# and the first page of the table are there.
_KATIB_TABLE = """
var rows = document.querySelectorAll('#tab-trials tbody tr').length;
var total = document.querySelector('#trial-count');
return rows >= Math.min(50, {n}) && total && total.textContent.indexOf('of {n} trials') >= 0 ? performance.now() : null;
"""


def _katib_paths() -> dict[str, list[str]]:
    name, ns = _ui_data.EXPERIMENT, "default"
    base = f"/api/experiments/{ns}/{name}"
    return {
        "experiments list": ["/api/experiments"],
        "experiment page data": [base, f"{base}/trials?limit=50", f"{base}/figures/history"],
        "parameter importance": [f"{base}/figures/importance"],
    }


def _optuna_paths(study_id: int) -> dict[str, list[str]]:
    return {
        "experiments list": ["/api/studies"],
        "experiment page data": [f"/api/studies/{study_id}"],
        "parameter importance": [f"/api/studies/{study_id}/param_importances"],
    }


def run(sizes: list[int], repeat: int, browser: bool, page_repeat: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    driver = _browser() if browser else None
    try:
        for n in sizes:
            t0 = time.perf_counter()
            katib_url, optuna_url, study_id = _ui_data.build(CACHE, n)
            print(f"# {n} trials: stores ready in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            finished = sum(1 for t in _ui_data.synthetic_trials(n) if t.state == "Succeeded")
            kport, oport = _free_port(), _free_port()
            katib = Server("katib ui", [sys.executable, "-c", "import sys; from katib.cli import main; sys.exit(main())", "ui", "--db", katib_url, "--port", str(kport)],
                           kport)
            optuna = Server("optuna-dashboard", [shutil.which("optuna-dashboard") or "optuna-dashboard", optuna_url,
                                                 "--port", str(oport), "--host", "127.0.0.1"], oport)
            try:
                katib.start("/api/experiments")
                optuna.start("/api/studies")
                kpaths, opaths = _katib_paths(), _optuna_paths(study_id)
                for what in kpaths:
                    # The first request after the start reads the store; both servers keep what
                    # they read, and the later ones are served from there.
                    kw, kc, kb = time_requests(katib, kpaths[what], 1)
                    ow, oc, ob = time_requests(optuna, opaths[what], 1)
                    rows.append({"trials": n, "what": f"API: {what}, first request", "katib_ms": kw,
                                 "katib_cpu_ms": kc, "katib_kb": kb / 1024, "optuna_ms": ow, "optuna_cpu_ms": oc,
                                 "optuna_kb": ob / 1024})
                    kw, kc, kb = time_requests(katib, kpaths[what], repeat)
                    ow, oc, ob = time_requests(optuna, opaths[what], repeat)
                    rows.append({"trials": n, "what": f"API: {what}", "katib_ms": kw, "katib_cpu_ms": kc,
                                 "katib_kb": kb / 1024, "optuna_ms": ow, "optuna_cpu_ms": oc, "optuna_kb": ob / 1024})
                    print(table(rows[-2:]).split("\n", 2)[2], file=sys.stderr, flush=True)
                if driver is not None:
                    kurl = f"http://127.0.0.1:{kport}/experiments/default/{_ui_data.EXPERIMENT}"
                    ourl = f"http://127.0.0.1:{oport}/dashboard/studies/{study_id}"
                    drawn = history_drawn(".js-plotly-plot", finished)
                    # optuna-dashboard's study page opens on its history chart: one measure
                    # serves both rows. One load of each page first: the browser compiles
                    # Plotly once per server and keeps it.
                    op = time_page(driver, ourl, drawn, 1)
                    if op is not None:
                        op = time_page(driver, ourl, drawn, page_repeat)
                    pages = [
                        ("page: experiment opened, first view usable (ours: summary + trial table; "
                         "optuna-dashboard: history chart)", kurl, _KATIB_TABLE.replace("{n}", str(n))),
                        ("page: optimization history drawn", kurl + "#history", drawn),
                    ]
                    time_page(driver, kurl + "#history", drawn, 1)
                    for what, k_url, k_ready in pages:
                        kp = time_page(driver, k_url, k_ready, page_repeat)
                        rows.append({"trials": n, "what": what, "katib_ms": kp, "katib_cpu_ms": None,
                                     "katib_kb": None, "optuna_ms": op, "optuna_cpu_ms": None, "optuna_kb": None})
                        print(table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
            finally:
                katib.stop()
                optuna.stop()
    finally:
        if driver is not None:
            driver.quit()
    return rows


def _fmt(value: float | None, digits: int = 0) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def _ms(value: float | None) -> str:
    return f"not drawn in {PAGE_TIMEOUT:,.0f} s" if value is None else _fmt(value)


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| trials | what | katib ms | optuna-dashboard ms | ratio (wall) | katib server CPU ms | "
            "optuna server CPU ms | ratio (CPU) | katib KiB | optuna KiB |")
    out = [head, "|" + "---|" * 10]
    for r in rows:
        ratio = r["optuna_ms"] / r["katib_ms"] if r["katib_ms"] and r["optuna_ms"] is not None else None
        cratio = (r["optuna_cpu_ms"] / r["katib_cpu_ms"]
                  if r["katib_cpu_ms"] and r["optuna_cpu_ms"] is not None else None)
        if r["optuna_ms"] is None and r["katib_ms"]:
            ratio_text = f"> {PAGE_TIMEOUT * 1000 / r['katib_ms']:,.0f}x"
        else:
            ratio_text = f"{_fmt(ratio, 1)}{'x' if ratio else ''}"
        out.append(f"| {r['trials']:,} | {r['what']} | {_ms(r['katib_ms'])} | {_ms(r['optuna_ms'])} | "
                   f"{ratio_text} | {_fmt(r['katib_cpu_ms'])} | "
                   f"{_fmt(r['optuna_cpu_ms'])} | {_fmt(cratio, 1)}{'x' if cratio else ''} | "
                   f"{_fmt(r['katib_kb'])} | {_fmt(r['optuna_kb'])} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", default="100,2000,20000", help="comma-separated experiment sizes")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--page-repeat", type=int, default=3, help="page loads timed per page (after one untimed)")
    p.add_argument("--page-timeout", type=float, default=600.0,
                   help="seconds a page may take to draw before it is reported as not drawn")
    p.add_argument("--no-browser", action="store_true", help="API timings only")
    p.add_argument("--json", help="also write the rows to this file")
    args = p.parse_args(argv)
    if not shutil.which("optuna-dashboard"):
        sys.exit("benchmarks/ui.py compares with optuna-dashboard: pip install optuna-dashboard")
    globals()["PAGE_TIMEOUT"] = args.page_timeout
    rows = run([int(x) for x in args.trials.split(",")], args.repeat, not args.no_browser, args.page_repeat)
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
