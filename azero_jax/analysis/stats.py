"""Success rates and their confidence intervals for comparing search strategies.

Rates get Wilson score intervals. The evolution / random-search ratio gets a conservative 95%
interval by Bonferroni: each rate's 97.5% Wilson interval, then [low1 / high2, high1 / low2]. It
covers whenever both intervals do, and it handles zero counts (a zero denominator gives an
infinite upper bound, a zero numerator a zero lower bound).
"""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054  # two-sided 95%
Z975 = 2.241402727604947  # two-sided 97.5%, for the Bonferroni ratio interval


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
  """Wilson score interval of a binomial proportion; (0, 1) with no trials."""
  if trials <= 0:
    return 0.0, 1.0
  p = successes / trials
  denominator = 1 + z * z / trials
  centre = (p + z * z / (2 * trials)) / denominator
  half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
  low = 0.0 if successes == 0 else max(0.0, centre - half)
  return low, 1.0 if successes == trials else min(1.0, centre + half)


def run_probability(program_rate: float, evaluations: int) -> float:
  """Probability that a run of `evaluations` independent programs has at least one success."""
  if program_rate >= 1.0:
    return 1.0
  return -math.expm1(evaluations * math.log1p(-program_rate))


def ratio(numerator: float, denominator: float) -> float:
  """numerator / denominator with 0 / 0 = nan and x / 0 = inf."""
  if denominator > 0:
    return numerator / denominator
  return math.nan if numerator == 0 else math.inf


def success_ratio(run_successes: int, runs: int, program_successes: int, programs: int,
                  evaluations: int) -> tuple[float, tuple[float, float]]:
  """Evolution's run success rate over random search's run success probability, with its CI.

  Random search's probability that one run of `evaluations` programs succeeds is computed from
  its per-program rate (all its programs are independent draws), which is far more precise than
  counting its successful runs.
  """
  rate = run_successes / runs
  program_rate = program_successes / programs
  low1, high1 = wilson(run_successes, runs, Z975)
  low2, high2 = (run_probability(b, evaluations)
                 for b in wilson(program_successes, programs, Z975))
  value = ratio(rate, run_probability(program_rate, evaluations))
  return value, (ratio(low1, high2), ratio(high1, low2))


def t_quantile(probability: float, df: int) -> float:
  """The `probability` quantile (> 0.5) of Student's t with `df` degrees of freedom (bisection on
  its CDF, 1 - I_{df / (df + t^2)}(df / 2, 1 / 2) / 2)."""
  def cdf(t: float) -> float:
    x = df / (df + t * t)
    return 1.0 - 0.5 * _regularized_beta(x, df / 2, 0.5)

  low, high = 0.0, 1e3
  for _ in range(60):
    middle = (low + high) / 2
    low, high = (middle, high) if cdf(middle) < probability else (low, middle)
  return (low + high) / 2


def _regularized_beta(x: float, a: float, b: float, steps: int = 20000) -> float:
  """I_x(a, b) by the midpoint rule after substituting t = u^(1/a), which turns
  t^(a-1) (1-t)^(b-1) dt into (1 - u^(1/a))^(b-1) du / a (no singularity at 0)."""
  upper = x ** a
  u = (np.arange(steps) + 0.5) / steps * upper
  integral = float(np.sum((1 - u ** (1 / a)) ** (b - 1))) * upper / steps / a
  return integral * math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b))


def mean_ci95(values) -> tuple[float, tuple[float, float]]:
  """The mean of `values` and its 95% Student-t interval (the mean itself for one value)."""
  values = np.asarray(values, dtype=np.float64)
  mean = float(values.mean())
  if len(values) < 2:
    return mean, (mean, mean)
  half = t_quantile(0.975, len(values) - 1) * float(values.std(ddof=1)) / math.sqrt(len(values))
  return mean, (mean - half, mean + half)
