"""The memoising TPE sampler must suggest exactly what optuna's TPESampler suggests."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import TPESampler
from optuna.trial import create_trial

from suggestion import tpe

DISTRIBUTIONS = {"x": FloatDistribution(-5, 5), "y": FloatDistribution(1e-4, 1, log=True),
                 "q": FloatDistribution(0, 1, step=0.1), "n": IntDistribution(1, 64),
                 "c": CategoricalDistribution(["a", "b", "c"])}


def _run(cls: type, multivariate: bool, direction: str) -> list[dict[str, object]]:
    study = optuna.create_study(direction=direction,
                                sampler=cls(seed=3, constant_liar=True, multivariate=multivariate))
    for i in range(60):
        params = {"x": (i * 7 % 100) / 10 - 5, "y": 10 ** -(i % 4), "q": (i % 11) / 10, "n": 1 + i % 64, "c": "abc"[i % 3]}
        study.add_trial(create_trial(params=params, distributions=DISTRIBUTIONS, value=round(params["x"] ** 2)))
    out = []
    for _ in range(6):
        asked = [study.ask(DISTRIBUTIONS) for _ in range(3)]  # running trials: constant liar
        out += [t.params for t in asked]
        for t in asked[:2]:  # one of each batch stays running
            study.tell(t, float(t.params["x"]) ** 2)  # type: ignore[arg-type]
    return out


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
@pytest.mark.parametrize("multivariate", [False, True])
def test_caching_sampler_matches_optuna(multivariate: bool, direction: str) -> None:
    # values are rounded so that ties exercise the order of the ranking
    assert tpe._FAST, "optuna's private TPE methods changed; the fast path is off"
    assert _run(tpe._CachingTPESampler, multivariate, direction) == _run(TPESampler, multivariate, direction)
