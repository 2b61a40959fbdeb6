"""Regularized evolution (REFERENCE.md §8.1, §8.2) as an ask/tell strategy.

The population has P slots. The first P programs asked for are the initial population; after that
each child comes from a tournament (T draws with replacement, the strictly fittest wins, ties go to
the first drawn) and a mutation, and replaces the oldest slot. Children are asked for in batches of
up to B, all drawn from the current population, and told back together: they replace the B oldest
slots in age order. B = 1 is the original's one-at-a-time loop. A batch never crosses the end of a
sweep (P children), so sweeps end at the same individual counts as in the original.

The population and the batches are `ProgramBatch`es: packed tables, mutated a batch at a time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from azero_jax.program import Program, ProgramBatch, concatenate
from azero_jax.search.mutator import Mutator


@dataclasses.dataclass(frozen=True)
class EvolutionState:
  """The population (slot order) and its fitness; `num_individuals` counts every evaluation."""

  programs: Sequence[Program] = ()  # a ProgramBatch once told
  fitness: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
  num_individuals: int = 0

  def replace(self, **changes) -> EvolutionState:
    return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class RegularizedEvolution:
  """`init() -> state`, `ask(state, rng) -> programs`, `tell(state, programs, fitness) -> state`.

  `initial_programs(rng, count)` makes `count` initial programs (e.g. RANDOM models, one per
  slot).
  `widths` (Setup, Predict, Learn) is the packed width of the population: at least the largest
  size a program can reach (default: whatever the programs need so far).
  """

  mutator: Mutator
  initial_programs: Callable[[np.random.Generator, int], Sequence[Program]]
  population_size: int
  tournament_size: int
  batch_size: int = 1
  widths: tuple[int, int, int] | None = None

  def __post_init__(self):
    for name in ("population_size", "tournament_size", "batch_size"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

  def init(self) -> EvolutionState:
    """An empty population."""
    return EvolutionState()

  def ask(self, state: EvolutionState, rng: np.random.Generator) -> ProgramBatch:
    """The next batch: initial programs until the population is full, then children."""
    count = batch_length(state.num_individuals, self.population_size, self.batch_size)
    if len(state.programs) < self.population_size:
      return ProgramBatch.of(self.initial_programs(rng, count), self.widths)
    parents = tournament(state.fitness, self.tournament_size, count, rng)
    population = ProgramBatch.of(state.programs, self.widths).packed
    return ProgramBatch(self.mutator.mutate_batch(population.take(parents), rng))

  def tell(self, state: EvolutionState, programs: Sequence[Program],
           fitness: np.ndarray) -> EvolutionState:
    """Fills the population, or replaces the oldest slots (in age order) with the children."""
    fitness = np.asarray(fitness, dtype=np.float64)
    children = ProgramBatch.of(programs, self.widths).packed
    if len(state.programs) < self.population_size:
      population = [ProgramBatch.of(state.programs, self.widths).packed, children]
      return state.replace(programs=ProgramBatch(concatenate(population)),
                           fitness=np.concatenate([state.fitness, fitness]),
                           num_individuals=state.num_individuals + len(programs))
    oldest = state.num_individuals % self.population_size
    population = ProgramBatch.of(state.programs, self.widths).packed
    population = concatenate([population.take(slice(0, oldest)), children,
                              population.take(slice(oldest + len(programs), None))])
    updated = state.fitness.copy()
    updated[oldest:oldest + len(programs)] = fitness
    return state.replace(programs=ProgramBatch(population), fitness=updated,
                         num_individuals=state.num_individuals + len(programs))

  def candidate(self, state: EvolutionState) -> tuple[Program, float]:
    """The best program of the current population (first index on ties) and its fitness."""
    best = int(np.argmax(state.fitness))
    return state.programs[best], float(state.fitness[best])

  def population_fitness(self, state: EvolutionState) -> np.ndarray:
    """The fitness of the current population (for the progress statistics)."""
    return state.fitness


def batch_length(num_individuals: int, population_size: int, batch_size: int) -> int:
  """Up to `batch_size`, stopping at the end of the current sweep of P individuals."""
  return min(batch_size, population_size - num_individuals % population_size)


def tournament(fitness: np.ndarray, tournament_size: int, count: int,
               rng: np.random.Generator) -> np.ndarray:
  """Indices of `count` tournament winners: T uniform draws with replacement each; the strictly
  fittest wins and ties go to the first drawn."""
  draws = (rng.random((count, tournament_size)) * len(fitness)).astype(np.int64)
  return draws[np.arange(count), np.argmax(fitness[draws], axis=1)]
