"""The experiment driver (REFERENCE.md §8.5): repeated searches, selection, final evaluation.

`run(config)` prints what the original's `run_search_experiment` prints, in its order and wording:
the random seed, then per experiment the progress lines of the search on T_search, the candidate's
search fitness and its fitness on T_select; at the end the best candidate's fitness on the unseen
final tasks and the program. One `np.random.Generator` seeded with the random seed drives
everything (task seeds, initial programs, tournaments, mutations, PRNG keys of the evaluator).

Islands: an experiment runs K populations in lock-step (`num_islands`), each with its own
generator seeded from (random seed, island) (island 0 with the random seed itself, so one island
is the original's run), its own PRNG key and its own train-step budget. Every step asks all
islands for their children and evaluates them together. Each island's best is a candidate; the
candidates are evaluated on T_select in one call and the best is the experiment's candidate.

Hurdles (`hurdle_tasks` H > 0): the evaluator runs each child on the first H tasks of T_search
first, and on the rest only if it reaches its island's hurdle, which the strategy computes from
its population (azero_jax/search/fitness.py, evolution.py).

Task mix (`search_task_mix`, the paper's "50% of the workers on MNIST"): T_search is several task
families, each with its own tasks, dealt to the islands in turn and continuing across experiments
(`island_families`): with K islands and M <= K families, island k searches family k mod M in the
first experiment; with one island the family alternates per experiment. The evaluator holds the
union of the experiment's families and a [K, T] mask of each island's tasks. Selection and the
final evaluation stay one set of tasks. Migrants move between families and keep the fitness they
came with until they are evaluated again, as between any islands.

`RunHooks` see the progress, the result and every boundary a run can continue from (after each
batch and each experiment); there they may take a `Snapshot`, which `run(..., resume=...)`
continues from with the same output (azero_jax/search/checkpoint.py saves them to files,
azero_jax/run_dir.py decides when).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import numpy as np

from azero_jax import device, evaluator
from azero_jax.program import COMPONENTS, Program, ProgramBatch
from azero_jax.search.budget import TrainBudget
from azero_jax.search.evolution import RegularizedEvolution
from azero_jax.search.fitness import (
  COMBINATIONS,
  FEC_SCOPES,
  FecSpec,
  SearchEvaluator,
  finish,
  search_widths,
)
from azero_jax.search.gc_tuning import relaxed_gc
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
  stop_search_at: float = 0.0  # end a search once a candidate's fitness exceeds it; 0 = never
  strategy: str = "evolution"
  success_fitness: float = 0.9999  # random search counts programs beating it
  dtype: str = "float32"
  max_abs_error: float = 100.0
  num_islands: int = 1
  fec_scope: str = "shared"
  migration_every: int = 0  # evaluations per island between migrations; 0 = never
  migration_size: int = 50
  hurdle_tasks: int = 0  # 0 = no hurdles
  hurdle_percentile: float = 75.0
  search_task_mix: tuple[TaskSpec, ...] = ()  # task families dealt to the islands; () = none

  @property
  def search_families(self) -> tuple[TaskSpec, ...]:
    """The task families of T_search: the mix, or the search tasks alone."""
    return self.search_task_mix or (self.search_tasks,)

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
  check(config.tournament_size <= config.population_size,
        f"tournament_size must be <= population_size={config.population_size}, got "
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
  check(config.stop_search_at >= 0, f"stop_search_at must be >= 0 (0 = never), got "
        f"{config.stop_search_at}")
  check(config.num_islands >= 1, f"num_islands must be >= 1, got {config.num_islands}")
  check(config.fec_scope in FEC_SCOPES,
        f"fec_scope must be one of {', '.join(FEC_SCOPES)}, got {config.fec_scope!r}")
  check(config.migration_every >= 0, f"migration_every must be >= 0 (0 = never), got "
        f"{config.migration_every}")
  check(config.migration_size >= 1 and (not config.migration_every
                                        or config.migration_size <= config.population_size),
        f"migration_size must be in [1, population_size={config.population_size}], got "
        f"{config.migration_size}")
  check(not config.migration_every or config.strategy == "evolution",
        "migration_every needs strategy=evolution (random search keeps no population)")
  num_families = len(config.search_families)
  check(num_families <= config.num_islands or config.num_islands == 1,
        f"search_task_mix: {num_families} families need num_islands >= {num_families} (each "
        f"experiment searches every family), or num_islands=1 (the family alternates per "
        f"experiment), got num_islands={config.num_islands}")
  check(len(set(config.search_families)) == num_families,
        "search_task_mix: a family is given twice")
  check(config.hurdle_tasks >= 0, f"hurdle_tasks must be >= 0 (0 = no hurdles), got "
        f"{config.hurdle_tasks}")
  if config.hurdle_tasks:
    fewest = min(spec.num_tasks for spec in config.search_families)
    check(config.hurdle_tasks < fewest,
          f"hurdle_tasks must be < the {fewest} search tasks"
          f"{' of each family' if config.search_task_mix else ''}, got {config.hurdle_tasks}")
    check(config.strategy == "evolution",
          "hurdle_tasks needs strategy=evolution (random search keeps no population)")
    check(0 <= config.hurdle_percentile <= 100, f"hurdle_percentile must be in [0, 100], got "
          f"{config.hurdle_percentile}")
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
                      (*config.search_families, config.select_tasks, config.final_tasks)}
  check(len(evaluation_types) == 1, "search (every family of search_task_mix), select and final "
        f"tasks must share one eval type, got {sorted(evaluation_types)}")
  types = mutator(config).mutation_types  # checks op lists against the memory, sizes and types
  start = initial(config)
  try:
    start.check_addresses(config.memory.num_scalars, config.memory.num_vectors,
                          config.memory.num_matrices)
  except ValueError as error:
    raise ValueError(f"initial_population {config.init_model.name}: {error}; raise num_scalars, "
                     "num_vectors or num_matrices") from None
  _check_size_bounds(config, start.sizes, set(types), check)


def _check_size_bounds(config: SearchConfig, sizes, types, check) -> None:
  """min <= init < max in the functions that mutate, where INSERT_INSTRUCTION and
  REMOVE_INSTRUCTION use the bounds; with insertion a program may start below min and grow."""
  inserts = MutationType.INSERT_INSTRUCTION in types
  removes = MutationType.REMOVE_INSTRUCTION in types
  for name, allowed, size, low, high in zip(COMPONENTS, config.op_lists, sizes, config.min_sizes,
                                            config.max_sizes):
    if not allowed:
      continue
    if inserts:
      check(size < high, f"{name}_size_max must be > {size}, the initial {name} size "
            f"(INSERT_INSTRUCTION keeps {name} below the max), got {high}")
    if removes and inserts:
      check(low < high, f"{name}_size_min must be < {name}_size_max={high}, got {low}")
    elif removes:
      check(low <= size, f"{name}_size_min must be <= {size}, the initial {name} size "
            f"(REMOVE_INSTRUCTION keeps {name} at or above the min), got {low}")


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
  template = initial_program(InitModel.NO_OP, config.init_sizes)  # RANDOM redraws every slot
  random_programs = lambda rng, count: shuffler.programs(template, count, rng)
  if config.strategy == "random":
    return RandomSearch(random_programs, config.population_size, config.batch_size,
                        config.success_fitness)
  fixed = initial(config)
  make = (random_programs if config.init_model is InitModel.RANDOM
          else lambda rng, count: [fixed] * count)
  return RegularizedEvolution(mutator(config), make, config.population_size,
                              config.tournament_size, config.batch_size,
                              search_widths(fixed, config.max_sizes),
                              config.hurdle_percentile if config.hurdle_tasks else None)


def island_families(num_families: int, num_islands: int, experiment: int = 1,
                    process: tuple[int, int] = (0, 1)) -> np.ndarray:
  """The family of a task mix each island of this process searches in `experiment` (from 1): the
  islands of all processes (`process` = (index, count), each with `num_islands`) take the
  families in turn, and the turn goes on from one experiment to the next."""
  index, count = process
  total = num_islands * count
  return (index * num_islands + np.arange(num_islands) + (experiment - 1) * total) % num_families


def search_evaluator(config: SearchConfig, tasks, keys, families: np.ndarray | None = None
                     ) -> SearchEvaluator:
  """The fitness of one experiment on T_search (one PRNG key per island, or one key): FEC cache,
  train budget, compiled shapes for all islands' children. With a task mix, `tasks` holds each
  family's tasks and `families` [K] the family of each island."""
  island_tasks = None
  if families is not None:
    used = sorted(set(families.tolist()))  # the union holds the families searched
    blocks = np.repeat(used, [len(tasks[f]) for f in used])
    island_tasks = blocks[None, :] == np.asarray(families)[:, None]
    tasks = [task for f in used for task in tasks[f]]
  budget = (TrainBudget.from_init_sizes(config.init_sizes, config.train_budget,
                                        config.train_budget_threshold_factor)
            if config.train_budget else None)
  return SearchEvaluator(
      tasks, memory=config.memory, op_lists=evaluator_op_sets(config),
      widths=search_widths(initial(config), config.max_sizes),
      batch_size=config.batch_size * config.num_islands, keys=keys, fec=config.fec,
      budget=budget, combination=config.combination, dtype=config.dtype,
      max_abs_error=config.max_abs_error, fec_scope=config.fec_scope,
      hurdle_tasks=config.hurdle_tasks, island_tasks=island_tasks)


