"""Hyperband runs every bracket and every rung, interleaved, and rebuilds from trials."""

from __future__ import annotations

from collections import Counter
from typing import Mapping

import pytest

from katib.api.space import Value
from katib.errors import SearchSpaceExhausted, SuggestionsPending
from suggestion.base import Assignment, TrialResult, TrialState
from suggestion.hyperband import LABEL_BRACKET, LABEL_FILLER, LABEL_RUNG, Hyperband
from tests.suggestion.algo_helpers import MAXIMIZE, MINIMIZE, make, param, result, space_of

SPACE = space_of(param("lr", "double", "0.001", "0.1", distribution="logUniform"),
                 param("opt", "categorical", values=["sgd", "adam"]),
                 param("epochs", "int", "1", "9"))

# eta=3, r_l=9: s_max=2. Bracket s starts ceil(3 * 3^s / (s+1)) configurations at 9/3^s epochs
# and each rung keeps ceil(n/3) of them with 3x the epochs.
EXPECTED = {  # (bracket, rung) -> (configurations, epochs)
    (2, 0): (9, 1), (2, 1): (3, 3), (2, 2): (1, 9),
    (1, 0): (5, 3), (1, 1): (2, 9),
    (0, 0): (3, 9),
}


def loss(values: Mapping[str, Value]) -> float:
    """Known objective: better with more epochs, best at lr=0.01 with adam."""
    lr = float(values["lr"])  # type: ignore[arg-type]
    return abs(lr - 0.01) * 10 + (0.0 if values["opt"] == "adam" else 0.5) + 1.0 / float(values["epochs"])  # type: ignore[arg-type]


def where(a: Assignment | TrialResult) -> tuple[int, int]:
    return int(a.labels[LABEL_BRACKET]), int(a.labels[LABEL_RUNG])


class Run:
    """A controller as upstream's: it keeps ``parallel`` trials running, finishes the oldest
    first, asks for exactly the free slots and accepts only a reply of exactly that size."""

    def __init__(self, algo: Hyperband, parallel: int = 9, labels: bool = True) -> None:
        self.algo = algo
        self.parallel = parallel
        self.labels = labels
        self.trials: list[TrialResult] = []
        self.suggested: list[Assignment] = []
        self.replies: list[int] = []
        self.pending = 0  # calls answered "not yet"

    def step(self, finish: int) -> None:
        running = [i for i, t in enumerate(self.trials) if t.state == TrialState.RUNNING]
        done = []
        for i in running[:finish]:
            t = self.trials[i]
            state = TrialState.FAILED if t.assignments["opt"] == "sgd" and t.assignments["lr"] > 0.05 else TrialState.SUCCEEDED
            value = None if state == TrialState.FAILED else loss(t.assignments)
            self.trials[i] = TrialResult(t.name, t.assignments, state, value, order=t.order, labels=t.labels)
            done.append(self.trials[i])
        self.algo.tell(done)
        n = self.parallel - (len(running) - len(done))
        try:
            batch = self.algo.ask(n)
        except SuggestionsPending:
            assert len(running) > len(done), "waiting with nothing running would stall"
            self.pending += 1
            return
        assert len(batch) == n, f"a reply of {len(batch)} to a request of {n}"
        self.replies.append(len(batch))
        fresh = []
        for a in batch:
            i = len(self.trials) + len(fresh)
            labels = dict(a.labels) if self.labels else {}
            fresh.append(TrialResult(f"t{i}", dict(a.values), TrialState.RUNNING, order=float(i), labels=labels))
            self.suggested.append(a)
        self.trials += fresh
        self.algo.tell(fresh)

    def to_end(self, finish: int = 3) -> None:
        for _ in range(200):
            try:
                self.step(finish)
            except SearchSpaceExhausted:
                return
        raise AssertionError("hyperband did not finish")


def fillers(run: Run) -> list[Assignment]:
    return [a for a in run.suggested if a.labels.get(LABEL_FILLER)]


def _check_complete_run(run: Run) -> None:
    counts = Counter((where(a), a.values["epochs"]) for a in run.suggested if not a.labels.get(LABEL_FILLER))
    assert counts == Counter({(k, r): n for k, (n, r) in EXPECTED.items()})
    assert len(run.trials) - len(fillers(run)) == sum(n for n, _ in EXPECTED.values()) == 23
    # every configuration is distinct, fillers included
    configs = [(a.values["lr"], a.values["opt"]) for a in run.suggested
               if a.labels.get(LABEL_FILLER) or where(a)[1] == 0]
    assert len(configs) == len(set(configs))
    # every promotion is the best ceil(n/3) of the rung below (failed trials rank last)
    by_rung: dict[tuple[int, int], list[TrialResult]] = {}
    for t in run.trials:
        a = run.suggested[int(t.name[1:])]
        if not a.labels.get(LABEL_FILLER):
            by_rung.setdefault(where(a), []).append(t)
    for (s, i), trials in by_rung.items():
        if i == 0:
            continue
        below = sorted(by_rung[(s, i - 1)], key=lambda t: (t.value is None, t.value or 0.0, t.order))
        config = lambda t: (t.assignments["lr"], t.assignments["opt"])  # noqa: E731
        assert {config(t) for t in trials} == {config(t) for t in below[:len(trials)]}
    assert run.algo.state_settings()["current_s"] == "-1"


