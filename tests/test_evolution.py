"""Regularized evolution and random search strategies (REFERENCE.md §8.1-§8.3, §9.2)."""

import numpy as np
import pytest

from azero_jax.program import Program, ProgramBatch
from azero_jax.search.driver import progress_line, progress_report
from azero_jax.search.evolution import RegularizedEvolution, batch_length, tournament
from azero_jax.search.generator import InitModel, initial_program
from azero_jax.search.mutator import MutationType, Mutator
from azero_jax.search.random_search import RandomSearch
from azero_jax.search.randomizer import Memory, Randomizer, Streams

OPS = (56, 27, 2, 3, 18, 23)
RANDOMIZER = Randomizer((OPS,) * 3, Memory(4, 3, 1))
MUTATOR = Mutator(RANDOMIZER, (MutationType.ALTER_PARAM, MutationType.RANDOMIZE_INSTRUCTION,
                               MutationType.RANDOMIZE_COMPONENT_FUNCTION), 0.9)


def random_program(rng):
  return initial_program(InitModel.RANDOM, (3, 2, 3), RANDOMIZER, rng)


def random_programs(rng, count):
  return RANDOMIZER.programs(initial_program(InitModel.NO_OP, (3, 2, 3)), count, rng)


def toy_fitness(program: Program) -> float:
  """A cheap deterministic fitness with ties: how many instructions use op 27 or 18."""
  return sum(inst.op in (27, 18) for name in ("setup", "predict", "learn")
             for inst in program.component(name)) / 8.0


def evolve(strategy, rng, num_individuals):
  state = strategy.init()
  while state.num_individuals[0] < num_individuals:
    children = strategy.ask(state, [rng])
    state = strategy.tell(state, children, np.array([toy_fitness(c) for c in children]))
  return state


def test_tournament_ties_go_to_the_first_drawn():
  fitness = np.array([0.5, 0.5, 0.9, 0.9, 0.1])
  rng = np.random.default_rng(3)
  winners = tournament(fitness[None], 4, Streams.of(rng, 200))
  draws = (np.random.default_rng(3).random((200, 4)) * 5).astype(int)
  for row, winner in zip(draws, winners):
    best = max(fitness[row])
    assert winner == row[list(fitness[row]).index(best)]


def test_tournament_of_one_is_uniform_with_replacement():
  winners = tournament(np.zeros((1, 4)), 1, Streams.of(np.random.default_rng(0), 4000))
  assert set(winners) == {0, 1, 2, 3}
  assert np.bincount(winners).min() > 900


def test_batches_stop_at_the_end_of_each_sweep():
  assert [batch_length(n, 10, 4) for n in (0, 4, 8, 10, 18)] == [4, 4, 2, 4, 2]
  assert batch_length(7, 10, 1) == 1


def test_initial_population_then_children_replace_the_oldest():
  strategy = RegularizedEvolution(MUTATOR, random_programs, population_size=10, tournament_size=3,
                                  batch_size=4)
  rng = np.random.default_rng(0)
  state = strategy.init()
  sizes = []
  while state.num_individuals[0] < 10:
    children = strategy.ask(state, [rng])
    sizes.append(len(children))
    state = strategy.tell(state, children, np.arange(len(children)) / 10)
  assert sizes == [4, 4, 2] and state.num_individuals.tolist() == [10]
  assert len(state.programs) == 10
  before = state.programs[:]  # a tuple of Programs (tell updates the table in place)
  children = strategy.ask(state, [rng])
  state = strategy.tell(state, children, np.ones(4))
  assert state.programs[:4] == tuple(children) and state.programs[4:] == before[4:]
  children = strategy.ask(state, [rng])
  state = strategy.tell(state, children, np.ones(4))
  assert state.programs[4:8] == tuple(children)
  assert len(strategy.ask(state, [rng])) == 2  # the sweep ends at 20 individuals


def one_at_a_time(population_size, tournament_size, num_individuals, seed):
  """The original's loop written out: slots replaced in order, each child from a tournament."""
  rng = np.random.default_rng(seed)
  programs = [random_program(rng) for _ in range(population_size)]
  fitness = np.array([toy_fitness(p) for p in programs])
  for index in range(num_individuals - population_size):
    draws = (rng.random(tournament_size) * population_size).astype(int)
    winner = draws[0]
    for draw in draws[1:]:
      if fitness[draw] > fitness[winner]:
        winner = draw
    child = MUTATOR.mutate(programs[winner], rng)
    slot = index % population_size
    programs[slot], fitness[slot] = child, toy_fitness(child)
  return programs, fitness