def island_seeds(seed: int, num_islands: int) -> list[int]:
  """Each island's random seed: island 0 has `seed`, island k > 0 one derived from (seed, k).

  An island's run uses nothing but its seed, so `--random_seed=<island k's seed>` reruns island k
  alone (with island-scoped FEC and no migration)."""
  derived = lambda k: 1 + int(np.random.SeedSequence((seed, k)).generate_state(1)[0]) % (
      _SEED_RANGE - 1)
  return [seed] + [derived(k) for k in range(1, num_islands)]


class ExperimentResult(NamedTuple):
  candidate: Program
  search_fitness: float
  select_fitness: float
  num_individuals: int  # over all islands
  train_steps: int  # over all islands
  hit_rate: float
  seconds: float


class SearchOutcome(NamedTuple):
  """What the search of one experiment hands to selection: each island's best program."""

  candidates: ProgramBatch
  search_fitness: np.ndarray  # [number of candidates]
  num_individuals: int
  train_steps: int
  hit_rate: float
  num_successes: int = 0  # random search: programs above success_fitness


class RunResult(NamedTuple):
  seed: int
  best_program: Program
  select_fitness: float
  final_fitness: float
  experiments: list[ExperimentResult]
  seconds: float


class ProgressReport(NamedTuple):
  """One progress report of a search (§8.3): the statistics of all islands' populations, and the
  best and mean of each island."""

  evaluations: int
  elapsed_secs: float
  mean: float
  stdev: float
  best: float
  fec_hit_rate: float | None
  island_best: list[float] | None = None
  island_mean: list[float] | None = None


