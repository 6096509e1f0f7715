"""Surrogate models for scikit-optimize, fixed for current numpy/scikit-learn and made fast.

scikit-optimize is archived (0.10.2 is the last release), so its two defects that bite here
are patched by subclassing rather than waiting for upstream:

* ``GaussianProcessRegressor.predict(return_std=True)`` computes the predictive variance with
  a three-operand ``einsum`` that numpy evaluates naively: O(m * n^2) with a large constant,
  ~0.7 s for the 10,000 candidate points of one acquisition pass at 100 observations. The
  same quantity as ``sum((K_trans @ K_inv) * K_trans, axis=1)`` takes a few milliseconds.
* ``gp_hedge`` evaluates three acquisition functions on the same 10,000 candidates and each
  one predicts them again; ``_MemoPredict`` answers the repeats from the first prediction.
* ``GradientBoostingQuantileRegressor`` is rejected by skopt's own ``is_regressor`` check
  under scikit-learn >= 1.6 (estimator type now comes from ``__sklearn_tags__``) and its
  ``predict(return_std=True)`` calls ``np.in1d``, removed in numpy 2.4.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from skopt.learning import (  # type: ignore[import-untyped]
    ExtraTreesRegressor, GaussianProcessRegressor, GradientBoostingQuantileRegressor, RandomForestRegressor)
from skopt.learning.gaussian_process.kernels import ConstantKernel, HammingKernel, Matern  # type: ignore[import-untyped]
from skopt.space import Space  # type: ignore[import-untyped]
from skopt.utils import normalize_dimensions  # type: ignore[import-untyped]

__all__ = ["FastGP", "GBRT", "RF", "ET", "make_gp"]


class _MemoPredict:
    """Remember the last ``predict(X, return_std=True)`` for the very same array object.
    The memo holds a reference to ``X``, so identity cannot be recycled; skopt never
    mutates its candidate arrays."""

    def _memo_predict(self, X: Any, compute: Any) -> Any:
        memo = self.__dict__.get("_memo")
        if memo is not None and memo[0] is X:
            return memo[1]
        out = compute()
        self.__dict__["_memo"] = (X, out)
        return out


class FastGP(_MemoPredict, GaussianProcessRegressor):  # type: ignore[misc]
    def predict(self, X: Any, return_std: bool = False, return_cov: bool = False,
                return_mean_grad: bool = False, return_std_grad: bool = False) -> Any:
        if (not return_std or return_cov or return_mean_grad or return_std_grad
                or not hasattr(self, "X_train_")):
            return super().predict(X, return_std=return_std, return_cov=return_cov,
                                   return_mean_grad=return_mean_grad, return_std_grad=return_std_grad)
        return self._memo_predict(X, lambda: self._predict_std(X))

    def _predict_std(self, X: Any) -> Any:
        X = np.asarray(X, dtype=float)
        K_trans = self.kernel_(X, self.X_train_)
        y_mean = K_trans.dot(self.alpha_)
        y_mean = self.y_train_std_ * y_mean + self.y_train_mean_
        y_var = self.kernel_.diag(X) - np.sum(K_trans.dot(self.K_inv_) * K_trans, axis=1)
        y_var = np.maximum(y_var, 0.0) * self.y_train_std_ ** 2
        return y_mean, np.sqrt(y_var)


def make_gp(dimensions: list[Any], random_state: int | None = None) -> FastGP:
    """The GP skopt's ``cook_estimator("GP", space)`` builds, as a ``FastGP``."""
    space = Space(normalize_dimensions(Space(dimensions).dimensions))
    n_dims = space.transformed_n_dims
    if space.is_categorical:
        other = HammingKernel(length_scale=np.ones(n_dims))
    else:
        other = Matern(length_scale=np.ones(n_dims), length_scale_bounds=[(0.01, 100)] * n_dims, nu=2.5)
    return FastGP(kernel=ConstantKernel(1.0, (0.01, 1000.0)) * other, normalize_y=True,
                  noise="gaussian", n_restarts_optimizer=2, random_state=random_state)


class RF(_MemoPredict, RandomForestRegressor):  # type: ignore[misc]
    def predict(self, X: Any, return_std: bool = False) -> Any:
        if not return_std:
            return super().predict(X)
        return self._memo_predict(X, lambda: super(RF, self).predict(X, return_std=True))


class ET(_MemoPredict, ExtraTreesRegressor):  # type: ignore[misc]
    def predict(self, X: Any, return_std: bool = False) -> Any:
        if not return_std:
            return super().predict(X)
        return self._memo_predict(X, lambda: super(ET, self).predict(X, return_std=True))


class GBRT(_MemoPredict, GradientBoostingQuantileRegressor):  # type: ignore[misc]
    _estimator_type = "regressor"  # scikit-learn < 1.6

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.estimator_type = "regressor"
        return tags

    def predict(self, X: Any, return_std: bool = False, return_quantiles: bool = False) -> Any:
        if not return_std or return_quantiles:
            return super().predict(X, return_std=return_std, return_quantiles=return_quantiles)
        return self._memo_predict(X, lambda: self._predict_std(X))

    def _predict_std(self, X: Any) -> Any:
        if not all(q in self.quantiles for q in (0.16, 0.5, 0.84)):
            raise ValueError("return_std needs the quantiles 0.16, 0.5 and 0.84")
        low = self.regressors_[self.quantiles.index(0.16)].predict(X)
        high = self.regressors_[self.quantiles.index(0.84)].predict(X)
        mean = self.regressors_[self.quantiles.index(0.5)].predict(X)
        return mean, (high - low) / 2.0
