"""Screenshots of every dashboard view, for docs/screenshots/ and the README.

    python scripts/screenshots.py            # writes docs/screenshots/*.png

Fills a scratch KATIB_HOME with real runs (`katib run examples/quickstart.yaml`, the two
searches of `examples/tune_quickstart.py`, and a small experiment whose trials fail for one
value), starts `katib ui` on it and photographs each view in Debian's Chromium (headless,
through chromedriver). Needs the ui and test extras (plotly, starlette, uvicorn, selenium) and
`apt-get install chromium chromium-driver`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"

FAILING = """
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: flaky
spec:
  objective: {type: minimize, objectiveMetricName: loss}
  algorithm: {algorithmName: grid}
  parallelTrialCount: 2
  maxTrialCount: 4
  maxFailedTrialCount: 4
  parameters:
    - name: lr
      parameterType: discrete
      feasibleSpace: {list: ["0.01", "0.1", "0.5", "1.0"]}
  trialTemplate:
    primaryContainerName: main
    trialParameters: [{name: lr, reference: lr}]
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            restartPolicy: Never
            containers:
              - name: main
                image: local
                command:
                  - python3
                  - -c
                  - |
                    import math, sys
                    lr = float(sys.argv[1])
                    for step in range(5):
                        loss = (lr - 0.1) ** 2 + 1 / (step + 1)
                        if lr >= 1.0 and step == 2:
                            raise FloatingPointError(f"loss diverged at step {step}: lr={lr} is too large")
                        print(f"loss={loss}")
                  - "${trialParameters.lr}"
"""


BROKEN = """apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: typo
spec:
  objective: {type: maximise, objectiveMetricName: loss}
  algorithm: {algorithmName: random}
  maxTrialCount: 10
  parallelTrialCount: 20
  parameters:
    - name: lr
      parameterType: double
      feasibleSpace: {min: "0.5", max: "0.1"}
  trialTemplate:
    primaryContainerName: main
    trialParameters: [{name: lr, reference: lr}]
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers: [{name: main, image: local, command: [python3, train.py, "${trialParameters.lr}"]}]
"""


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "KATIB_HOME": str(home), "KATIB_DB_URL": f"sqlite:///{home / 'katib.db'}"}


def fill(home: Path) -> None:
    katib = [sys.executable, "-c", "import sys; from katib.cli import main; sys.exit(main())"]
    env = _env(home)
    subprocess.run([*katib, "run", str(ROOT / "examples" / "quickstart.yaml"), "-q"], env=env, check=True,
                   cwd=ROOT, stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, str(ROOT / "examples" / "tune_quickstart.py")], env=env, check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    flaky = home / "flaky.yaml"
    flaky.write_text(FAILING)
    # Exits 3: the experiment runs to the end with failed trials in it.
    subprocess.run([*katib, "run", str(flaky), "-q"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _driver() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1400,1000", "--hide-scrollbars",
                f"--user-data-dir={tempfile.mkdtemp()}"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def _get(base: str, path: str) -> Any:
    with urllib.request.urlopen(base + path, timeout=60) as resp:
        return json.load(resp)


def _settle(driver: Any, ready_js: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not driver.execute_script(ready_js):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{driver.current_url}: not ready within {timeout} s ({ready_js})")
        time.sleep(0.2)
    time.sleep(1.0)  # transitions and Plotly's resize


PLOT_DRAWN = ("var p = document.querySelector(arguments[0] || '.tab:not([hidden]) .js-plotly-plot');"
              "return !!(p && p.data && p.data.length);")


def _shot(driver: Any, name: str, full: bool = False, chart: bool = False) -> None:
    if chart:  # the tab bar at the top, so the whole chart is in the picture
        driver.execute_script("document.querySelector('nav.tabs').scrollIntoView()")
        time.sleep(0.5)
    if full:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1400, min(max(1000, height), 2400))
    driver.save_screenshot(str(OUT / f"{name}.png"))
    driver.set_window_size(1400, 1000)
    print(f"docs/screenshots/{name}.png")


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="katib-screens-"))
    fill(home)
    port = _port()
    env = _env(home)
    server = subprocess.Popen([sys.executable, "-c", "import sys; from katib.cli import main; sys.exit(main())",
                               "ui", "--port", str(port)], env=env, stdout=open(home / "ui.log", "wb"),
                              stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    driver = _driver()
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _get(base, "/api/info")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"katib ui did not start; its log: {home / 'ui.log'}") from None
                time.sleep(0.3)
        driver.get(base + "/")
        _settle(driver, "return document.querySelectorAll('table tbody tr').length >= 3")
        _shot(driver, "experiments")
        # New experiment: a pasted YAML with mistakes, checked as `katib validate` checks a file.
        driver.find_element("css selector", "#new-experiment").click()
        box = driver.find_element("css selector", "#create textarea")
        box.send_keys(BROKEN)
        driver.find_element("css selector", "#create-check").click()
        _settle(driver, "var e = document.querySelector('#create .errors'); return e && !e.hidden && "
                        "e.textContent.indexOf('spec.') >= 0")
        _shot(driver, "create")
        exp = base + "/experiments/default/quickstart"
        driver.get(exp)
        _settle(driver, "return document.querySelectorAll('#tab-trials tbody tr').length >= 3")
        _shot(driver, "experiment", full=True)
        for tab in ("history", "parallel", "slice", "contour", "importance", "edf"):
            driver.get(exp + "#" + tab)
            driver.refresh()
            _settle(driver, f"return (function(){{{PLOT_DRAWN}}})()")
            _shot(driver, tab, chart=True)
        names = [e["name"] for e in _get(base, "/api/experiments")["experiments"]]
        sgd = next(n for n in names if "sgd" in n)  # tune_quickstart.py's search with reported epochs
        driver.get(f"{base}/experiments/default/{sgd}#intermediate")
        driver.refresh()
        _settle(driver, f"return (function(){{{PLOT_DRAWN}}})()")
        _shot(driver, "intermediate", chart=True)
        # A failed trial's page: its error first.
        rows = _get(base, "/api/experiments/default/flaky/trials?f.state=Failed&limit=1")["rows"]
        driver.get(f"{base}/experiments/default/flaky/trials/{rows[0]['name']}")
        _settle(driver, "return document.body.innerText.indexOf('FloatingPointError') >= 0")
        _shot(driver, "trial-failed", full=True)
    finally:
        driver.quit()
        server.terminate()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
