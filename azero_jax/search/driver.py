"""The experiment driver (REFERENCE.md §8.5): repeated searches, selection, final evaluation.

`run(config)` prints what the original's `run_search_experiment` prints, in its order and wording:
the random seed, then per experiment the progress lines of the search on T_search, the candidate's
search fitness and its fitness on T_select; at the end the best candidate's fitness on the unseen
final tasks and the program. One `np.random.Generator` seeded with the random seed drives
everything (task seeds, initial programs, tournaments, mutations, PRNG keys of the evaluator).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import NamedTuple

import jax
import numpy as np

from azero_jax import device, evaluator
from azero_jax.program import COMPONENTS, Program
from azero_jax.search.budget import TrainBudget
from azero_jax.search.evolution import RegularizedEvolution
from azero_jax.search.fitness import COMBINATIONS, FecSpec, SearchEvaluator, search_widths
from azero_jax.search.generator import InitModel, initial_program
from azero_jax.search.mutator import MutationType, Mutator
from azero_jax.search.random_search import RandomSearch
from azero_jax.search.randomizer import Memory, Randomizer
from azero_jax.tasks.collections import TaskCollections
from azero_jax.tasks.spec import TaskSpec

STRATEGIES = ("evolution", "random")
_SEED_RANGE = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class SearchConfig:
  """Everything one run needs: the original's SearchExperimentSpec plus the driver's flags."""

  search_tasks: TaskSpec
  select_tasks: TaskSpec
  final_tasks: TaskSpec
  memory: Memory = Memory(4, 3, 1)
  op_lists: tuple[tuple[int, ...], ...] = ((), (), ())  # Setup, Predict, Learn
  init_model: InitModel = InitModel.NO_OP
  init_sizes: tuple[int, int, int] = (0, 0, 0)
  min_sizes: tuple[int, int, int] = (0, 0, 0)
  max_sizes: tuple[int, int, int] = (0, 0, 0)
  mutation_types: tuple[MutationType, ...] = (MutationType.ALTER_PARAM,)
  mutate_prob: float = 0.9
  paper_mutations: bool = False
  population_size: int = 1000
  tournament_size: int = 10
  batch_size: int = 100
  progress_every: int = 10000
  max_train_steps: int = 80_000_000_000
  fec: FecSpec | None = None
  train_budget: InitModel | None = None
  train_budget_threshold_factor: float = 2.0
  combination: str = "mean"
  max_experiments: int = 1  # 0 = unlimited
  random_seed: int = 0  # 0 = from the clock
  randomize_task_seeds: bool = False
  sufficient_fitness: float | None = None  # stop once the best select fitness exceeds it
  strategy: str = "evolution"
  success_fitness: float = 0.9999  # random search counts programs beating it
  dtype: str = "float32"
  max_abs_error: float = 100.0

  def __post_init__(self):
    validate(self)


def validate(config: SearchConfig) -> None:
  """Raises ValueError with one clear message for the first invalid setting."""
  def check(ok: bool, message: str):
    if not ok:
      raise ValueError(message)

  check(config.strategy in STRATEGIES,
        f"strategy must be one of {', '.join(STRATEGIES)}, got {config.strategy!r}")
  check(config.combination in COMBINATIONS,
        f"combination must be one of {', '.join(COMBINATIONS)}, got {config.combination!r}")
  check(config.dtype in evaluator.DTYPES,
        f"dtype must be one of {', '.join(evaluator.DTYPES)}, got {config.dtype!r}")
  check(config.population_size >= 1, f"population_size must be >= 1, got "
        f"{config.population_size}")
  check(config.tournament_size >= 1, f"tournament_size must be >= 1, got "
        f"{config.tournament_size}")
  check(1 <= config.batch_size <= config.population_size,
        f"batch_size must be in [1, population_size={config.population_size}], got "
        f"{config.batch_size}")
  check(0.0 <= config.mutate_prob <= 1.0, f"mutate_prob must be in [0, 1], got "
        f"{config.mutate_prob}")
  check(config.progress_every >= 0, f"progress_every must be >= 0, got {config.progress_every}")
  check(config.max_train_steps >= 0, f"max_train_steps must be >= 0, got "
        f"{config.max_train_steps}")
  check(config.max_experiments >= 0, f"max_experiments must be >= 0 (0 = unlimited), got "
        f"{config.max_experiments}")
  check(config.random_seed >= 0, f"random_seed must be >= 0 (0 = from the clock), got "
        f"{config.random_seed}")
  check(config.max_abs_error > 0, f"max_abs_error must be > 0, got {config.max_abs_error}")
  check(config.train_budget_threshold_factor > 0, "train_budget_threshold_factor must be > 0, "
        f"got {config.train_budget_threshold_factor}")
  check(config.train_budget is not InitModel.RANDOM,
        "train_budget must be a fixed model (e.g. NEURAL_NET), not RANDOM")
  check(any(config.op_lists), "at least one of setup_ops, predict_ops, learn_ops must be non-empty")
  if config.fec:
    for name in ("num_train_examples", "num_valid_examples", "cache_size"):
      value = getattr(config.fec, name)
      check(value >= 1, f"fec_{name} must be >= 1, got {value}")
    check(config.fec.forget_every >= 0, f"fec_forget_every must be >= 0 (0 = never), got "
          f"{config.fec.forget_every}")
  evaluation_types = {spec.resolved_eval_type for spec in
                      (config.search_tasks, config.select_tasks, config.final_tasks)}
  check(len(evaluation_types) == 1, "search, select and final tasks must share one eval type, got "
        f"{sorted(evaluation_types)}")
  mutator(config)  # checks op lists against the memory, sizes and mutation types
  initial(config).check_addresses(config.memory.num_scalars, config.memory.num_vectors,
                                  config.memory.num_matrices)


def randomizer(config: SearchConfig) -> Randomizer:
  """Random instructions from the configured op lists and memory."""
  return Randomizer(config.op_lists, config.memory)


def mutator(config: SearchConfig) -> Mutator:
  """The configured mutator (types, probability, size bounds, paper variant)."""
  return Mutator(randomizer(config), config.mutation_types, config.mutate_prob, config.min_sizes,
                 config.max_sizes, config.paper_mutations)


def initial(config: SearchConfig) -> Program:
  """The init model's program padded to the init sizes (RANDOM: the padded empty program)."""
  model = InitModel.NO_OP if config.init_model is InitModel.RANDOM else config.init_model
  return initial_program(model, config.init_sizes)


