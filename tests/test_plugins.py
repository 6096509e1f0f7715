"""Custom algorithms plug in by Python entry point (group katib.suggestion), as a package
would install them, and `katib run` uses them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.backends.localexp import experiment, write

PLUGIN = '''
from suggestion.base import Algorithm, Assignment

class Constant(Algorithm):
    """Suggests x = 0.25, then 0.5, then 0.75 and so on (a plug-in's own logic)."""
    name = "constant-steps"
    settings = {"start": "0.25"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.next = float(self.raw_settings.get("start", "0.25"))

    def tell(self, trials):
        pass

    def ask(self, n):
        out = []
        for _ in range(n):
            out.append(Assignment({"x": self.next}))
            self.next += 0.25
        return out
'''


def _install(site: Path) -> None:
    (site / "katib_plugin_demo.py").write_text(PLUGIN)
    dist = site / "katib_plugin_demo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: katib-plugin-demo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[katib.suggestion]\nconstant-steps = katib_plugin_demo:Constant\n")


def test_entry_point_algorithm_is_found_and_runs(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    _install(site)
    check = textwrap.dedent("""
        from suggestion import registry
        assert "constant-steps" in registry.names(), registry.names()
        print(registry.get("constant-steps").__name__)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(Path(__file__).resolve().parents[1])])}
    out = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "Constant", out.stderr

    path = write(tmp_path, experiment("plugin", algorithm="constant-steps", settings={"start": "0.5"}, max_trials=2,
                                      parallel=1))
    run = subprocess.run([sys.executable, "-m", "katib.cli", "run", str(path), "-q"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0.5" in run.stdout and "0.75" in run.stdout  # the plug-in's points were run

    bad = write(tmp_path, experiment("plugin-bad", algorithm="constant-steps", settings={"stop": "1"}), "bad.yaml")
    run = subprocess.run([sys.executable, "-m", "katib.cli", "run", str(bad), "-q"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2 and "stop" in run.stderr  # the base class rejects unknown settings