class SearchProgress(NamedTuple):
  """Where a search stands after a batch was told: what continuing it needs besides the RNGs."""

  state: object  # EvolutionState or RandomSearchState
  train_steps: np.ndarray  # [K] per island
  last_printed: int | None  # individuals (all islands) at the last progress report
  seconds: float


class ExperimentCheckpoint(NamedTuple):
  """An experiment under way: its seeds and, once a batch was told, the search and evaluator."""

  task_seed: int | None  # T_search seed (None unless randomised)
  key_seeds: tuple[int, ...]  # seed of each island's PRNG key
  progress: SearchProgress | None = None
  evaluator: dict | None = None  # SearchEvaluator.state()


class Snapshot(NamedTuple):
  """Everything needed to continue a run, taken at a batch boundary or between experiments."""

  seed: int
  rng_states: list[dict]  # each island's numpy Generator's bit_generator.state (0: the run's)
  experiments: tuple[ExperimentResult, ...]  # finished experiments
  seconds: float  # run time so far
  current: ExperimentCheckpoint | None  # None between experiments

  @property
  def evaluations(self) -> int:
    """Individuals evaluated in the whole run so far."""
    progress = self.current.progress if self.current else None
    return (sum(e.num_individuals for e in self.experiments)
            + (int(progress.state.num_individuals.sum()) if progress else 0))


class RunHooks:
  """What a run reports besides its printed lines; these defaults do nothing.

  A run directory subclasses it to log progress, save the best program and checkpoints, and to
  stop at a boundary (by raising) after a signal.
  """

  def started(self, seed: int) -> None:
    """The run begins (or resumes) with this seed; the data of the final tasks loaded."""

  def progress(self, experiment: int, report: ProgressReport,
               candidate: tuple[Program, float]) -> None:
    """A progress report of experiment `experiment` (from 1) and the population's best."""

  def boundary(self, evaluations: int, snapshot: Callable[[], Snapshot], force: bool) -> None:
    """A point the run can continue from; `snapshot()` builds its state (only when needed).

    `force` is set at the end of each experiment.
    """

  def best(self, experiment: int, result: ExperimentResult) -> None:
    """Experiment `experiment` (from 1) gave the best candidate so far."""

  def finished(self, result: RunResult) -> None:
    """The run is done."""


