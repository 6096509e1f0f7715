"""ENAS: an LSTM controller that learns which architectures score well (reference §7.7).

Input is the experiment's ``nasConfig`` (``graphConfig.numLayers``, ``inputSizes``,
``outputSizes`` and the operations with their parameters); each trial gets upstream's two
assignments, ``architecture`` and ``nn_config`` (see ``suggestion._enas_space``), so
upstream's ENAS trial images and templates work unchanged. Settings, defaults and ranges
are upstream's; ``"None"`` switches off temperature, tanh constant, entropy weight and
skip weight, as there.

Unlike upstream's service:

- The controller learns from what trials measured: the architectures they ran and the
  objective each reached (negated when minimizing), not fresh samples all rewarded with the
  mean of every succeeded trial.
- Its state is a pure function of the trial history (see ``suggestion._enas_controller``):
  a service or ``katib run`` that restarts rebuilds the same controller from the trials and
  suggests what the old one would have, instead of starting from an untrained controller.
- No succeeded trial yet is a normal reply: the current (initial) policy's samples.
- A batch holds distinct architectures, none that an earlier trial ran, while the policy
  yields new ones within a bounded number of draws. A space with fewer architectures than
  asked for (one layer, two op ids, a batch of three) repeats some: the reply must hold
  exactly as many as asked, and a repeat is a second measurement of the same network.

Needs PyTorch (``pip install 'katib-lite[nas]'``); validation says so before anything runs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import math
from typing import TYPE_CHECKING, ClassVar, Mapping, Sequence

from katib.api.model import ObjectiveSpec
from katib.api.space import SearchSpace
from katib.errors import FieldError, SettingsError, ValidationError
from suggestion._enas_space import NasSpace, architecture_text, parse_architecture
from suggestion.base import Algorithm, Assignment, TrialResult, check_known, parse_int

if TYPE_CHECKING:
    from suggestion._enas_controller import ControllerSettings, ReplayedPolicy

__all__ = ["ENAS", "ARCHITECTURE", "NN_CONFIG"]

log = logging.getLogger(__name__)

ARCHITECTURE = "architecture"
NN_CONFIG = "nn_config"
_INSTALL = "pip install 'katib-lite[nas]'"
_DRAW_ROUNDS = 20  # batches of fresh samples tried before a reply may repeat architectures

# name -> (default, lower bound, lower bound exclusive, upper bound, "None" allowed); upstream's table.
_FLOATS: dict[str, tuple[float, float, bool, float | None, bool]] = {
    "controller_temperature": (5.0, 0.0, True, None, True),
    "controller_tanh_const": (2.25, 0.0, True, None, True),
    "controller_entropy_weight": (1e-5, 0.0, True, None, True),
    "controller_baseline_decay": (0.999, 0.0, True, 1.0, False),
    "controller_learning_rate": (5e-5, 0.0, True, 1.0, False),
    "controller_skip_target": (0.4, 0.0, True, 1.0, False),
    "controller_skip_weight": (0.8, 0.0, True, None, True),
}
_INTS: dict[str, int] = {"controller_hidden_size": 64, "controller_train_steps": 50, "controller_log_every_steps": 10}


def _float(settings: Mapping[str, str], key: str) -> float | None:
    default, low, low_exclusive, high, none_ok = _FLOATS[key]
    raw = settings.get(key)
    if raw is None or raw == "":
        return default
    if raw == "None":
        if none_ok:
            return None
        raise SettingsError(key, "cannot be None; give a number")
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(key, f"must be a number, got {raw!r}") from None
    if math.isnan(value) or value < low or (low_exclusive and value == low) or (high is not None and value > high):
        interval = f"in ({low:g}, {high:g}]" if high is not None else f"> {low:g}"
        off = ' (or "None" to switch it off)' if none_ok else ""
        raise SettingsError(key, f"must be {interval}{off}, got {raw}")
    return value


def parse_settings(settings: Mapping[str, str]) -> "ControllerSettings":
    """The controller's settings; SettingsError naming the first bad one."""
    from suggestion._enas_controller import ControllerSettings

    ints = {k: parse_int(settings, k, d, min_value=1) for k, d in _INTS.items()}
    floats = {k: _float(settings, k) for k in _FLOATS}
    return ControllerSettings(
        hidden_size=int(ints["controller_hidden_size"] or 64),
        temperature=floats["controller_temperature"],
        tanh_const=floats["controller_tanh_const"],
        entropy_weight=floats["controller_entropy_weight"],
        baseline_decay=float(floats["controller_baseline_decay"] or 0.999),
        learning_rate=float(floats["controller_learning_rate"] or 5e-5),
        skip_target=float(floats["controller_skip_target"] or 0.4),
        skip_weight=floats["controller_skip_weight"],
        train_steps=int(ints["controller_train_steps"] or 50),
        log_every_steps=int(ints["controller_log_every_steps"] or 10),
    )


def _check_settings(settings: Mapping[str, str]) -> None:
    for key in _INTS:
        parse_int(settings, key, None, min_value=1)
    for key in _FLOATS:
        _float(settings, key)