def test_runs_every_bracket_and_rung_then_ends() -> None:
    algo = make("hyperband", SPACE, random_state="0")
    assert isinstance(algo, Hyperband)
    run = Run(algo)
    run.to_end()
    _check_complete_run(run)
    # the batch is filled from later brackets while a rung waits: never idle slots when
    # there is something that could run
    assert run.replies[0] == 9 and run.replies[1] == 3  # 3 finished -> 3 new: bracket 1 starts
    with pytest.raises(SearchSpaceExhausted):
        algo.ask(9)
    # fillers only at the tail, where the last rungs cannot use all 9 slots, at 1 epoch
    assert len(fillers(run)) <= 9 and {a.values["epochs"] for a in fillers(run)} <= {1}, fillers(run)


def test_waits_while_trials_run_and_fills_only_when_nothing_runs() -> None:
    algo = make("hyperband", SPACE, random_state="1")
    first = algo.ask(9)
    assert [where(a) for a in first] == [(2, 0)] * 9
    with pytest.raises(SuggestionsPending, match="can start 8 of the 9"):
        algo.ask(9)  # never a short reply: upstream's controller would reject it
    second = algo.ask(8)  # bracket 2 waits for its rung: brackets 1 and 0 start instead
    assert Counter(where(a) for a in second) == {(1, 0): 5, (0, 0): 3}
    with pytest.raises(SuggestionsPending):
        algo.ask(1)  # nothing can run before trials finish
    assert algo.state_settings()["evaluating_trials"] == "17"
    # Everything finishes at once: bracket 2 promotes 3 (at 3 epochs), bracket 1 promotes 2
    # (at 9). A request for 9 with nothing running gets those 5 and 4 fillers at 1 epoch,
    # the cheapest trial, which ends before the promoted ones.
    trials = [result(f"t{i}", a, loss(a.values), order=i) for i, a in enumerate(first + second)]
    algo.tell(trials)
    third = algo.ask(9)
    assert len(third) == 9
    assert Counter(where(a) for a in third if not a.labels.get(LABEL_FILLER)) == {(2, 1): 3, (1, 1): 2}
    filler = [a for a in third if a.labels.get(LABEL_FILLER)]
    assert len(filler) == 4 and {a.values["epochs"] for a in filler} == {1}
    assert LABEL_BRACKET not in filler[0].labels
    seen = {(a.values["lr"], a.values["opt"]) for a in first + second}
    assert not seen & {(a.values["lr"], a.values["opt"]) for a in filler}


def test_a_parallelism_above_the_first_rungs_is_filled_not_stalled() -> None:
    algo = make("hyperband", SPACE, random_state="6")
    batch = algo.ask(20)  # 9 + 5 + 3 = 17 first-rung configurations exist
    assert len(batch) == 20 and sum(1 for a in batch if a.labels.get(LABEL_FILLER)) == 3
    run = Run(algo, parallel=20)
    run.trials = [TrialResult(f"t{i}", dict(a.values), TrialState.RUNNING, order=float(i), labels=dict(a.labels))
                  for i, a in enumerate(batch)]
    run.suggested = list(batch)
    algo.tell(run.trials)
    run.to_end()
    _check_complete_run(run)


@pytest.mark.parametrize("labels", [True, False], ids=["labels", "resource-only"])
def test_restart_rebuilds_progress_from_trials(labels: bool) -> None:
    run = Run(make("hyperband", SPACE, random_state="2"), labels=labels)
    for _ in range(4):
        run.step(3)
    before = run.algo.state_settings()
    fresh = make("hyperband", SPACE, random_state="2")
    fresh.tell(list(reversed(run.trials)))  # any order
    assert fresh.state_settings() == before
    run.algo = fresh
    run.to_end()
    _check_complete_run(run)


def test_maximize_promotes_the_highest() -> None:
    algo = make("hyperband", SPACE, MAXIMIZE, random_state="3")
    batch = algo.ask(9)
    algo.tell([result(f"t{i}", a, float(i), order=i) for i, a in enumerate(batch)])
    promoted = [a for a in algo.ask(9) if where(a) == (2, 1)]
    assert {a.values["lr"] for a in promoted} == {batch[i].values["lr"] for i in (6, 7, 8)}
    assert all(a.values["epochs"] == 3 for a in promoted)


def test_failed_trials_rank_last_and_double_resource() -> None:
    space = space_of(param("x", "double", "0", "1"), param("budget", "double", "0.5", "8"))
    algo = make("hyperband", space, MINIMIZE, r_l="8", eta="2", resource_name="budget", random_state="4")
    batch = algo.ask(16)
    assert {a.values["budget"] for a in batch if where(a) == (3, 0)} == {1.0}
    trials = [result(f"t{i}", a, None if i < 6 else float(i), TrialState.FAILED if i < 6 else TrialState.SUCCEEDED, order=i)
              for i, a in enumerate(batch) if where(a) == (3, 0)]
    algo.tell(trials)
    promoted = [a for a in algo.ask(4) if where(a) == (3, 1)]  # 8 others still run: ask for what is ready
    assert len(promoted) == 4 and all(a.values["budget"] == 2.0 for a in promoted)
    # the two that succeeded, then the two oldest failures
    assert {a.values["x"] for a in promoted} == {batch[i].values["x"] for i in (6, 7, 0, 1)}


def test_upstream_state_keys_are_accepted_as_settings() -> None:
    algo = make("hyperband", SPACE, random_state="5")
    algo.ask(9)
    state = algo.state_settings()
    assert set(state) == {"eta", "s_max", "r_l", "b_l", "r", "n", "current_s", "current_i",
                          "resource_name", "evaluating_trials"}
    assert state["s_max"] == "2" and state["current_s"] == "2" and state["n"] == "9" and state["r"] == "1"
    Hyperband.validate_settings({**state, "random_state": "5"}, SPACE, MINIMIZE, parallel_trial_count=9)
