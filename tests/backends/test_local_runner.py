"""LocalRunner with trials whose "process" the test plays by hand (its output, its exit), so
that a crash can be placed exactly where it hurts."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from katib.api.model import Experiment, TrialCondition as TC
from katib.backends import local
from katib.backends.local.runner import INTERRUPTED, LocalRunner, RunOptions, trial_directory
from katib.store import Store
from suggestion.inprocess import InProcessSuggester
from tests.backends.localexp import experiment


class HandPlayedProcess:
    """``TrialProcess``'s interface; the test writes the output and the exit code. A
    ``pid`` file marks it started (and adoptable while it has not exited)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def log_path(self) -> Path:
        return self.directory / "stdout.log"

    def start(self, spec: Any) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.log_path.touch()
        (self.directory / "pid").write_text("1\n")

    def adopt(self) -> bool:
        return self.recorded()

    def recorded(self) -> bool:
        return (self.directory / "pid").exists()

    def exit_code(self) -> int | None:
        path = self.directory / "exitcode"
        return int(path.read_text()) if path.exists() else None

    def running(self) -> bool:
        return self.recorded() and self.exit_code() is None

    def ended_without_record(self) -> bool:
        return False

    def terminate(self) -> None:
        if self.running():
            (self.directory / "exitcode").write_text("-15")  # as the wrapper records SIGTERM

    def stop(self, grace: float = 10.0) -> None:
        self.terminate()


def _runner(store: Store, exp: Experiment, home: Path) -> LocalRunner:
    options = RunOptions(base_dir=home, workdir=str(home), poll_interval=0.01,
                         process_factory=lambda d: cast(Any, HandPlayedProcess(d)))  # TrialProcess, duck-typed
    return LocalRunner(store, exp, InProcessSuggester(), options)


def test_a_rerun_interrupted_trial_resumed_after_a_crash_keeps_its_metrics(tmp_path: Path) -> None:
    """Ctrl-C records a trial Killed (interrupted); the next run starts it again under its
    name. If that run is killed before it read the new output, the run after it must read
    the new output from its start, not from where the aborted first attempt's was read."""
    home = tmp_path / "home"
    store = Store(f"sqlite:///{tmp_path / 'katib.db'}")
    exp = local.prepare(Experiment.from_dict(experiment("rerun", max_trials=1, parallel=1)))
    exp, _ = local.open_experiment(store, exp)

    first = _runner(store, exp, home)
    (trial,) = first._create_trials(first._list_trials(), 1)
    directory = trial_directory(home, "default", "rerun", trial.name)
    (directory / "stdout.log").write_text("".join(f"accuracy=0.{i}\n" for i in range(1, 4)))
    with first._writes():
        first._collect()  # read and committed: the collector records how far it read
    first._stop_trials([trial], "interrupted", interrupted=True)
    stored = store.get_trial(trial.name)
    assert stored.status.state == TC.KILLED and stored.metadata.annotations[INTERRUPTED] == "true"

    second = _runner(store, store.get_experiment("rerun"), home)
    second._resume()  # starts the trial again; this runner is then killed before it reads anything
    assert store.get_trial(trial.name).status.state == TC.RUNNING

    new_attempt = [f"0.{i}5" for i in range(1, 9)]  # longer than the first attempt's output
    (directory / "stdout.log").write_text("".join(f"accuracy={v}\n" for v in new_attempt))
    (directory / "exitcode").write_text("0")
    third = _runner(store, store.get_experiment("rerun"), home)
    third.run()

    final = store.get_trial(trial.name)
    assert final.status.state == TC.SUCCEEDED
    assert [o.value for o in store.get_observations(trial.name, "accuracy")] == new_attempt
    store.close()