def require_torch() -> None:
    if importlib.util.find_spec("torch") is None:
        raise ValidationError(FieldError("spec.algorithm.algorithmName",
                                         f"enas trains its controller with PyTorch, which is not installed: {_INSTALL}"))


class ENAS(Algorithm):
    name = "enas"
    settings: ClassVar[Mapping[str, str | None]] = {
        **{k: repr(v[0]) for k, v in _FLOATS.items()}, **{k: str(v) for k, v in _INTS.items()}}

    @classmethod
    def validate_settings(cls, settings: Mapping[str, str], space: SearchSpace, objective: ObjectiveSpec, *,
                          max_trial_count: int | None = None, parallel_trial_count: int | None = None) -> None:
        check_known(cls.name, settings, cls.settings)
        _check_settings(settings)
        NasSpace(space.nas)
        require_torch()

    def __init__(self, space: SearchSpace, objective: ObjectiveSpec, settings: Mapping[str, str], *,
                 max_trial_count: int | None = None, parallel_trial_count: int | None = None,
                 seed: int | None = None) -> None:
        super().__init__(space, objective, settings, max_trial_count=max_trial_count,
                         parallel_trial_count=parallel_trial_count)
        require_torch()
        from suggestion._enas_controller import ReplayedPolicy

        self.nas = NasSpace(space.nas)
        self.controller_settings = parse_settings(settings)
        if seed is None:
            # Same nasConfig and settings, same search: the seed comes from what defines it.
            ops = [op.to_dict() for op in self.nas.operations]
            doc = json.dumps([self.nas.num_layers, ops, sorted(settings.items())], sort_keys=True)
            seed = int.from_bytes(hashlib.sha256(doc.encode()).digest()[:4], "big")
        self.seed = seed
        self.controller: ReplayedPolicy = ReplayedPolicy(self.nas.num_layers, self.nas.num_operations,
                                                         self.controller_settings, seed,
                                                         round_size=parallel_trial_count or 1)
        # name -> (sort key, architecture or None, reward or None); every trial ever told.
        self._trials: dict[str, tuple[tuple[float, str], list[list[int]] | None, float | None]] = {}

    def tell(self, trials: Sequence[TrialResult]) -> None:
        for t in trials:
            arc = self.nas.check(parse_architecture(str(t.assignments.get(ARCHITECTURE, ""))))
            if arc is None and t.name not in self._trials:
                log.warning("trial %r has no architecture of this search space; the controller will not learn "
                            "from it", t.name)
            reward = None
            if t.has_value and t.value is not None and not math.isinf(t.value):
                reward = -t.value if self.minimize else t.value
            self._trials[t.name] = ((t.order, t.name), arc, reward)

    def history(self) -> list[tuple[tuple[float, str], list[list[int]], float]]:
        """The observed (sort key, architecture, reward) pairs the controller learns from."""
        return sorted((key, arc, reward) for key, arc, reward in self._trials.values()
                      if arc is not None and reward is not None)

    def ask(self, n: int) -> list[Assignment]:
        self.controller.fit(self.history())
        seen = {architecture_text(arc) for _, arc, _ in self._trials.values() if arc is not None}
        batch: dict[str, list[list[int]]] = {}
        repeats: dict[str, list[list[int]]] = {}
        draws: list[list[list[int]]] = []
        for attempt in range(_DRAW_ROUNDS):
            # Sampling seeds depend on the history's size only, so a rebuilt controller draws
            # exactly what the long-lived one would have.
            draws = self.controller.sample(max(n, 8), self._draw_seed(attempt))
            for arc in draws:
                text = architecture_text(arc)
                if text in seen:
                    repeats.setdefault(text, arc)
                elif len(batch) < n:
                    batch.setdefault(text, arc)
            if len(batch) >= n:
                break
        chosen = list(batch.values())
        for text, arc in repeats.items():  # a small space: architectures trials ran before
            if len(chosen) >= n:
                break
            if text not in batch:
                chosen.append(arc)
        while len(chosen) < n:  # a space smaller than the batch
            chosen.append(draws[len(chosen) % len(draws)])
        if len(batch) < n:
            log.info("ENAS found %d new architecture(s) for a batch of %d; the rest repeat earlier ones",
                     len(batch), n)
        return [Assignment({ARCHITECTURE: architecture_text(arc), NN_CONFIG: self.nas.nn_config_text(arc)})
                for arc in chosen[:n]]

    def _draw_seed(self, attempt: int) -> int:
        doc = f"{self.seed}/{len(self._trials)}/{attempt}"
        return int.from_bytes(hashlib.sha256(doc.encode()).digest()[:8], "big") >> 1

    def policy_probabilities(self) -> list[float]:
        """The first layer's op-id probabilities under the current policy (for inspection)."""
        import torch

        self.controller.fit(self.history())
        with torch.no_grad():
            return [float(p) for p in torch.softmax(self.controller.policy.op_logits(), dim=0)]
