"""`katib get ... | head`: a reader that stops early is no error worth a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from katib.api.model import ObjectMeta, Trial, TrialSpec, TrialStatus
from katib.store import Store
from tests.backends.localexp import experiment, write


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    from katib.api.loader import load_experiment

    exp = load_experiment(write(tmp_path, experiment("piped")))
    store = Store()
    store.create_experiment(exp)
    for i in range(20):
        store.create_trial(Trial(metadata=ObjectMeta(name=f"piped-{i:05d}", namespace="default",
                                                     labels={"katib.kubeflow.org/experiment": "piped"}),
                                 spec=TrialSpec(), status=TrialStatus()))
    katib = subprocess.Popen([sys.executable, "-m", "katib.cli", "get", "trials", "piped"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
    assert katib.stdout is not None and katib.stderr is not None
    # The reader is gone before katib writes (as with `| head -1` once it has its line, or
    # `| true`): whatever the table's size, its write meets a closed pipe.
    katib.stdout.close()
    err = katib.stderr.read().decode()
    assert katib.wait(timeout=60) == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
