"""Pair statistics for statistical arbitrage, in numpy only.

- `ols_hedge`: the hedge ratio, y = alpha + beta * x + e by least squares.
- `adf_t`: the augmented Dickey-Fuller t-statistic without a constant (for OLS residuals,
  whose mean is already zero).
- `eg_critical`: MacKinnon's (2010) response-surface critical value of the Engle-Granger
  test for two variables with a constant in the cointegrating regression.
- `half_life`: how long the spread takes to close half a gap, from an AR(1) fit.
- `return_correlation`: Pearson correlation of the two legs' log returns.
- `fit_pair`: all of the above for one pair over one window.
- `KalmanHedge`: a time-varying (alpha, beta) as a random walk, updated one sample at a time.

Series are log prices sampled at a fixed spacing; times are in samples unless named `_s`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# MacKinnon (2010), table 2, N = 2, constant ("c"): crit(T) = b0 + b1/T + b2/T^2
EG_CRITICAL = {
    0.01: (-3.89644, -10.9519, -33.527),
    0.05: (-3.33613, -6.1101, -6.823),
    0.10: (-3.04445, -4.2412, -2.720),
}


def ols_hedge(y: np.ndarray, x: np.ndarray) -> tuple[float, float, np.ndarray]:
    """(alpha, beta, residuals) of y = alpha + beta * x by ordinary least squares."""
    x_mean, y_mean = x.mean(), y.mean()
    dx = x - x_mean
    sxx = float(dx @ dx)
    beta = float(dx @ (y - y_mean)) / sxx if sxx > 0 else math.nan
    alpha = float(y_mean - beta * x_mean)
    return alpha, beta, y - alpha - beta * x


def adf_t(series: np.ndarray, lags: int) -> float:
    """t-statistic of gamma in d(e_t) = gamma * e_(t-1) + sum_i phi_i * d(e_(t-i)) + u_t
    (no constant, `lags` lagged differences); NaN when the regression is degenerate."""
    diff = np.diff(series)
    rows = len(diff) - lags
    if rows <= lags + 3:
        return math.nan
    columns = [series[lags:-1]] + [diff[lags - i:-i] for i in range(1, lags + 1)]
    design = np.column_stack(columns)
    target = diff[lags:]
    gram = design.T @ design
    try:
        gram_inv = np.linalg.inv(gram)
    except np.linalg.LinAlgError:
        return math.nan
    coef = gram_inv @ (design.T @ target)
    resid = target - design @ coef
    dof = rows - design.shape[1]
    variance = float(resid @ resid) / dof
    se = math.sqrt(variance * gram_inv[0, 0]) if variance > 0 and gram_inv[0, 0] > 0 else 0.0
    return float(coef[0]) / se if se > 0 else math.nan


def eg_critical(nobs: int, significance: float) -> float:
    """Engle-Granger critical value for two variables at `significance` (0.01, 0.05 or
    0.10) with `nobs` observations in the test regression."""
    b0, b1, b2 = EG_CRITICAL[significance]
    return b0 + b1 / nobs + b2 / (nobs * nobs)


def half_life(residuals: np.ndarray) -> float:
    """Half-life in samples of the AR(1) d(e_t) = c + lam * e_(t-1): -ln 2 / ln(1 + lam);
    inf when the spread does not revert (lam >= 0), 0 when it overshoots within a sample."""
    lagged = residuals[:-1]
    change = np.diff(residuals)
    centred = lagged - lagged.mean()
    sxx = float(centred @ centred)
    if sxx <= 0:
        return math.inf
    lam = float(centred @ (change - change.mean())) / sxx
    if lam >= 0:
        return math.inf
    if lam <= -1:
        return 0.0
    return -math.log(2) / math.log(1 + lam)


def return_correlation(y: np.ndarray, x: np.ndarray) -> float:
    """Pearson correlation of the sample-to-sample changes of y and x (log returns for
    log prices); NaN when either leg does not move."""
    ry, rx = np.diff(y), np.diff(x)
    ry, rx = ry - ry.mean(), rx - rx.mean()
    norm = math.sqrt(float(ry @ ry) * float(rx @ rx))
    return float(ry @ rx) / norm if norm > 0 else math.nan


@dataclass(frozen=True)
class PairFit:
    """One fit of a pair (y, x) over a window; the spread is y - alpha - beta * x."""

    alpha: float
    beta: float
    mean: float            # mean of the spread over the window (0 up to rounding for OLS)
    std: float             # standard deviation of the spread over the window
    adf_t: float           # Engle-Granger ADF t-statistic (more negative: more mean-reverting)
    critical: float        # the critical value it is compared with
    half_life_s: float     # seconds
    correlation: float     # of the legs' returns
    nobs: int              # samples in the window
    resid_var: float       # variance of the OLS residuals (the Kalman filter's observation noise)

    @property
    def cointegrated(self) -> bool:
        """The unit-root null is rejected: t below the critical value."""
        return self.adf_t < self.critical

    def passes(self, min_half_life_s: float, max_half_life_s: float, min_correlation: float) -> bool:
        """The entry filters: cointegrated, half-life within bounds, correlated enough."""
        return (self.cointegrated and min_half_life_s <= self.half_life_s <= max_half_life_s
                and self.correlation >= min_correlation)


def fit_pair(y: np.ndarray, x: np.ndarray, lags: int, significance: float, sample_s: float) -> PairFit:
    """Hedge ratio, cointegration test, half-life and correlation of one pair of log-price
    series sampled every `sample_s` seconds."""
    alpha, beta, resid = ols_hedge(y, x)
    if math.isnan(beta):
        nan = math.nan
        return PairFit(alpha, beta, nan, nan, nan, nan, math.inf, nan, len(y), nan)
    t = adf_t(resid, lags)
    nobs = len(resid) - 1 - lags
    return PairFit(alpha=alpha, beta=beta, mean=float(resid.mean()), std=float(resid.std()), adf_t=t,
                   critical=eg_critical(max(nobs, 1), significance), half_life_s=half_life(resid) * sample_s,
                   correlation=return_correlation(y, x), nobs=len(y), resid_var=float(resid.var()))


class KalmanHedge:
    """(alpha, beta) of y = alpha + beta * x as a random walk with per-sample variance
    delta / (1 - delta) on each coefficient (state noise), observed with the variance of
    the last OLS fit's residuals (observation noise). Started from an OLS fit."""

    def __init__(self, fit: PairFit, delta: float):
        self.state = np.array([fit.alpha, fit.beta])
        self.cov = np.zeros((2, 2))
        self.noise = delta / (1.0 - delta)
        self.obs_var = max(fit.resid_var, 1e-18)
        self.forecast_var = self.obs_var

    @property
    def alpha(self) -> float:
        return float(self.state[0])

    @property
    def beta(self) -> float:
        return float(self.state[1])

    def update(self, y: float, x: float) -> float:
        """Take one sample; return its forecast error (y minus the predicted y)."""
        cov = self.cov + self.noise * np.eye(2)
        h = np.array([1.0, x])
        error = y - float(h @ self.state)
        ph = cov @ h
        self.forecast_var = float(h @ ph) + self.obs_var
        gain = ph / self.forecast_var
        self.state = self.state + gain * error
        self.cov = cov - np.outer(gain, ph)
        return error