def evaluator_op_sets(config: SearchConfig) -> tuple[tuple[int, ...], ...]:
  """Ops each function can hold: its op list plus the initial program's (which may never mutate)."""
  start = initial(config)
  return tuple(tuple(sorted(set(allowed) | {inst.op for inst in start.component(name)}))
               for name, allowed in zip(COMPONENTS, config.op_lists))


def make_strategy(config: SearchConfig) -> RegularizedEvolution | RandomSearch:
  """Regularized evolution or random search, as configured."""
  shuffler = randomizer(config)
  random_program = lambda rng: initial_program(InitModel.RANDOM, config.init_sizes, shuffler, rng)
  if config.strategy == "random":
    return RandomSearch(random_program, config.population_size, config.batch_size,
                        config.success_fitness)
  fixed = initial(config)
  make = random_program if config.init_model is InitModel.RANDOM else lambda rng: fixed
  return RegularizedEvolution(mutator(config), make, config.population_size,
                              config.tournament_size, config.batch_size)


def search_evaluator(config: SearchConfig, tasks, key) -> SearchEvaluator:
  """The fitness of one experiment on T_search: FEC cache, train budget, compiled shapes."""
  budget = (TrainBudget.from_init_sizes(config.init_sizes, config.train_budget,
                                        config.train_budget_threshold_factor)
            if config.train_budget else None)
  return SearchEvaluator(
      tasks, memory=config.memory, op_lists=evaluator_op_sets(config),
      widths=search_widths(initial(config), config.max_sizes), batch_size=config.batch_size,
      key=key, fec=config.fec, budget=budget, combination=config.combination,
      dtype=config.dtype, max_abs_error=config.max_abs_error)


class ExperimentResult(NamedTuple):
  candidate: Program
  search_fitness: float
  select_fitness: float
  num_individuals: int
  train_steps: int
  hit_rate: float
  seconds: float


class RunResult(NamedTuple):
  seed: int
  best_program: Program
  select_fitness: float
  final_fitness: float
  experiments: list[ExperimentResult]
  seconds: float


def progress_line(num_individuals: int, seconds: float, fitness: np.ndarray,
                  hit_rate: float | None) -> str:
  """The original's progress line (§8.3, §8.4), with our FEC hit rate appended."""
  mean = float(np.mean(fitness))
  stdev = float(np.sqrt(max(0.0, float(np.mean(fitness * fitness)) - mean * mean)))
  line = (f"indivs={num_individuals}, elapsed_secs={int(seconds)}, mean={mean:.6f}, "
          f"stdev={stdev:.6f}, best fit={float(np.max(fitness)):.6f},")
  return line if hit_rate is None else f"{line} fec hit rate={hit_rate:.4f}"


