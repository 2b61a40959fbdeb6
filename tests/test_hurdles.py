"""Hurdles (REFERENCE.md §13.2): the hurdle, who goes on past it, what the stopped ones count,
islands, checkpoints, and hurdles off printing what the search without hurdles prints."""

import io
import pathlib

import jax
import numpy as np
import pytest
from search_runs import DEMO_MEMORY, DEMO_OPS, DEMO_SIZES, masked, search_config, varied_programs

from azero_jax import evaluator
from azero_jax.search import checkpoint, driver
from azero_jax.search.evolution import RegularizedEvolution, hurdle
from azero_jax.search.fitness import FecSpec, SearchEvaluator
from azero_jax.search.generator import LINEAR
from azero_jax.tasks.spec import TaskSpec

ROOT = pathlib.Path(__file__).resolve().parent.parent
OPS, MEMORY, SIZES = DEMO_OPS, DEMO_MEMORY, DEMO_SIZES
NUM_TASKS, NUM_TRAIN, HURDLE_TASKS, BATCH = 4, 30, 2, 16
TASKS = TaskSpec.parse(f"linear:features=4,num_tasks={NUM_TASKS},num_train_examples={NUM_TRAIN},"
                       "num_valid_examples=20").build()


def search_evaluator(fec=None, hurdle_tasks=HURDLE_TASKS, tasks=TASKS):
  return SearchEvaluator(tasks, memory=MEMORY, op_lists=(OPS,) * 3, widths=SIZES,
                         batch_size=BATCH, keys=jax.random.key(0), fec=fec,
                         hurdle_tasks=hurdle_tasks)


@pytest.fixture(scope="module")
def per_task():
  """Each program's fitness on each task, from the evaluator without search machinery."""
  programs = varied_programs(BATCH)
  return programs, evaluator.evaluate(programs, TASKS, num_scalars=4, num_vectors=3,
                                      num_matrices=1, op_sets=(OPS,) * 3)


def test_the_hurdle_is_a_percentile_of_the_distinct_values():
  population = np.array([0.0, 0.0, 0.0, 0.0, 0.5, 1.0])
  assert hurdle(population, 75) == 0.75  # of {0, 0.5, 1}; of all six it would be 0.375
  assert hurdle(population, 0) == 0.0 and hurdle(population, 100) == 1.0
  assert hurdle(np.array([0.2, 0.4, 0.4, 0.4]), 50) == pytest.approx(0.3)


def test_each_island_has_its_own_hurdle_once_its_population_is_full():
  strategy = RegularizedEvolution(None, None, population_size=4, tournament_size=2,
                                  batch_size=4, hurdle_percentile=50)
  state = strategy.init(3)
  state = strategy.tell(state, [LINEAR] * 8, np.zeros(8), np.array([0, 2]),
                        hurdle_fitness=[0.1, 0.1, 0.3, 0.5, 0.2, 0.2, 0.2, 0.2])
  bars = strategy.hurdles(state, np.array([0, 0, 1, 2]))
  assert bars.tolist() == [0.3, 0.3, -np.inf, 0.2]  # island 1 is still empty


def evaluate_with_hurdles(programs, hurdle_fitness, fec=None):
  """Programs 0, 2, 4, ... get a hurdle just above their hurdle-stage fitness, the others one
  equal to it."""
  above = np.arange(len(programs)) % 2 == 0
  bars = np.where(above, np.nextafter(hurdle_fitness, np.inf), hurdle_fitness)
  search = search_evaluator(fec)
  return search, search.evaluate(programs, hurdles=bars), above


@pytest.mark.parametrize("fec", [None, FecSpec()], ids=["no_fec", "fec"])
def test_children_below_the_hurdle_stop_and_the_others_go_on(per_task, fec):
  programs, direct = per_task
  first = search_evaluator(fec).evaluate(programs)  # no hurdles given: everyone goes on
  np.testing.assert_allclose(first.fitness, direct.mean(axis=1), atol=1e-6)
  np.testing.assert_allclose(first.hurdle_fitness, direct[:, :HURDLE_TASKS].mean(axis=1),
                             atol=1e-6)
  search, result, stopped = evaluate_with_hurdles(programs, first.hurdle_fitness, fec)
  np.testing.assert_array_equal(result.hurdle_fitness, first.hurdle_fitness)
  # The stopped ones count the other tasks as 0: a lower bound of their full fitness.
  np.testing.assert_allclose(result.fitness[stopped],
                             direct[stopped, :HURDLE_TASKS].sum(axis=1) / NUM_TASKS, atol=1e-6)
  assert (result.fitness[stopped] <= first.fitness[stopped] + 1e-12).all()
  assert (result.fitness[stopped] < first.fitness[stopped]).any()  # not vacuous
  np.testing.assert_array_equal(result.fitness[~stopped], first.fitness[~stopped])
  # Counted: one full run per program on the hurdle tasks, one more for those that go on.
  assert search.stopped_at_hurdle == stopped.sum() == BATCH // 2
  if fec is None:  # train steps: those of the hurdle tasks only, or of all
    assert search.full_evaluations == BATCH + (~stopped).sum()
    on_hurdle_tasks = search_evaluator(None, 0, TASKS[:HURDLE_TASKS]).evaluate(programs)
    np.testing.assert_array_equal(result.train_steps[stopped],
                                  on_hurdle_tasks.train_steps[stopped])
    np.testing.assert_array_equal(result.train_steps[~stopped], first.train_steps[~stopped])
    assert (result.train_steps[stopped] < first.train_steps[stopped]).all()
  else:  # the other tasks are never looked up
    cache = search.caches[0]
    assert cache.hits + cache.misses == BATCH * HURDLE_TASKS + (~stopped).sum() * (
        NUM_TASKS - HURDLE_TASKS)
    assert (result.train_steps[stopped] < first.train_steps[stopped]).all()