def progress_report(num_individuals: int, seconds: float, fitness: np.ndarray,
                    hit_rate: float | None) -> ProgressReport:
  """The statistics of the populations' fitness [K, P] (population variance, as the original)."""
  mean = float(np.mean(fitness))
  stdev = float(np.sqrt(max(0.0, float(np.mean(fitness * fitness)) - mean * mean)))
  return ProgressReport(num_individuals, seconds, mean, stdev, float(np.max(fitness)), hit_rate,
                        fitness.max(axis=1).tolist(), fitness.mean(axis=1).tolist())


def progress_line(report: ProgressReport) -> str:
  """The original's progress line (§8.3, §8.4), with our FEC hit rate appended."""
  line = (f"indivs={report.evaluations}, elapsed_secs={int(report.elapsed_secs)}, "
          f"mean={report.mean:.6f}, stdev={report.stdev:.6f}, best fit={report.best:.6f},")
  return line if report.fec_hit_rate is None else f"{line} fec hit rate={report.fec_hit_rate:.4f}"


def _ignore(*_) -> None:
  pass


def best_candidate(strategy, state) -> tuple[Program, float]:
  """The best of the islands' candidates (the first island on ties) and its search fitness."""
  programs, fitness = strategy.candidates(state)
  best = int(np.argmax(fitness))
  return programs[best], float(fitness[best])


def active_islands(state, train_steps: np.ndarray, population_size: int,
                   max_train_steps: int) -> np.ndarray:
  """Islands still searching: a search stops at the end of a sweep with its step budget spent."""
  done = state.num_individuals
  return ~((done > 0) & (done % population_size == 0) & (train_steps >= max_train_steps))


