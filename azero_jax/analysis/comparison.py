"""Evolution versus random search on one setting: runs with their histories, and the summary.

Both strategies get the same task collection, memory, op lists, program sizes and budget per
run, over the same seeds: a number of evaluated programs (`evaluations`, the paper's measure), or
a number of train steps (`max_train_steps`, the original driver's budget, under which FEC hits
are nearly free). A run succeeds when one of its
programs beats `threshold` on T_search. Random search draws every program independently from the
initial sizes (REFERENCE.md §9.2) and keeps the best ever; evolution is the configured
regularized evolution. In a learning-only setting (paper §4.1) random draws fill only Learn, with
Setup and Predict fixed to a reference program's forward pass.

The composition follows `search.driver`, except for the evaluation budget and that every batch is
recorded.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import numpy as np

from azero_jax.analysis import stats
from azero_jax.analysis.references import forward_pass
from azero_jax.program import COMPONENTS, Program
from azero_jax.search import driver
from azero_jax.search.budget import TrainBudget
from azero_jax.search.driver import SearchConfig
from azero_jax.search.evolution import RegularizedEvolution
from azero_jax.search.fitness import SearchEvaluator, search_widths
from azero_jax.search.gc_tuning import relaxed_gc
from azero_jax.search.generator import InitModel, pad
from azero_jax.search.random_search import RandomSearch
from azero_jax.tasks.task import Task

STRATEGIES = driver.STRATEGIES  # ("evolution", "random")


@dataclasses.dataclass(frozen=True)
class Comparison:
  """One setting: the search configuration, the budget per run and the success threshold.

  The budget is `evaluations` programs per run, or (with `max_train_steps`) the end of the first
  sweep of P programs by which a run has used that many train steps (the driver's rule).

  With `stop_at_success` a run also ends at the end of the sweep in which it first succeeds
  (its per-program counts then cover the programs up to there).

  With `repeat_experiments` (an `evaluations` budget only) a run is the driver's repeated
  experiments: at the end of the sweep in which an experiment has used the config's
  `max_train_steps`, the search starts afresh (new population and FEC cache, same T_search)
  until the run's evaluations are spent.

  `base` is what random programs start from (its functions with an op list are redrawn);
  `learn_only` makes evolution start from random Learns on it too. `reference` is a hand-designed
  program evaluated beside the searches. `random_search_fec` gives random search the FEC cache
  as well (off by default: independent random programs seldom share a fingerprint, so it costs
  more than it saves).
  """

  config: SearchConfig
  evaluations: int | None
  threshold: float
  base: Program
  learn_only: bool = False
  reference: Program | None = None
  random_search_fec: bool = False
  max_train_steps: int | None = None
  stop_at_success: bool = False
  repeat_experiments: bool = False

  def __post_init__(self):
    if (self.evaluations is None) == (self.max_train_steps is None):
      raise ValueError("give exactly one budget: evaluations or max_train_steps")
    if self.repeat_experiments and self.evaluations is None:
      raise ValueError("repeat_experiments needs an evaluations budget")
    if min(self.evaluations or 1, self.max_train_steps or 1) < 1:
      raise ValueError(f"the budget must be >= 1, got evaluations={self.evaluations}, "
                       f"max_train_steps={self.max_train_steps}")
    memory = self.config.memory
    for program in (self.base, self.reference):
      if program is not None:
        program.check_addresses(memory.num_scalars, memory.num_vectors, memory.num_matrices)


def base_program(config: SearchConfig, reference: Program | None = None,
                 learn_only: bool = False) -> Program:
  """NO_OPs of the initial sizes or, with `learn_only`, the reference's forward pass."""
  if not learn_only:
    return pad(Program(), config.init_sizes)
  if reference is None:
    raise ValueError("learn_only needs a reference program for Setup and Predict")
  if any(config.op_lists[:2]) or not config.op_lists[2]:
    raise ValueError("learn_only searches only Learn: setup_ops and predict_ops must be empty "
                     "and learn_ops non-empty")
  return forward_pass(reference, config.init_sizes)


def default_evaluations(config: SearchConfig, tasks: Sequence[Task]) -> int:
  """The evaluations `max_train_steps` pays for without FEC: steps / (train steps per program)."""
  per_program = sum(task.num_train_examples * task.num_epochs for task in tasks)
  return max(1, config.max_train_steps // per_program)


def op_sets(comparison: Comparison) -> tuple[tuple[int, ...], ...]:
  """Ops each function may hold: its op list plus those of the fixed programs."""
  fixed = [comparison.base, driver.initial(comparison.config)]
  fixed += [comparison.reference] if comparison.reference is not None else []
  return tuple(tuple(sorted(set(allowed).union(
      *({inst.op for inst in program.component(name)} for program in fixed))))
               for name, allowed in zip(COMPONENTS, comparison.config.op_lists))


def make_strategy(comparison: Comparison, strategy: str) -> RegularizedEvolution | RandomSearch:
  """Random search over draws from `base`, or the configured regularized evolution."""
  config = comparison.config
  shuffler = driver.randomizer(config)
  draw = lambda rng, count: shuffler.programs(comparison.base, count, rng)
  if strategy == "random":
    return RandomSearch(draw, config.population_size, config.batch_size, comparison.threshold)
  if strategy != "evolution":
    raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
  start = draw
  if config.init_model is not InitModel.RANDOM:
    fixed = comparison.base if comparison.learn_only else driver.initial(config)
    start = lambda rng, count: [fixed] * count
  return RegularizedEvolution(driver.mutator(config), start, config.population_size,
                              config.tournament_size, config.batch_size)


def make_fitness(comparison: Comparison, strategy: str, tasks: Sequence[Task],
                 keys) -> SearchEvaluator:
  """The search fitness of one run on T_search, one PRNG key per island (FEC for random search
  only on request)."""
  config = comparison.config
  budget = (TrainBudget.from_init_sizes(config.init_sizes, config.train_budget,
                                        config.train_budget_threshold_factor)
            if config.train_budget else None)
  use_fec = strategy == "evolution" or comparison.random_search_fec
  widths = np.maximum(search_widths(comparison.base, config.max_sizes),
                      search_widths(driver.initial(config), config.max_sizes))
  return SearchEvaluator(
      tasks, memory=config.memory, op_lists=op_sets(comparison), widths=widths,
      batch_size=config.batch_size * config.num_islands, keys=keys,
      fec=config.fec if use_fec else None, budget=budget, combination=config.combination,
      dtype=config.dtype, max_abs_error=config.max_abs_error, fec_scope=config.fec_scope)


def warm_up(comparison: Comparison, strategy: str, tasks: Sequence[Task]) -> None:
  """Compiles the evaluator's shapes for a strategy, so run times do not include compilation."""
  rng = np.random.default_rng(0)
  shuffler = driver.randomizer(comparison.config)
  fitness = make_fitness(comparison, strategy, tasks, jax.random.key(0))
  batch = comparison.config.batch_size
  for count in sorted({batch, max(1, batch // 4), 1}, reverse=True):
    fitness.evaluate(shuffler.programs(comparison.base, count, rng))


class Point(NamedTuple):
  """One history entry, recorded at the end of every sweep of P programs and at the end."""

  evaluations: int
  seconds: float
  train_steps: int
  best: float  # best fitness evaluated so far
  mean: float  # mean fitness of the population (random search: of the last P programs)


class SearchRun(NamedTuple):
  strategy: str
  seed: int
  evaluations: int
  seconds: float
  best_fitness: float
  best_program: Program
  num_successes: int  # evaluated programs whose fitness beats the threshold
  first_success: int | None  # evaluations up to and including the first such program
  first_success_seconds: float | None
  history: list[Point]
  train_steps: int
  hit_rate: float

  @property
  def succeeded(self) -> bool:
    return self.first_success is not None


@dataclasses.dataclass
class _Record:
  """What a run has seen so far (updated batch by batch)."""

  best: float = -math.inf
  best_program: Program | None = None
  successes: int = 0
  first: int | None = None
  first_seconds: float | None = None
  steps: int = 0

  def observe(self, programs: Sequence[Program], fitness: np.ndarray, done: int,
              seconds: float, threshold: float) -> None:
    """Takes in one evaluated batch; `done` counts the evaluations before it."""
    beating = np.flatnonzero(fitness > threshold)
    if self.first is None and beating.size:
      self.first, self.first_seconds = done + int(beating[0]) + 1, seconds
    self.successes += int(beating.size)
    top = int(np.argmax(fitness))
    if fitness[top] > self.best:
      self.best, self.best_program = float(fitness[top]), programs[top]


def finished(comparison: Comparison, num_individuals: int, train_steps: int,
             succeeded: bool = False) -> bool:
  """Whether a run is over: its budget is spent (train steps are checked only at the end of a
  sweep), or it succeeded and `stop_at_success` (also at the end of a sweep)."""
  if comparison.max_train_steps is None and num_individuals >= comparison.evaluations:
    return True
  sweep_end = num_individuals > 0 and num_individuals % comparison.config.population_size == 0
  spent = comparison.max_train_steps is not None and train_steps >= comparison.max_train_steps
  return sweep_end and (spent or (succeeded and comparison.stop_at_success))


@relaxed_gc()
def run_search(comparison: Comparison, strategy: str, seed: int, tasks: Sequence[Task], *,
               report: Callable[[Point], None] | None = None) -> SearchRun:
  """One run until the budget is spent; `report` gets every history point.

  With `num_islands` K > 1 the run is K islands in lock-step (seeds from `driver.island_seeds`,
  migration as configured); evaluations and steps count all islands, and the budget check at the
  end of a sweep is the islands' common one. A last batch cut short by the evaluation limit keeps
  whole islands' children only when K = 1.
  """
  config = comparison.config
  population_size, num_islands = config.population_size, config.num_islands
  limit = comparison.evaluations or sys.maxsize
  seeds = driver.island_seeds(seed, num_islands)
  rngs = [np.random.default_rng(island_seed) for island_seed in seeds]
  keys = [jax.random.key(island_seed) for island_seed in seeds]
  search = make_strategy(comparison, strategy)
  fitness = make_fitness(comparison, strategy, tasks, keys)
  record, history = _Record(), []
  state = search.init(num_islands)
  total = lambda: int(state.num_individuals.sum())
  earlier = experiment_steps = 0  # evaluations of the finished experiments; steps of this one
  start = time.monotonic()
  while not finished(comparison, earlier + total(), record.steps, record.first is not None):
    done, before = earlier + total(), int(state.num_individuals[0])
    children = search.ask(state, rngs)
    if num_islands == 1:
      children = children[:limit - done]
    evaluation = fitness.evaluate(children, np.repeat(np.arange(num_islands),
                                                      len(children) // num_islands))
    state = search.tell(state, children, evaluation.fitness)
    if config.migration_every and strategy == "evolution":
      count = int(state.num_individuals[0])
      if (count >= population_size
          and count // config.migration_every > before // config.migration_every):
        state = search.migrate(state, rngs, config.migration_size)
    steps = int(evaluation.train_steps.sum())
    record.steps += steps
    experiment_steps += steps
    record.observe(children, evaluation.fitness, done, time.monotonic() - start,
                   comparison.threshold)
    sweep_end = int(state.num_individuals[0]) % population_size == 0
    if sweep_end or done + len(children) >= limit:
      point = Point(done + len(children), time.monotonic() - start, record.steps, record.best,
                    float(np.mean(search.population_fitness(state))))
      history.append(point)
      if report:
        report(point)
    if (comparison.repeat_experiments and sweep_end
        and experiment_steps >= config.max_train_steps * num_islands):
      earlier, experiment_steps = done + len(children), 0
      state = search.init(num_islands)
      fitness = make_fitness(comparison, strategy, tasks,
                             [jax.random.fold_in(key, earlier) for key in keys])
  return SearchRun(strategy, seed, earlier + total(), time.monotonic() - start,
                   record.best, record.best_program, record.successes, record.first,
                   record.first_seconds, history, record.steps, fitness.hit_rate)


def mean_fitness(comparison: Comparison, program: Program, tasks: Sequence[Task],
                 seed: int) -> float:
  """Mean fitness over `tasks` without FEC or budget (as the driver's final evaluation)."""
  return float(driver.mean_fitness([program], tasks, comparison.config, seed,
                                   op_sets(comparison))[0])


def median(values: Sequence[float]) -> float | None:
  return float(np.median(values)) if len(values) else None


def summarize(runs: Sequence[SearchRun]) -> dict:
  """Success rates (of runs and of programs) with Wilson 95% intervals, times and fitness.

  `run_success_probability_from_programs` is 1 - (1 - p)^E for the per-program rate p and the
  mean evaluations per run E: a run's chance if its programs were independent draws.
  """
  successful = [run for run in runs if run.succeeded]
  programs = sum(run.evaluations for run in runs)
  program_successes = sum(run.num_successes for run in runs)
  program_rate = program_successes / programs
  seconds = sum(run.seconds for run in runs)
  return {
      "runs": len(runs),
      "run_successes": len(successful),
      "run_success_rate": len(successful) / len(runs),
      "run_success_ci95": stats.wilson(len(successful), len(runs)),
      "programs": programs,
      "program_successes": program_successes,
      "program_success_rate": program_rate,
      "program_success_ci95": stats.wilson(program_successes, programs),
      "run_success_probability_from_programs": stats.run_probability(program_rate,
                                                                     programs / len(runs)),
      "median_evaluations_to_threshold": median([r.first_success for r in successful]),
      "median_seconds_to_threshold": median([r.first_success_seconds for r in successful]),
      "best_fitness_median": median([r.best_fitness for r in runs]),
      "best_fitness_max": max(r.best_fitness for r in runs),
      "median_run_seconds": median([r.seconds for r in runs]),
      "evaluations_per_second": programs / seconds if seconds > 0 else None,
  }


def evolution_ratio(evolution: dict, random: dict) -> dict:
  """Evolution's run success rate over random search's run success probability, with its CI."""
  value, interval = stats.success_ratio(evolution["run_successes"], evolution["runs"],
                                        random["program_successes"], random["programs"],
                                        round(random["programs"] / random["runs"]))
  return {"value": value, "ci95": interval,
          "method": "evolution run success rate / random-search run success probability "
                    "1-(1-p)^E (p: random search's per-program success rate, E: its "
                    "evaluations per run); 95% CI: Bonferroni combination of two 97.5% Wilson "
                    "intervals"}