def test_fec_hits_on_the_hurdle_tasks_skip_their_full_run():
  search = search_evaluator(FecSpec())
  search.evaluate([LINEAR])
  runs = search.full_evaluations
  again = search.evaluate([LINEAR], hurdles=np.array([np.inf]))  # hits, then stopped
  assert search.full_evaluations == runs and search.stopped_at_hurdle == 1
  assert again.train_steps[0] == HURDLE_TASKS * 10  # fingerprints of the hurdle tasks only


FLAGS = (f"--flagfile={ROOT}/experiments/configs/integration_linear.flags",
         "--population_size=40", "--batch_size=20", "--max_train_steps=150000",
         "--random_seed=5", "--fec_cache_size=300", "--fec_forget_every=5",
         "--search_task=linear:features=4,num_tasks=3,num_train_examples=50,num_valid_examples=20",
         "--select_task=linear:features=4,num_tasks=2,num_train_examples=50,num_valid_examples=20",
         "--final_task=linear:features=4,num_tasks=2,num_train_examples=50,num_valid_examples=20",
         "--num_islands=2", "--migration_every=40", "--migration_size=5")


def config(*args) -> driver.SearchConfig:
  return search_config(*FLAGS, *args)


def test_hurdles_off_print_what_a_run_without_hurdle_flags_prints():
  """`--hurdle_tasks=0` switches hurdles off whatever the percentile: line for line the search
  without hurdle flags (the percentile is not even read)."""
  runs = []
  for args in ((), ("--hurdle_tasks=0", "--hurdle_percentile=10")):
    lines = []
    driver.run(config("--progress_every=1200", *args), write=lines.append)
    runs.append(masked(lines))
  assert runs[0] == runs[1]
  assert sum(line.startswith("indivs=") for line in runs[0]) >= 2
  assert not any("hurdle" in line for line in runs[0])
  assert any(line.startswith("Final evaluation fitness") for line in runs[0])


class Checkpoints(driver.RunHooks):
  """Writes every snapshot the driver offers to bytes at once, as a run directory saves it to a
  file (the population table changes in place as the search goes on)."""

  def __init__(self, config_):
    self.config, self.saved = config_, []

  def boundary(self, evaluations, snapshot, force):
    file = io.BytesIO()
    np.savez(file, **checkpoint.encode(snapshot(), self.config))
    self.saved.append(file.getvalue())

  def arrays(self, index: int) -> dict:
    with np.load(io.BytesIO(self.saved[index])) as data:
      return {key: data[key] for key in data.files}


def test_resuming_with_hurdles_prints_the_same_lines():
  config_ = config("--hurdle_tasks=1", "--progress_every=80")
  lines, hooks = [], Checkpoints(config_)
  result = driver.run(config_, write=lines.append, hooks=hooks)
  middle = [arrays for arrays in map(hooks.arrays, range(len(hooks.saved)))
            if "population.fitness" in arrays]
  snapshot = checkpoint.decode(middle[len(middle) // 2])[0]
  hurdle_fitness = snapshot.current.progress.state.hurdle_fitness
  assert hurdle_fitness.shape == (2, 40) and len(np.unique(hurdle_fitness)) > 2
  assert snapshot.current.evaluator["stopped_at_hurdle"] > 0  # the hurdles stopped children
  resumed_lines = []
  resumed = driver.run(config_, write=resumed_lines.append, resume=snapshot)
  tail = masked(resumed_lines[4:])  # after the seed, device, islands, "Resuming"
  assert len(tail) > 10 and masked(lines)[-len(tail):] == tail
  assert resumed.best_program == result.best_program


@pytest.mark.parametrize("flag, message", [
    ("--hurdle_tasks=-1", "hurdle_tasks must be >= 0"),
    ("--hurdle_tasks=3", "hurdle_tasks must be < the 3 search tasks, got 3"),
    ("--hurdle_percentile=101", r"hurdle_percentile must be in \[0, 100\]"),
])
def test_bad_hurdle_flags(flag, message):
  with pytest.raises(ValueError, match=message):
    config("--hurdle_tasks=1", flag)


def test_hurdles_need_evolution():
  with pytest.raises(ValueError, match="hurdle_tasks needs strategy=evolution"):
    config("--strategy=random", "--migration_every=0", "--hurdle_tasks=1")