def step(strategy, fitness: SearchEvaluator, state, rngs: Sequence[np.random.Generator],
         islands: np.ndarray, overlap: bool | None = None):
  """One step of the `islands`: each asks for its children, they are evaluated, and told.

  With `overlap` (default: where evaluator calls run beside the host, `device.overlaps_host`),
  two or more islands go in two halves whose host and device work overlap: the second half's
  children are made while the first half's fingerprints run, the first half's FEC lookups run
  while the second half's fingerprints run, and the first half is told while the second half's
  full runs run. Every island draws from its own generator and the cache sees the lookups in the
  same order, so the result is the same as one batch's. With hurdles, each child's hurdle is its
  island's when it was asked for. Returns the state and the train steps used by each island.
  """
  if overlap is None:
    overlap = device.overlaps_host()
  halves = np.array_split(islands, 2) if overlap and len(islands) > 1 else [islands]
  rows = lambda half, children: np.repeat(half, len(children) // len(half))
  batches, stages = [], []
  for half in halves:  # ask, and dispatch the fingerprint run
    children = strategy.ask(state, rngs, half)
    batches.append(children)
    owners = rows(half, children)
    hurdles = strategy.hurdles(state, owners) if fitness.hurdle_tasks else None
    stages.append(fitness.stages(children, owners, hurdles))
    next(stages[-1])
  evaluations = []

  def tell(state, position: int):
    evaluation = evaluations[position]
    extra = () if evaluation.hurdle_fitness is None else (evaluation.hurdle_fitness,)
    return strategy.tell(state, batches[position], evaluation.fitness, halves[position], *extra)

  for half_stages in stages:  # lookups (after the previous half's cache fill), full runs
    next(half_stages)
    if evaluations:
      state = tell(state, 0)
    evaluations.append(finish(half_stages))
  state = tell(state, -1)
  used = np.concatenate([e.train_steps.reshape(len(half), -1).sum(axis=1)
                         for e, half in zip(evaluations, halves)])
  return state, used


def run_experiment(strategy, fitness: SearchEvaluator, rngs: Sequence[np.random.Generator], *,
                   max_train_steps: int, progress_every: int, write: Callable[[str], None],
                   migration_every: int = 0, migration_size: int = 0, exchange=None,
                   stop=None, resume: SearchProgress | None = None, on_progress=_ignore,
                   on_batch=_ignore):
  """Asks, evaluates and tells until every island ended a sweep with its step budget spent
  (§8.2, §8.4), or until `stop(candidates, fitness)`, asked at the end of each sweep with the
  islands' candidates (`selection_stop`), says so; `rngs` holds one generator per island.

  `resume` continues from the progress an earlier `on_batch(progress)` saw: it is called after
  every batch that does not end the search. `on_progress(report, candidate)` sees each progress
  report. With `migration_every`, the islands exchange `migration_size` programs each time they
  have evaluated another `migration_every`; then `exchange(state, islands) -> state`, if given,
  trades programs with other processes (azero_jax/search/workers.py). Returns the final state and
  the train steps [K].
  """
  num_islands = len(rngs)
  size = strategy.population_size
  progress = resume or SearchProgress(strategy.init(num_islands), np.zeros(num_islands, np.int64),
                                      None, 0.0)
  start = time.monotonic() - progress.seconds
  state, last_printed = progress.state, progress.last_printed
  steps = np.array(progress.train_steps, np.int64)
  active = active_islands(state, steps, size, max_train_steps)
  while active.any():
    islands = np.nonzero(active)[0]
    before = int(state.num_individuals[islands[0]])  # the active islands move in lock-step
    state, used = step(strategy, fitness, state, rngs, islands)
    steps[islands] += used
    done = int(state.num_individuals[islands[0]])
    if migration_every and done >= size and done // migration_every > before // migration_every:
      state = strategy.migrate(state, rngs, migration_size, islands)
      if exchange:
        state = exchange(state, islands)
    if done % size == 0:
      total = int(state.num_individuals.sum())
      if last_printed is None or total >= last_printed + progress_every:
        last_printed = total
        report = progress_report(total, time.monotonic() - start,
                                 strategy.population_fitness(state),
                                 fitness.hit_rate if fitness.caches else None)
        write(progress_line(report))
        on_progress(report, best_candidate(strategy, state))
      if stop is not None and stop(*strategy.candidates(state)):
        return state, steps
      active = active_islands(state, steps, size, max_train_steps)
      if not active.any():
        return state, steps
    on_batch(SearchProgress(state, steps.copy(), last_printed, time.monotonic() - start))
  return state, steps


def mean_fitness(programs: Sequence[Program], tasks, config: SearchConfig, seed: int,
                 op_sets=None) -> np.ndarray:
  """Each program's mean fitness over tasks, no FEC and no budget, in one call (selection and
  final evaluation, §5.3). `op_sets` defaults to `evaluator_op_sets(config)`."""
  per_task = evaluator.evaluate(
      list(programs), tasks, num_scalars=config.memory.num_scalars,
      num_vectors=config.memory.num_vectors, num_matrices=config.memory.num_matrices,
      dtype=config.dtype, seed=seed, max_abs_error=config.max_abs_error,
      op_sets=op_sets or evaluator_op_sets(config))
  return per_task.mean(axis=1)


def best_so_far(experiments) -> ExperimentResult | None:
  """The experiment with the best select fitness; a later one wins ties (as the original)."""
  best = None
  for experiment in experiments:
    if best is None or experiment.select_fitness >= best.select_fitness:
      best = experiment
  return best


def finished(config: SearchConfig, experiments) -> bool:
  """Whether the run stops after these experiments (sufficient fitness or max experiments)."""
  best = best_so_far(experiments)
  return best is not None and (
      (config.sufficient_fitness is not None and best.select_fitness > config.sufficient_fitness)
      or bool(config.max_experiments and len(experiments) >= config.max_experiments))


def search_experiment(config: SearchConfig, strategy, collections: TaskCollections,
                      rngs: Sequence[np.random.Generator], current: ExperimentCheckpoint,
                      write: Callable[[str], None], on_progress, on_boundary, exchange=None,
                      experiment: int = 1, process: tuple[int, int] = (0, 1)):
  """Runs (or continues) the search of experiment `experiment` (from 1) on T_search.

  `on_boundary(evaluations, checkpoint)` gets the experiment's individuals so far and a function
  returning its `ExperimentCheckpoint`; `exchange` is `run_experiment`'s; `process` (index, count)
  places this process's islands among all that search the experiment (for a task mix). Returns
  the final state, the train steps and the evaluator.
  """
  keys = [jax.random.key(seed) for seed in current.key_seeds]
  if len(config.search_families) > 1:  # (a mix of one family is its search tasks)
    families = island_families(len(config.search_task_mix), len(rngs), experiment, process)
    write("Search task families of the islands: "
          + ", ".join(config.search_task_mix[f].to_string() for f in families))
    tasks = {f: collections.search_tasks(current.task_seed, config.search_task_mix[f])
             for f in set(families.tolist())}
    fitness = search_evaluator(config, tasks, keys, families)
  else:
    fitness = search_evaluator(config, collections.search_tasks(current.task_seed), keys)
  if current.evaluator is not None:
    fitness.restore(current.evaluator)
  # The strategy updates its arrays in place: a checkpoint gets a copy of the state.
  on_batch = lambda progress: on_boundary(
      int(progress.state.num_individuals.sum()),
      lambda: current._replace(progress=progress._replace(state=copy.deepcopy(progress.state)),
                               evaluator=fitness.state()))
  state, steps = run_experiment(
      strategy, fitness, rngs, max_train_steps=config.max_train_steps,
      progress_every=config.progress_every, write=write,
      migration_every=config.migration_every, migration_size=config.migration_size,
      exchange=exchange, resume=current.progress, on_progress=on_progress, on_batch=on_batch,
      stop=selection_stop(config, collections, current.key_seeds[0], write)
      if config.stop_search_at else None)
  return state, steps, fitness


def selection_stop(config: SearchConfig, collections: TaskCollections, seed: int,
                   write: Callable[[str], None]):
  """`run_experiment`'s `stop` for `--stop_search_at=F`: the best candidate, once its search
  fitness exceeds F, is evaluated on T_select (with randomised task seeds, a draw of its own from
  `seed`, not the experiment's, which is drawn after the search); the search ends when a candidate
  exceeds F there too. Each program is checked once per process (a resumed run checks again,
  with the same result: only the check that ends the search prints a line)."""
  checked = set()
  tasks = functools.cache(
      lambda: collections.select_tasks(seed if config.randomize_task_seeds else None))

  def stop(candidates: ProgramBatch, search_fitness: np.ndarray) -> bool:
    best = int(np.argmax(search_fitness))
    program = candidates[best]
    if search_fitness[best] <= config.stop_search_at or program in checked:
      return False
    checked.add(program)
    fitness = float(mean_fitness([program], tasks(), config, seed)[0])
    if fitness <= config.stop_search_at:
      return False
    write(f"A candidate of search fitness {search_fitness[best]:.6f} has {fitness:.6f} on "
          "T_select tasks: the search ends here.")
    return True

  return stop


def search_outcome(strategy, state, steps: np.ndarray, fitness: SearchEvaluator) -> SearchOutcome:
  """The candidates and counts of a finished search."""
  candidates, search_fitness = strategy.candidates(state)
  successes = getattr(state, "num_successes", None)  # random search counts them
  return SearchOutcome(candidates, search_fitness, int(state.num_individuals.sum()),
                       int(steps.sum()), fitness.hit_rate,
                       0 if successes is None else int(successes.sum()))


# search(experiment, current, on_progress, on_boundary): the search of experiment `experiment`
# (from 1) as `search_experiment` runs it, with its outcome (e.g. on workers elsewhere).
ExperimentSearch = Callable[[int, ExperimentCheckpoint, Callable, Callable], SearchOutcome]


@relaxed_gc()
def run(config: SearchConfig, write: Callable[[str], None] = print,
        hooks: RunHooks | None = None, resume: Snapshot | None = None,
        search: ExperimentSearch | None = None) -> RunResult:
  """Runs the experiments of §8.5 and returns the best program and its fitnesses.

  `hooks` sees the progress, the boundaries the run can continue from and the result; `resume`
  continues from a snapshot taken at such a boundary, with the same output from there on.
  `search` replaces this process's search of each experiment (azero_jax/search/workers.py runs
  it on a Ray cluster); selection and the final evaluation stay here.
  """
  hooks = hooks or RunHooks()
  run_start = time.monotonic() - (resume.seconds if resume else 0.0)
  seed = resume.seed if resume else config.random_seed or int(time.time_ns() % _SEED_RANGE) or 1
  write(f"Random seed = {seed}")
  write(device.describe())
  seeds = island_seeds(seed, config.num_islands)
  if config.num_islands > 1:
    write(f"Islands = {config.num_islands}, island seeds = {', '.join(map(str, seeds))}")
  rngs = [np.random.default_rng(island_seed) for island_seed in seeds]
  if resume:
    for rng, saved in zip(rngs, resume.rng_states, strict=True):
      rng.bit_generator.state = saved
  rng = rngs[0]  # the run's own draws: task seeds, selection and final evaluation
  collections = TaskCollections(config.search_tasks, config.select_tasks, config.final_tasks,
                                config.randomize_task_seeds)
  final_tasks = collections.final_tasks()  # built first: a data problem shows before the search
  hooks.started(seed)
  strategy = make_strategy(config)
  draw_seed = lambda generator=rng: int(generator.integers(1, _SEED_RANGE))
  experiments = list(resume.experiments) if resume else []
  current = resume.current if resume else None
  kind = "evolution" if config.strategy == "evolution" else "random search"

  def on_boundary(evaluations: int, checkpoint: Callable[[], ExperimentCheckpoint | None],
                  force: bool = False) -> None:
    """Offers the hooks a point to continue from; they build the snapshot only if they save it."""
    hooks.boundary(sum(e.num_individuals for e in experiments) + evaluations,
                   lambda: Snapshot(seed, [r.bit_generator.state for r in rngs],
                                    tuple(experiments), time.monotonic() - run_start,
                                    checkpoint()), force)

  if search and not resume:
    # Workers elsewhere checkpoint their own searches (workers.py): a coordinator killed within
    # its first experiment continues from here, drawing the same seeds again.
    on_boundary(0, lambda: None, True)
  on_progress = lambda report, candidate: hooks.progress(len(experiments) + 1, report, candidate)
  search = search or (lambda experiment, current, on_progress, on_boundary: search_outcome(
      strategy, *search_experiment(config, strategy, collections, rngs, current, write,
                                   on_progress, on_boundary, experiment=experiment)))
  while not finished(config, experiments):
    if current is None:
      # Each island draws what a one-island run draws here: a task seed (if randomised; island
      # 0's is used) and its key seed.
      drawn = [(draw_seed(r) if config.randomize_task_seeds else None, draw_seed(r))
               for r in rngs]
      current = ExperimentCheckpoint(drawn[0][0], tuple(key for _, key in drawn))
      write(f"Running {kind} experiment (on the T_search tasks)...")
    else:
      write(f"Resuming {kind} experiment {len(experiments) + 1} at "
            f"{int(current.progress.state.num_individuals.sum())} individuals (on the T_search "
            "tasks)...")
    experiment_start = time.monotonic() - (current.progress.seconds if current.progress else 0)
    outcome = search(len(experiments) + 1, current, on_progress, on_boundary)
    current = None
    write("Experiment done. Retrieving candidate algorithm.")
    candidates, search_fitness = outcome.candidates, outcome.search_fitness
    num_individuals = outcome.num_individuals
    if config.strategy == "random":
      write(f"Random search: best fitness ever = {search_fitness.max():.6f}, programs with "
            f"fitness > {config.success_fitness:g}: {outcome.num_successes} of "
            f"{num_individuals}")
    select_tasks = collections.select_tasks(draw_seed() if config.randomize_task_seeds else None)
    select_fitness = mean_fitness(candidates, select_tasks, config, draw_seed())
    best = int(np.argmax(select_fitness))
    write(f"Search fitness for candidate algorithm = {search_fitness[best]:.6f}")
    write("Evaluating candidate algorithm from experiment (on T_select tasks)... ")
    write(f"Select fitness for candidate algorithm = {select_fitness[best]:.6f}")
    experiments.append(ExperimentResult(candidates[best], float(search_fitness[best]),
                                        float(select_fitness[best]), num_individuals,
                                        outcome.train_steps, outcome.hit_rate,
                                        time.monotonic() - experiment_start))
    if best_so_far(experiments) is experiments[-1]:
      write("Select fitness is the best so far. ")
      hooks.best(len(experiments), experiments[-1])
    on_boundary(0, lambda: None, True)
  best = best_so_far(experiments)
  write("")
  write("Final evaluation of best algorithm (on unseen tasks)...")
  final_fitness = float(mean_fitness([best.candidate], final_tasks, config, draw_seed())[0])
  write(f"Final evaluation fitness (on unseen data) = {final_fitness:.6f}")
  write("Algorithm found: ")
  write(best.candidate.to_text())
  result = RunResult(seed, best.candidate, best.select_fitness, final_fitness, experiments,
                     time.monotonic() - run_start)
  hooks.finished(result)
  return result
