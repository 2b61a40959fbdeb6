"""Success rates and their confidence intervals for comparing search strategies.

Rates get Wilson score intervals. The evolution / random-search ratio gets a conservative 95%
interval by Bonferroni: each rate's 97.5% Wilson interval, then [low1 / high2, high1 / low2]. It
covers whenever both intervals do, and it handles zero counts (a zero denominator gives an
infinite upper bound, a zero numerator a zero lower bound).
"""

from __future__ import annotations

import math

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
