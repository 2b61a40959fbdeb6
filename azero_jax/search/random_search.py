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

from azero_jax.program import Program
from azero_jax.search.evolution import batch_length


@dataclasses.dataclass(frozen=True)
class RandomSearchState:
  best_program: Program | None = None
  best_fitness: float = -np.inf
  num_successes: int = 0
  recent_fitness: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
  num_individuals: int = 0

  def replace(self, **changes) -> RandomSearchState:
    return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class RandomSearch:
  """`init() -> state`, `ask(state, rng) -> programs`, `tell(state, programs, fitness) -> state`.

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

  def init(self) -> RandomSearchState:
    """Nothing seen yet."""
    return RandomSearchState()

  def ask(self, state: RandomSearchState, rng: np.random.Generator) -> Sequence[Program]:
    """The next batch of independent random programs (never crossing the end of a sweep)."""
    count = batch_length(state.num_individuals, self.population_size, self.batch_size)
    return self.random_programs(rng, count)

  def tell(self, state: RandomSearchState, programs: Sequence[Program],
           fitness: np.ndarray) -> RandomSearchState:
    """Updates the best ever, the success count and the window of recent fitness."""
    fitness = np.asarray(fitness, dtype=np.float64)
    best = int(np.argmax(fitness))
    if fitness[best] > state.best_fitness:
      state = state.replace(best_program=programs[best], best_fitness=float(fitness[best]))
    recent = np.concatenate([state.recent_fitness, fitness])[-self.population_size:]
    successes = int(np.count_nonzero(fitness > self.success_fitness))
    return state.replace(num_successes=state.num_successes + successes, recent_fitness=recent,
                         num_individuals=state.num_individuals + len(programs))

  def candidate(self, state: RandomSearchState) -> tuple[Program, float]:
    """The best program ever seen and its fitness."""
    return state.best_program, state.best_fitness

  def population_fitness(self, state: RandomSearchState) -> np.ndarray:
    """The fitness of the last P programs (for the progress statistics)."""
    return state.recent_fitness
