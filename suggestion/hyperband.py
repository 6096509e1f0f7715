"""Hyperband (Li et al. 2018), every bracket and every rung, interleaved.

Settings (upstream's names): ``r_l`` (required, > 0: the largest resource a trial gets),
``resource_name`` (required: an int or double parameter that carries the resource, e.g.
epochs), ``eta`` (> 1, default 3) and, beyond upstream, ``random_state``. With
``s_max = floor(log_eta(r_l))``, bracket ``s`` (from ``s_max`` down to 0) starts
``n = ceil((s_max+1) * eta^s / (s+1))`` random configurations at resource ``r_l * eta^-s``;
each rung keeps the best ``ceil(n_i / eta)`` (failed trials rank last) and runs them with
``eta`` times the resource. As upstream, ``parallelTrialCount >= ceil(eta^s_max)``.

Upstream's version stalled after the first rung: it returned fewer assignments than the
controller asked for, and the controller rejects any reply whose size is not exactly
``current_request_number`` (reference §5.3). Here the service absorbs the mismatch between
rung sizes and requests, so every reply holds exactly ``n`` assignments:

- ``ask(n)`` fills the batch from the first bracket that can make progress, then from later
  brackets' rungs: brackets are independent, so running them side by side changes nothing
  but the wall-clock time. What is ready beyond ``n`` waits for the next call.
- When fewer than ``n`` are ready and some of this run's trials are still running, it raises
  ``SuggestionsPending`` (gRPC FAILED_PRECONDITION): the controller creates nothing and asks
  again once a trial has finished, which frees a slot and may complete a rung.
- When fewer than ``n`` are ready and nothing is running, waiting cannot help (the request
  is larger than what Hyperband can run at that point: the last rungs, or a
  ``parallelTrialCount`` above the brackets' first rungs). The reply then holds every ready
  assignment plus *filler* trials: fresh random configurations at the smallest resource
  (``r_l * eta^-s_max``), the cheapest trial there is, which ends before the rest of the
  reply and so never holds up the next rung. Fillers carry the label ``LABEL_FILLER``, are
  not part of any bracket and are never promoted; they are ordinary trials of the
  experiment otherwise. They cost at most ``parallelTrialCount`` smallest-resource trials
  each time the last rungs leave slots free; ``parallelTrialCount = ceil(eta^s_max)`` (the
  minimum hyperband accepts) keeps them few.
- It raises ``SearchSpaceExhausted`` once every rung of every bracket has finished.

State is rebuilt from the trials alone. Assignments carry the labels ``LABEL_BRACKET`` and
``LABEL_RUNG``; when a controller does not send labels back (upstream's never does), a trial
is placed by its resource value: a configuration's first resource identifies its bracket,
later resources its rung. ``state_settings`` reports progress under upstream's keys, and
those keys are accepted (and ignored) as settings, because upstream's controller merges them
back into the next request.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass, field
from typing import ClassVar, Mapping, Sequence

from katib.api.model import ObjectiveSpec, ParameterType
from katib.api.space import SearchSpace, Value
from katib.errors import SearchSpaceExhausted, SettingsError, SuggestionsPending
from suggestion._common import SeenPoints, SpaceCodec, check_space, parse_seed
from suggestion.base import Algorithm, Assignment, TrialResult, check_known, parse_float

__all__ = ["Hyperband", "LABEL_BRACKET", "LABEL_RUNG", "LABEL_FILLER"]

log = logging.getLogger(__name__)

LABEL_BRACKET = "hyperband.suggestion.katib.kubeflow.org/bracket"
LABEL_RUNG = "hyperband.suggestion.katib.kubeflow.org/rung"
LABEL_FILLER = "hyperband.suggestion.katib.kubeflow.org/filler"
_STATE_KEYS = ("s_max", "b_l", "r", "n", "current_s", "current_i", "evaluating_trials")
_EPS = 1e-9

Key = tuple[str, ...]


@dataclass
class _Entry:
    values: dict[str, Value]  # the configuration, without the resource
    finished: bool = False
    loss: float | None = None  # objective in minimisation form; None: no value (failed)
    order: float = math.inf


@dataclass
class _Rung:
    size: int
    resource: Value
    entries: dict[Key, _Entry] = field(default_factory=dict)

    @property
    def full(self) -> bool:
        return len(self.entries) >= self.size

    @property
    def complete(self) -> bool:
        return self.full and all(e.finished for e in self.entries.values())

    def best(self, k: int) -> list[Key]:
        ranked = sorted(self.entries.items(),
                        key=lambda kv: (kv[1].loss is None, kv[1].loss or 0.0, kv[1].order))
        return [key for key, _ in ranked[:k]]


@dataclass
class _Bracket:
    s: int
    eta: float
    rungs: list[_Rung]

    @property
    def complete(self) -> bool:
        return all(r.complete for r in self.rungs)

    def resize(self, n0: int) -> None:
        """Shrink the bracket when the search space has fewer configurations than planned."""
        self.rungs[0].size = n0
        for prev, rung in zip(self.rungs, self.rungs[1:]):
            rung.size = math.ceil(prev.size / self.eta - _EPS) if prev.size else 0


def _parse(settings: Mapping[str, str], space: SearchSpace) -> tuple[float, str, float]:
    if not settings.get("r_l"):
        raise SettingsError("r_l", "is required: the maximum resource of a trial (e.g. epochs)")
    r_l = parse_float(settings, "r_l", None, min_value=0.0, min_exclusive=True)
    name = settings.get("resource_name") or ""
    if not name:
        raise SettingsError("resource_name", "is required: the parameter that carries the resource")
    if name not in space.names:
        raise SettingsError("resource_name", f"{name!r} is not a parameter of the experiment; "
                                             f"parameters: {', '.join(space.names)}")
    if space[name].type not in (ParameterType.INT, ParameterType.DOUBLE):
        raise SettingsError("resource_name", f"parameter {name!r} must be int or double, "
                                             f"not {space[name].type}")
    eta = parse_float(settings, "eta", 3.0, min_value=1.0, min_exclusive=True)
    assert r_l is not None and eta is not None
    if space[name].type == ParameterType.INT and r_l < 1:
        raise SettingsError("r_l", f"must be >= 1 for the int resource parameter {name!r}")
    return r_l, name, eta


def _s_max(r_l: float, eta: float) -> int:
    # The epsilon keeps log(1000)/log(10) = 2.9999999999999996 from losing a bracket.
    return max(int(math.floor(math.log(r_l) / math.log(eta) + _EPS)), 0)


class Hyperband(Algorithm):
    name = "hyperband"
    settings: ClassVar[Mapping[str, str | None]] = {"r_l": None, "resource_name": None, "eta": "3",
                                          "random_state": None, **{k: None for k in _STATE_KEYS}}

    @classmethod
    def validate_settings(cls, settings: Mapping[str, str], space: SearchSpace,
                          objective: ObjectiveSpec, *, max_trial_count: int | None = None,
                          parallel_trial_count: int | None = None) -> None:
        check_known(cls.name, settings, cls.settings)
        r_l, _, eta = _parse(settings, space)
        parse_seed(settings)
        check_space(space, cls.name)
        needed = math.ceil(eta ** _s_max(r_l, eta) - _EPS)
        if parallel_trial_count is not None and parallel_trial_count < needed:
            raise SettingsError("spec.parallelTrialCount",
                                f"hyperband with eta={eta:g} and r_l={r_l:g} needs parallelTrialCount "
                                f">= {needed} (ceil(eta^s_max)); got {parallel_trial_count}")

    def __init__(self, space: SearchSpace, objective: ObjectiveSpec, settings: Mapping[str, str],
                 **counts: int | None) -> None:
        super().__init__(space, objective, settings, **counts)
        self.r_l, self.resource_name, self.eta = _parse(settings, space)
        self.s_max = _s_max(self.r_l, self.eta)
        self._int_resource = space[self.resource_name].type == ParameterType.INT
        self._rng = random.Random(parse_seed(settings))
        self._codec = SpaceCodec(space, exclude=[self.resource_name])
        self._configs = SeenPoints(self._codec)
        self._bracket_of: dict[Key, int] = {}  # configuration -> its bracket
        self._placed: dict[str, tuple[int, int, Key]] = {}  # trial name -> (s, rung, config)
        self._order = 0.0
        self.brackets = [self._make_bracket(s) for s in range(self.s_max, -1, -1)]
        resource = space[self.resource_name]
        outside = sorted({r.resource for b in self.brackets for r in b.rungs
                          if not resource.low <= r.resource <= resource.high})  # type: ignore[operator]
        if outside:
            # Upstream assigns the resource regardless of the parameter's bounds (its own
            # example does: num-epochs in [1, 1] with r_l=2); so do we, but say so.
            log.warning("hyperband: resource values %s of %r lie outside its feasible space [%s, %s]",
                        outside, self.resource_name, resource.low, resource.high)

    def _resource(self, value: float) -> Value:
        return int(math.floor(value + _EPS)) if self._int_resource else round(value, 12)

    def _make_bracket(self, s: int) -> _Bracket:
        n = math.ceil((self.s_max + 1) * self.eta ** s / (s + 1) - _EPS)
        rungs = []
        for i in range(s + 1):
            rungs.append(_Rung(size=n, resource=self._resource(self.r_l / self.eta ** (s - i))))
            n = math.ceil(n / self.eta - _EPS)
        return _Bracket(s, self.eta, rungs)

    def _bracket(self, s: int) -> _Bracket:
        return self.brackets[self.s_max - s]

    # -- tell ---------------------------------------------------------------------------

    def tell(self, trials: Sequence[TrialResult]) -> None:
        # A configuration's first (smallest) resource names its bracket, so place lower
        # rungs first when creation order is unknown.
        def sort_key(t: TrialResult) -> tuple[float, float]:
            try:
                return t.order, float(t.assignments.get(self.resource_name, 0))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                return t.order, 0.0

        for t in sorted(trials, key=sort_key):
            if t.labels.get(LABEL_FILLER):
                self._configs.add(t.assignments)  # keeps later configurations distinct
                continue
            where = self._placed.get(t.name) or self._locate(t)
            if where is None:
                continue  # not a trial of this hyperband run
            self._placed[t.name] = where
            s, i, key = where
            entry = self._bracket(s).rungs[i].entries[key]
            entry.order = min(entry.order, t.order)
            if t.finished:
                entry.finished = True
                if t.has_value and t.value is not None and math.isfinite(t.value):
                    entry.loss = t.value if self.minimize else -t.value

    def _locate(self, t: TrialResult) -> tuple[int, int, Key] | None:
        try:
            key = self._codec.key(t.assignments)
            resource = float(t.assignments[self.resource_name])  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError, IndexError):
            return None
        where = self._from_labels(t.labels) or self._from_resource(key, resource)
        if where is None:
            return None
        s, i = where
        rung = self._bracket(s).rungs[i]
        if key not in rung.entries:
            if rung.full:
                return None
            values = {name: t.assignments[name] for name in self._codec.names}
            rung.entries[key] = _Entry(values)
            self._configs.add_key(key, values)
            self._bracket_of.setdefault(key, s)
        return s, i, key

    def _from_labels(self, labels: Mapping[str, str]) -> tuple[int, int] | None:
        try:
            s, i = int(labels[LABEL_BRACKET]), int(labels[LABEL_RUNG])
        except (KeyError, ValueError):
            return None
        return (s, i) if 0 <= i <= s <= self.s_max else None

    def _from_resource(self, key: Key, resource: float) -> tuple[int, int] | None:
        def same(a: Value) -> bool:
            return math.isclose(float(a), resource, rel_tol=1e-9, abs_tol=1e-12)

        s = self._bracket_of.get(key)
        if s is not None:
            for i, rung in enumerate(self._bracket(s).rungs):
                if same(rung.resource):
                    return s, i
            return None
        for bracket in self.brackets:
            if same(bracket.rungs[0].resource):
                return bracket.s, 0
        return None

    # -- ask ----------------------------------------------------------------------------

    def ask(self, n: int) -> list[Assignment]:
        if n <= 0:
            return []
        if all(b.complete for b in self.brackets):
            raise SearchSpaceExhausted(f"hyperband finished all {self.s_max + 1} brackets")
        ready = sum(self._ready(b) for b in self.brackets)
        running = self.running_trials()
        if ready < n and running:
            raise SuggestionsPending(
                f"hyperband can start {ready} of the {n} trials asked for; the rest wait for "
                f"{running} running trial(s) to finish their rung")
        batch: list[Assignment] = []
        for bracket in self.brackets:
            if len(batch) >= n:
                break
            batch += self._fill(bracket, n - len(batch))
        if not batch and all(b.complete for b in self.brackets):  # a finite space ran out
            raise SearchSpaceExhausted(f"hyperband finished all {self.s_max + 1} brackets")
        if len(batch) < n:
            batch += self._fillers(n - len(batch), batch)
        return batch

    def running_trials(self) -> int:
        """Trials of this run's brackets that have not finished (fillers not counted)."""
        return sum(1 for b in self.brackets for r in b.rungs for e in r.entries.values() if not e.finished)

    def _ready(self, bracket: _Bracket) -> int:
        """How many assignments ``_fill`` could give for ``bracket`` now (without doing it)."""
        i = self._open_rung(bracket)
        if i is None:
            return 0
        if i == 0:
            rung = bracket.rungs[0]
            free = rung.size - len(rung.entries)
            remaining = self._configs.remaining
            return free if remaining is None else min(free, remaining)
        return len(self._promotions(bracket, i))

    @staticmethod
    def _open_rung(bracket: _Bracket) -> int | None:
        """The rung of ``bracket`` that can take trials now: its first unfinished rung, unless
        that one is full (waiting for its running trials) or waits for the rung below."""
        for i, rung in enumerate(bracket.rungs):
            if rung.complete:
                continue
            if rung.full or (i > 0 and not bracket.rungs[i - 1].complete):
                return None
            return i
        return None

    @staticmethod
    def _promotions(bracket: _Bracket, i: int) -> list[Key]:
        """The best of rung ``i - 1`` that rung ``i`` has not taken yet."""
        rung, previous = bracket.rungs[i], bracket.rungs[i - 1]
        return [key for key in previous.best(rung.size) if key not in rung.entries]

    def _fillers(self, k: int, batch: list[Assignment]) -> list[Assignment]:
        """k fresh configurations outside every bracket, at the smallest resource."""
        resource = self.brackets[0].rungs[0].resource
        fillers = [self._at(values, resource, {LABEL_FILLER: "true"})
                   for values in self._configs.fill([], k, self._rng)]
        if len(fillers) < k:
            log.warning("hyperband: the search space has no configuration left for %d filler trial(s); "
                        "the reply holds %d assignments instead of %d", k - len(fillers),
                        len(batch) + len(fillers), len(batch) + k)
        return fillers

    def _fill(self, bracket: _Bracket, k: int) -> list[Assignment]:
        """Up to k assignments from the first rung of ``bracket`` that can take trials."""
        i = self._open_rung(bracket)
        if i is None:
            return []
        rung = bracket.rungs[i]
        if i == 0:
            keys = self._new_configs(bracket, min(k, rung.size - len(rung.entries)))
        else:
            previous = bracket.rungs[i - 1]
            keys = self._promotions(bracket, i)[:k]
            for key in keys:
                rung.entries[key] = _Entry(dict(previous.entries[key].values))
        return [self._assignment(bracket.s, i, key) for key in keys]

    def _new_configs(self, bracket: _Bracket, k: int) -> list[Key]:
        rung = bracket.rungs[0]
        points = self._configs.fill([], k, self._rng)
        if len(points) < k and self._configs.remaining == 0:
            bracket.resize(len(rung.entries) + len(points))  # fewer configurations exist
        keys = []
        for values in points:
            key = self._codec.key(values)
            rung.entries[key] = _Entry(values)
            self._bracket_of[key] = bracket.s
            keys.append(key)
        return keys

    def _assignment(self, s: int, i: int, key: Key) -> Assignment:
        rung = self._bracket(s).rungs[i]
        return self._at(rung.entries[key].values, rung.resource, {LABEL_BRACKET: str(s), LABEL_RUNG: str(i)})

    def _at(self, config: Mapping[str, Value], resource: Value, labels: dict[str, str]) -> Assignment:
        """An assignment of ``config`` at ``resource``, parameters in the experiment's order."""
        values = {**config, self.resource_name: resource}
        return Assignment(values={name: values[name] for name in self.space.names}, labels=labels)

    # -- progress -----------------------------------------------------------------------

    def state_settings(self) -> dict[str, str]:
        current = next((b for b in self.brackets if not b.complete), None)
        current_i = next((i for i, r in enumerate(current.rungs) if not r.complete), 0) if current else 0
        running = self.running_trials()
        first = current.rungs[0] if current else self.brackets[-1].rungs[0]
        return {
            "eta": f"{self.eta:g}", "s_max": str(self.s_max), "r_l": f"{self.r_l:g}",
            "b_l": f"{(self.s_max + 1) * self.r_l:g}", "r": str(first.resource), "n": str(first.size),
            "current_s": str(current.s if current else -1), "current_i": str(current_i),
            "resource_name": self.resource_name, "evaluating_trials": str(running),
        }
