"""Regularized evolution (REFERENCE.md §8.1, §8.2) over K islands, as an ask/tell strategy.

Each island is a population of P slots. The first P programs an island asks for are its initial
population; after that each child comes from a tournament (T draws with replacement, the strictly
fittest wins, ties go to the first drawn) and a mutation, and replaces the island's oldest slot.
Children are asked for in batches of up to B per island, all drawn from the current population,
and told back together: they replace the B oldest slots in age order. B = 1 is the original's
one-at-a-time loop. A batch never crosses the end of a sweep (P children), so sweeps end at the
same individual counts as in the original.

Islands are an array axis: the populations are one packed table of K x P rows (island-major), the
fitness and the ages are [K, P] arrays, and `ask` returns the children of the asked islands as one
batch. Tournaments and mutation are one array pass over all islands' children; only the draws
loop over islands (one call per island, `randomizer.Streams`), because each island has its own RNG
stream (island k's run does not depend on how many islands run beside it). Migration (`migrate`)
sends programs with their fitness between islands; immigrants replace the oldest members.

Hurdles (REFERENCE.md §13.2): with `hurdle_percentile`, the state also holds each member's
hurdle-stage fitness (its fitness on the hurdle tasks), and `hurdles` gives each child the fitness
it must reach there to be evaluated on the other tasks: the percentile of the distinct hurdle-stage
fitness values of its island's current population, so the hurdle rolls with the population. The
initial population is evaluated in full (its islands have no hurdle until they are full).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from azero_jax.program import (
  PackedPopulation,
  Program,
  ProgramBatch,
  concatenate,
  empty_population,
)
from azero_jax.search.randomizer import Streams, uniform_indices


@dataclasses.dataclass(frozen=True)
class EvolutionState:
  """All islands' populations, their fitness and ages, and the evaluations per island.

  `programs` holds K x P rows, island k at rows [k P, (k + 1) P), empty until first told;
  `age_order` [K, P] the arrival number of each slot's program (lower is older; slots not yet
  filled count as oldest, in slot order); `arrivals` [K] counts children and immigrants.
  """

  programs: ProgramBatch | None
  fitness: np.ndarray  # [K, P]
  age_order: np.ndarray  # [K, P] int64
  num_individuals: np.ndarray  # [K] int64: evaluations per island
  arrivals: np.ndarray  # [K] int64
  hurdle_fitness: np.ndarray | None = None  # [K, P] with hurdles: fitness on the hurdle tasks

  @property
  def num_islands(self) -> int:
    return self.fitness.shape[0]

  def replace(self, **changes) -> EvolutionState:
    return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class RegularizedEvolution:
  """`init(K) -> state`, `ask(state, rngs, islands) -> programs`,
  `tell(state, programs, fitness, islands, hurdle_fitness) -> state`.

  `rngs` holds one `np.random.Generator` per island; `islands` lists the islands that take part in
  a step (default: all). `initial_programs(rng, count)` makes `count` initial programs (e.g.
  RANDOM models, one per slot). `widths` (Setup, Predict, Learn) is the packed width of the
  population: at least the largest size a program can reach (default: what the programs need).
  `hurdle_percentile` turns hurdles on: `tell` then takes the children's hurdle-stage fitness and
  `hurdles` gives the children's hurdles.
  """

  mutator: object  # azero_jax.search.mutator.Mutator
  initial_programs: Callable[[np.random.Generator, int], Sequence[Program]]
  population_size: int
  tournament_size: int
  batch_size: int = 1
  widths: tuple[int, int, int] | None = None
  hurdle_percentile: float | None = None

  def __post_init__(self):
    for name in ("population_size", "tournament_size", "batch_size"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

  def init(self, num_islands: int = 1) -> EvolutionState:
    """K empty populations."""
    size = self.population_size
    return EvolutionState(None, np.zeros((num_islands, size)),
                          np.tile(np.arange(size, dtype=np.int64) - size, (num_islands, 1)),
                          np.zeros(num_islands, np.int64), np.zeros(num_islands, np.int64),
                          None if self.hurdle_percentile is None
                          else np.zeros((num_islands, size)))

  def ask(self, state: EvolutionState, rngs: Sequence[np.random.Generator],
          islands: np.ndarray | None = None) -> ProgramBatch:
    """The next batch of each island in `islands`, one after another: initial programs until its
    population is full, then children of tournament winners (all islands' at once)."""
    islands = island_indices(state, islands)
    size = self.population_size
    counts = np.array([batch_length(int(state.num_individuals[k]), size, self.batch_size)
                       for k in islands])
    filling = state.num_individuals[islands] < size
    batches = {k: ProgramBatch.of(self.initial_programs(rngs[k], count), self.widths).packed
               for k, count in zip(islands[filling], counts[filling])}
    evolving = islands[~filling]
    if evolving.size:
      streams = island_streams(rngs, evolving, counts[~filling])
      parents = tournament(state.fitness[evolving], self.tournament_size, streams)
      rows = evolving[streams.owners] * size + parents
      children = self.mutator.mutate_batch(state.programs.packed.take(rows), streams)
      if not batches:
        return ProgramBatch(children)
      ends = np.cumsum(counts[~filling])
      batches.update({k: children.take(slice(end - count, end))
                      for k, count, end in zip(evolving, counts[~filling], ends)})
    return ProgramBatch(concatenate([batches[k] for k in islands]))

  def hurdles(self, state: EvolutionState, islands: np.ndarray) -> np.ndarray:
    """The hurdle of a child of each island in `islands` (one entry per child): the percentile of
    the distinct hurdle-stage fitness values of the island's population (-inf before it is
    full)."""
    islands = np.asarray(islands, np.int64)
    distinct, inverse = np.unique(islands, return_inverse=True)
    bars = np.array([hurdle(state.hurdle_fitness[k], self.hurdle_percentile)
                     if state.num_individuals[k] >= self.population_size else -np.inf
                     for k in distinct])
    return bars[inverse.ravel()]

  def tell(self, state: EvolutionState, programs: Sequence[Program], fitness: np.ndarray,
           islands: np.ndarray | None = None, hurdle_fitness: np.ndarray | None = None
           ) -> EvolutionState:
    """Each island's children replace its oldest slots, oldest first (with hurdles,
    `hurdle_fitness` holds their fitness on the hurdle tasks).

    Updates the population table in place (a copy of all K x P programs per step would cost more
    than the step itself at large K); use the returned state.
    """
    islands = island_indices(state, islands)
    fitness = np.asarray(fitness, dtype=np.float64).reshape(len(islands), -1)
    if hurdle_fitness is not None:
      hurdle_fitness = np.asarray(hurdle_fitness, dtype=np.float64).reshape(fitness.shape)
    state = self._arrive(state, ProgramBatch.of(programs, self.widths).packed, fitness, islands,
                         hurdle_fitness)
    counts = state.num_individuals.copy()
    counts[islands] += fitness.shape[1]
    return state.replace(num_individuals=counts)

  def migrate(self, state: EvolutionState, rngs: Sequence[np.random.Generator], size: int,
              islands: np.ndarray | None = None) -> EvolutionState:
    """Every island in `islands` sends `size` programs drawn uniformly from its population (with
    their fitness) to a pool, and takes `size` drawn from the other islands' emigrants, which
    replace its oldest members. Needs full populations; a single island keeps its own."""
    islands = island_indices(state, islands)
    if len(islands) < 2 or size < 1:
      return state
    streams = island_streams(rngs, islands)
    sent = self._emigrant_slots(streams, size)
    pool = state.programs.packed.take((islands[:, None] * self.population_size + sent).ravel())
    pool_fitness = state.fitness[islands[:, None], sent].ravel()
    count = sent.shape[1]
    # Each island's picks among the others' emigrants, then their places in the pool.
    others = np.argsort(streams.uniforms((len(islands) - 1) * count), axis=1)[:, :count]
    taken = others + count * (others >= np.arange(len(islands))[:, None] * count)
    pool_hurdle = (None if state.hurdle_fitness is None
                   else state.hurdle_fitness[islands[:, None], sent].ravel()[taken])
    return self._arrive(state, pool.take(taken.ravel()), pool_fitness[taken], islands,
                        pool_hurdle)

  def _emigrant_slots(self, streams: Streams, size: int) -> np.ndarray:
    """[islands, size] slots drawn uniformly without replacement (the first of a random order),
    each island's from its stream."""
    order = np.argsort(streams.uniforms(self.population_size), axis=1)
    return order[:, :min(size, self.population_size)]

  def emigrants(self, state: EvolutionState, rngs: Sequence[np.random.Generator], size: int,
                islands: np.ndarray | None = None) -> tuple[PackedPopulation, np.ndarray]:
    """`size` programs drawn uniformly without replacement from each island in `islands` (full
    populations), island by island, and their fitness [len(islands), size]."""
    islands = island_indices(state, islands)
    sent = self._emigrant_slots(island_streams(rngs, islands), size)
    rows = (islands[:, None] * self.population_size + sent).ravel()
    return state.programs.packed.take(rows), state.fitness[islands[:, None], sent]

  def immigrate(self, state: EvolutionState, programs: PackedPopulation, fitness: np.ndarray,
                islands: np.ndarray | None = None) -> EvolutionState:
    """Programs from elsewhere (`fitness.shape[1]` per island in `islands`, island by island)
    replace each island's oldest members, as a migration's immigrants do. With hurdles, their
    fitness stands in for their (unsent) hurdle-stage fitness."""
    islands = island_indices(state, islands)
    fitness = np.asarray(fitness, np.float64).reshape(len(islands), -1)
    return self._arrive(state, programs, fitness, islands,
                        None if state.hurdle_fitness is None else fitness)

  def _arrive(self, state: EvolutionState, programs: PackedPopulation, fitness: np.ndarray,
              islands: np.ndarray, hurdle_fitness: np.ndarray | None = None) -> EvolutionState:
    """Writes `fitness.shape[1]` programs per island over its oldest slots, oldest first (and
    their hurdle-stage fitness where the state keeps it)."""
    count = fitness.shape[1]
    population = state.programs.packed if state.programs is not None else empty_population(
        state.num_islands * self.population_size, programs.widths)
    widths = np.maximum(population.widths, programs.widths)
    population, programs = population.padded(widths), programs.padded(widths)
    slots = np.argsort(state.age_order[islands], axis=1, kind="stable")[:, :count]
    rows = (islands[:, None] * self.population_size + slots).ravel()
    for target, source in zip(population, programs):
      target.table[rows] = source.table
      target.length[rows] = source.length
    state.fitness[islands[:, None], slots] = fitness
    if state.hurdle_fitness is not None:
      state.hurdle_fitness[islands[:, None], slots] = hurdle_fitness
    arrivals = state.arrivals.copy()
    state.age_order[islands[:, None], slots] = arrivals[islands, None] + np.arange(count)
    arrivals[islands] += count
    return state.replace(programs=ProgramBatch(population), arrivals=arrivals)

  def candidates(self, state: EvolutionState) -> tuple[ProgramBatch, np.ndarray]:
    """Each island's best program (first slot on ties) and its fitness [K]."""
    best = np.argmax(state.fitness, axis=1)
    rows = np.arange(state.num_islands) * self.population_size + best
    return (ProgramBatch(state.programs.packed.take(rows)),
            state.fitness[np.arange(state.num_islands), best])

  def population_fitness(self, state: EvolutionState) -> np.ndarray:
    """The fitness of each island's current population [K, P] (for the progress statistics)."""
    return state.fitness


def hurdle(hurdle_fitness: np.ndarray, percentile: float) -> float:
  """The `percentile` (0-100, linear interpolation) of the distinct values of `hurdle_fitness`: a
  population of many equal programs does not pull the hurdle to their value."""
  return float(np.percentile(np.unique(hurdle_fitness), percentile))


def island_indices(state, islands) -> np.ndarray:
  """`islands` as an index array; None means every island of `state`."""
  return np.arange(state.num_islands) if islands is None else np.asarray(islands, np.int64)


def island_streams(rngs: Sequence[np.random.Generator], islands: np.ndarray,
                   counts: np.ndarray | None = None) -> Streams:
  """The draws of `counts[i]` items (default 1) of each island `islands[i]`, in order, each
  island's from its own generator."""
  return Streams(tuple(rngs[k] for k in islands),
                 np.ones(len(islands), np.int64) if counts is None else counts)


def batch_length(num_individuals: int, population_size: int, batch_size: int) -> int:
  """Up to `batch_size`, stopping at the end of the current sweep of P individuals."""
  return min(batch_size, population_size - num_individuals % population_size)


def tournament(fitness: np.ndarray, tournament_size: int, streams: Streams) -> np.ndarray:
  """The slot of a tournament winner for each item of `streams`, among the population of its
  group (`fitness` [groups, P]): T uniform draws with replacement each; the strictly fittest wins
  and ties go to the first drawn."""
  draws = uniform_indices(streams.uniforms(tournament_size), fitness.shape[1])
  owners = streams.owners[:, None]
  return draws[np.arange(len(draws)), np.argmax(fitness[owners, draws], axis=1)]
