"""Random search (REFERENCE.md §9.2, paper §4.1) with the same ask/tell shape as evolution.

Every program asked for is an independent random program of the initial sizes; nothing is
selected. The state keeps the best program ever seen (ties keep the first), the number of programs
whose fitness beats `success_fitness` (how the paper measures random search), and the fitness of
the last P programs for the progress statistics.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from azero_jax.program import Program, ProgramBatch, concatenate, empty_population
from azero_jax.search.evolution import batch_length, island_indices


@dataclasses.dataclass(frozen=True)
class RandomSearchState:
  """Per island [K]: the best program ever seen and its fitness, the successes, the fitness of
  the last P programs [K, <= P] and the evaluations."""

  best_programs: ProgramBatch | None
  best_fitness: np.ndarray  # [K]
  num_successes: np.ndarray  # [K] int64
  recent_fitness: np.ndarray  # [K, <= P]
  num_individuals: np.ndarray  # [K] int64

  @property
  def num_islands(self) -> int:
    return self.best_fitness.shape[0]

  def replace(self, **changes) -> RandomSearchState:
    return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class RandomSearch:
  """`init(K) -> state`, `ask(state, rngs, islands) -> programs`,
  `tell(state, programs, fitness, islands) -> state`, with islands as in RegularizedEvolution.

  `random_programs(rng, count)` draws `count` programs; `population_size` only sets the sweep
  length (budget checks, progress) and the window of the statistics.
  """

  random_programs: Callable[[np.random.Generator, int], Sequence[Program]]
  population_size: int
  batch_size: int = 1
  success_fitness: float = 0.9999

  def __post_init__(self):
    for name in ("population_size", "batch_size"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

  def init(self, num_islands: int = 1) -> RandomSearchState:
    """Nothing seen yet."""
    return RandomSearchState(None, np.full(num_islands, -np.inf),
                             np.zeros(num_islands, np.int64), np.zeros((num_islands, 0)),
                             np.zeros(num_islands, np.int64))

  def ask(self, state: RandomSearchState, rngs: Sequence[np.random.Generator],
          islands: np.ndarray | None = None) -> ProgramBatch:
    """The next batch of independent random programs of each island (never crossing the end of
    a sweep), one island after another."""
    batches = []
    for island in island_indices(state, islands):
      count = batch_length(int(state.num_individuals[island]), self.population_size,
                           self.batch_size)
      batches.append(ProgramBatch.of(self.random_programs(rngs[island], count)).packed)
    return ProgramBatch(batches[0] if len(batches) == 1 else concatenate(batches))

  def tell(self, state: RandomSearchState, programs: Sequence[Program], fitness: np.ndarray,
           islands: np.ndarray | None = None) -> RandomSearchState:
    """Updates each island's best ever, success count and window of recent fitness."""
    islands = island_indices(state, islands)
    fitness = np.asarray(fitness, dtype=np.float64).reshape(len(islands), -1)
    count = fitness.shape[1]
    packed = ProgramBatch.of(programs).packed
    best = np.argmax(fitness, axis=1)
    better = fitness[np.arange(len(islands)), best] > state.best_fitness[islands]
    best_fitness, best_programs = state.best_fitness.copy(), state.best_programs
    if better.any():
      if best_programs is None:
        best_programs = ProgramBatch(empty_population(state.num_islands, packed.widths))
      population = concatenate([best_programs.packed, packed])
      rows = np.arange(state.num_islands)
      rows[islands[better]] = state.num_islands + (np.nonzero(better)[0] * count + best[better])
      best_programs = ProgramBatch(population.take(rows))
      best_fitness[islands[better]] = fitness[better, best[better]]
    told = np.concatenate([state.recent_fitness[islands], fitness],
                          axis=1)[:, -self.population_size:]
    recent = (state.recent_fitness.copy() if told.shape[1] == state.recent_fitness.shape[1]
              else np.zeros((state.num_islands, told.shape[1])))  # all islands fill together
    recent[islands] = told
    successes, counts = state.num_successes.copy(), state.num_individuals.copy()
    successes[islands] += np.count_nonzero(fitness > self.success_fitness, axis=1)
    counts[islands] += count
    return state.replace(best_programs=best_programs, best_fitness=best_fitness,
                         num_successes=successes, recent_fitness=recent, num_individuals=counts)

  def candidates(self, state: RandomSearchState) -> tuple[ProgramBatch, np.ndarray]:
    """Each island's best program ever seen and its fitness [K]."""
    return state.best_programs, state.best_fitness

  def population_fitness(self, state: RandomSearchState) -> np.ndarray:
    """Each island's last P fitness values [K, <= P] (for the progress statistics)."""
    return state.recent_fitness