def test_batch_of_one_reproduces_the_one_at_a_time_loop():
  strategy = RegularizedEvolution(MUTATOR, random_programs, population_size=20, tournament_size=4,
                                  batch_size=1)
  state = evolve(strategy, np.random.default_rng(5), 95)
  programs, fitness = one_at_a_time(20, 4, 95, seed=5)
  assert list(state.programs) == programs
  np.testing.assert_array_equal(state.fitness, [fitness])


def test_batched_evolution_improves_the_toy_fitness():
  strategy = RegularizedEvolution(MUTATOR, random_programs, population_size=50, tournament_size=5,
                                  batch_size=25)
  state = evolve(strategy, np.random.default_rng(1), 3000)
  assert state.num_individuals.tolist() == [3000]
  assert state.fitness.mean() > 0.6


def test_filling_and_evolving_islands_ask_in_island_order():
  unchanged = Mutator(RANDOMIZER, (MutationType.IDENTITY,), 0.0)
  fresh = initial_program(InitModel.NO_OP, (1, 1, 1))
  strategy = RegularizedEvolution(unchanged, lambda rng, count: [fresh] * count,
                                  population_size=4, tournament_size=2, batch_size=2)
  members = [random_program(np.random.default_rng(i)) for i in range(4)]
  state = strategy.tell(strategy.init(2), members, np.arange(4) / 4, islands=[0])
  children = strategy.ask(state, [np.random.default_rng(k) for k in range(2)])
  assert len(children) == 4 and children[2:] == (fresh, fresh)  # island 1 is still filling
  assert all(child in members for child in children[:2])


def test_candidate_is_the_first_best_of_the_final_population():
  strategy = RegularizedEvolution(MUTATOR, random_programs, 3, 2)
  programs = tuple(random_program(np.random.default_rng(i)) for i in range(3))
  state = strategy.init().replace(programs=ProgramBatch.of(programs),
                                  fitness=np.array([[0.2, 0.7, 0.7]]),
                                  num_individuals=np.array([3]))
  candidates, fitness = strategy.candidates(state)
  assert list(candidates) == [programs[1]] and fitness.tolist() == [0.7]


def test_parameters_are_validated():
  with pytest.raises(ValueError, match="tournament_size"):
    RegularizedEvolution(MUTATOR, random_programs, 10, 0)
  with pytest.raises(ValueError, match="batch_size"):
    RandomSearch(random_programs, 10, 0)


def test_random_search_keeps_the_best_ever_and_counts_successes():
  strategy = RandomSearch(random_programs, population_size=4, batch_size=2, success_fitness=0.5)
  rng = np.random.default_rng(0)
  state = strategy.init()
  batches = [np.array([0.1, 0.9]), np.array([0.9, 0.2]), np.array([0.6, 0.3]),
             np.array([0.0, 0.1])]
  asked = []
  for fitness in batches:
    children = strategy.ask(state, [rng])
    asked.append(children)
    state = strategy.tell(state, children, fitness)
  candidates, best_fitness = strategy.candidates(state)
  # The first of the tied best, aged out of the window.
  assert list(candidates) == [asked[0][1]] and best_fitness.tolist() == [0.9]
  assert state.num_successes.tolist() == [3] and state.num_individuals.tolist() == [8]
  np.testing.assert_array_equal(strategy.population_fitness(state), [[0.6, 0.3, 0.0, 0.1]])
  assert all(p.sizes == (3, 2, 3) for batch in asked for p in batch)


def test_progress_line_format_and_statistics():
  fitness = np.array([[0.25, 0.75, 0.75]])  # [K = 1 island, P]
  line = progress_line(progress_report(11000, 3.9, fitness, None))
  assert line == ("indivs=11000, elapsed_secs=3, mean=0.583333, stdev=0.235702, "
                  "best fit=0.750000,")
  assert progress_line(progress_report(1, 0, np.ones((1, 2)), 0.5)).endswith(
      "best fit=1.000000, fec hit rate=0.5000")
  # Population std from E[f^2] - mean^2, clipped at 0 (no NaN from rounding).
  assert "stdev=0.000000" in progress_line(progress_report(1, 0, np.full((1, 7), 0.1), None))