def run_experiment(strategy, fitness: SearchEvaluator, rng: np.random.Generator, *,
                   max_train_steps: int, progress_every: int, write: Callable[[str], None]):
  """Asks, evaluates and tells until a sweep ends with the step budget spent (§8.2, §8.4).

  Returns the final state and the train steps used.
  """
  start = time.monotonic()
  state = strategy.init()
  steps, last_printed = 0, None
  while True:
    children = strategy.ask(state, rng)
    evaluation = fitness.evaluate(children)
    state = strategy.tell(state, children, evaluation.fitness)
    steps += evaluation.train_steps
    if state.num_individuals % strategy.population_size:
      continue
    if last_printed is None or state.num_individuals >= last_printed + progress_every:
      last_printed = state.num_individuals
      write(progress_line(state.num_individuals, time.monotonic() - start,
                          strategy.population_fitness(state),
                          fitness.hit_rate if fitness.cache else None))
    if steps >= max_train_steps:
      return state, steps


def mean_fitness(program: Program, tasks, config: SearchConfig, seed: int,
                 op_sets=None) -> float:
  """Mean fitness over tasks, no FEC and no budget (selection and final evaluation, §5.3).

  `op_sets` defaults to `evaluator_op_sets(config)`.
  """
  per_task = evaluator.evaluate(
      [program], tasks, num_scalars=config.memory.num_scalars,
      num_vectors=config.memory.num_vectors, num_matrices=config.memory.num_matrices,
      dtype=config.dtype, seed=seed, max_abs_error=config.max_abs_error,
      op_sets=op_sets or evaluator_op_sets(config))
  return float(per_task.mean())


def run(config: SearchConfig, write: Callable[[str], None] = print) -> RunResult:
  """Runs the experiments of §8.5 and returns the best program and its fitnesses."""
  run_start = time.monotonic()
  seed = config.random_seed or int(time.time_ns() % _SEED_RANGE) or 1
  write(f"Random seed = {seed}")
  write(device.describe())
  rng = np.random.default_rng(seed)
  collections = TaskCollections(config.search_tasks, config.select_tasks, config.final_tasks,
                                config.randomize_task_seeds)
  final_tasks = collections.final_tasks()  # built first: a data problem shows before the search
  strategy = make_strategy(config)
  draw_seed = lambda: int(rng.integers(1, _SEED_RANGE))
  best: tuple[Program, float] | None = None
  experiments = []
  while True:
    experiment_start = time.monotonic()
    search_tasks = collections.search_tasks(draw_seed() if config.randomize_task_seeds else None)
    fitness = search_evaluator(config, search_tasks, jax.random.key(draw_seed()))
    kind = "evolution" if config.strategy == "evolution" else "random search"
    write(f"Running {kind} experiment (on the T_search tasks)...")
    state, steps = run_experiment(strategy, fitness, rng, max_train_steps=config.max_train_steps,
                                  progress_every=config.progress_every, write=write)
    write("Experiment done. Retrieving candidate algorithm.")
    candidate, search_fitness = strategy.candidate(state)
    if config.strategy == "random":
      write(f"Random search: best fitness ever = {search_fitness:.6f}, programs with fitness > "
            f"{config.success_fitness:g}: {state.num_successes} of {state.num_individuals}")
    write(f"Search fitness for candidate algorithm = {search_fitness:.6f}")
    select_tasks = collections.select_tasks(draw_seed() if config.randomize_task_seeds else None)
    write("Evaluating candidate algorithm from experiment (on T_select tasks)... ")
    select_fitness = mean_fitness(candidate, select_tasks, config, draw_seed())
    write(f"Select fitness for candidate algorithm = {select_fitness:.6f}")
    experiments.append(ExperimentResult(candidate, search_fitness, select_fitness,
                                        state.num_individuals, steps, fitness.hit_rate,
                                        time.monotonic() - experiment_start))
    if best is None or select_fitness >= best[1]:
      best = (candidate, select_fitness)
      write("Select fitness is the best so far. ")
    if config.sufficient_fitness is not None and best[1] > config.sufficient_fitness:
      break
    if config.max_experiments and len(experiments) >= config.max_experiments:
      break
  write("")
  write("Final evaluation of best algorithm (on unseen tasks)...")
  final_fitness = mean_fitness(best[0], final_tasks, config, draw_seed())
  write(f"Final evaluation fitness (on unseen data) = {final_fitness:.6f}")
  write("Algorithm found: ")
  write(best[0].to_text())
  return RunResult(seed, best[0], best[1], final_fitness, experiments,
                   time.monotonic() - run_start)
