"""Islands: K populations in lock-step, per-island RNG streams, FEC scopes, migration, devices."""

import os
import pathlib
import re
import subprocess
import sys

import jax
import numpy as np
import pytest
from search_runs import search_config

from azero_jax.program import Instruction, Program, ProgramBatch
from azero_jax.search import driver
from azero_jax.search.evolution import RegularizedEvolution
from azero_jax.tasks.collections import TaskCollections

ROOT = pathlib.Path(__file__).resolve().parent.parent
POPULATION = 40
# About a thousand individuals (~45 sweeps) per island in a few seconds.
FLAGS = (f"--flagfile={ROOT}/experiments/configs/integration_linear.flags",
         f"--population_size={POPULATION}", "--batch_size=20", "--max_train_steps=150000",
         "--random_seed=5", "--fec_cache_size=300", "--fec_forget_every=5",
         "--search_task=linear:features=4,num_tasks=3,num_train_examples=50,num_valid_examples=20",
         "--select_task=linear:features=4,num_tasks=2,num_train_examples=50,num_valid_examples=20",
         "--final_task=linear:features=4,num_tasks=2,num_train_examples=50,num_valid_examples=20")


def config(*args) -> driver.SearchConfig:
  return search_config(*FLAGS, *args)


class Reports(driver.RunHooks):
  def __init__(self):
    self.reports = []

  def progress(self, experiment, report, candidate):
    self.reports.append(report)


def reports(*args) -> list[driver.ProgressReport]:
  hooks = Reports()
  driver.run(config(*args), write=lambda line: None, hooks=hooks)
  return hooks.reports


def test_an_island_without_migration_runs_as_it_would_alone():
  """Island-scoped FEC, no migration: island k's populations, sweep after sweep, are those of a
  one-island run with island k's seed, bit for bit; an island that spent its budget waits."""
  num_islands = 3
  together = reports(f"--num_islands={num_islands}", "--fec_scope=island", "--progress_every=1")
  sweeps = []
  for island, seed in enumerate(driver.island_seeds(5, num_islands)):
    alone = reports(f"--random_seed={seed}", "--progress_every=1")  # every sweep
    sweeps.append(len(alone))
    assert len(alone) > 3
    assert [(r.mean, r.best) for r in alone] == [
        (r.island_mean[island], r.island_best[island]) for r in together[:len(alone)]]
    assert all((r.island_mean[island], r.island_best[island]) == (alone[-1].mean, alone[-1].best)
               for r in together[len(alone):])
  assert min(sweeps) < len(together)  # an island did wait


def test_island_seeds_start_with_the_run_seed_and_differ():
  seeds = driver.island_seeds(5, 4)
  assert seeds[0] == 5 and len(set(seeds)) == 4 and seeds == driver.island_seeds(5, 4)
  assert all(1 <= seed < 2**31 - 1 for seed in seeds)


def test_shared_fec_and_migration_are_deterministic_and_count_all_islands():
  args = ("--num_islands=3", "--migration_every=40", "--migration_size=5",
          f"--progress_every={3 * POPULATION}")
  first, second = reports(*args), reports(*args)
  assert first == [r._replace(elapsed_secs=f.elapsed_secs) for r, f in zip(second, first)]
  assert first[0].evaluations == 3 * POPULATION and len(first[0].island_best) == 3
  assert first[-1].best == max(first[-1].island_best)


def stepped(overlap: bool, steps: int = 12):
  """State, last step's train steps and FEC hit rate after `steps` driver steps of 3 islands
  sharing a cache, in two halves (`overlap`) or one batch."""
  settings = config("--num_islands=3")
  seeds = driver.island_seeds(settings.random_seed, settings.num_islands)
  tasks = TaskCollections(settings.search_tasks, settings.select_tasks,
                          settings.final_tasks).search_tasks(settings.random_seed)
  fitness = driver.search_evaluator(settings, tasks, [jax.random.key(seed) for seed in seeds])
  strategy = driver.make_strategy(settings)
  state, rngs = strategy.init(len(seeds)), [np.random.default_rng(seed) for seed in seeds]
  for _ in range(steps):
    state, used = driver.step(strategy, fitness, state, rngs, np.arange(len(seeds)), overlap)
  return state, used, fitness.hit_rate


def test_a_step_in_two_halves_ends_as_one_batch():
  halves, one_batch = stepped(overlap=True), stepped(overlap=False)
  assert halves[2] == one_batch[2] > 0  # the same cache hits
  np.testing.assert_array_equal(halves[1], one_batch[1])
  for field in ("fitness", "age_order", "num_individuals"):
    np.testing.assert_array_equal(getattr(halves[0], field), getattr(one_batch[0], field))
  assert list(halves[0].programs) == list(one_batch[0].programs)


def marked(value: float) -> Program:
  """A one-instruction program that carries `value` as its constant."""
  return Program(setup=(Instruction(56, 0, 0, 2, 0.0, value, 0.0, 0.0),))


def test_migration_replaces_the_oldest_with_other_islands_programs():
  size, num_islands, migrants = 6, 3, 2
  strategy = RegularizedEvolution(None, None, population_size=size, tournament_size=2,
                                  batch_size=size)
  state = strategy.init(num_islands)
  values = np.arange(num_islands * size, dtype=np.float64)  # program k*size+i has constant = id
  state = strategy.tell(state, ProgramBatch.of([marked(v) for v in values]), values / 100)
  rngs = [np.random.default_rng(k) for k in range(num_islands)]
  migrated = strategy.migrate(state.replace(fitness=state.fitness.copy(),
                                            age_order=state.age_order.copy()),
                              rngs, migrants)
  for island in range(num_islands):
    rows = range(island * size, (island + 1) * size)
    ids = [migrated.programs[row].setup[0].f0 for row in rows]
    arrivals = [i for i in ids if not island * size <= i < (island + 1) * size]
    assert len(arrivals) == migrants  # from other islands, with their own fitness
    np.testing.assert_array_equal(migrated.fitness[island], np.array(ids) / 100)
    assert ids[migrants:] == list(values[island * size + migrants:(island + 1) * size])
  # The immigrants are the newest: the next children replace the slots after them.
  children = strategy.tell(migrated, ProgramBatch.of([marked(-1.0)] * num_islands * migrants),
                           np.zeros(num_islands * migrants))
  assert [children.programs[row].setup[0].f0 for row in range(migrants, 2 * migrants)] == [-1.0] * 2


def run_output(device_count: int) -> str:
  env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={device_count}"}
  result = subprocess.run(
      [sys.executable, "-m", "experiments.run_search", *FLAGS, "--run_dir=", "--num_islands=2",
       "--migration_every=40", "--migration_size=5"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr
  assert f"device: cpu ({device_count} host device" in result.stdout
  return re.sub(r"elapsed_secs=\d+|device: .*", "", result.stdout)


def test_results_do_not_depend_on_the_device_count():
  one, two = run_output(1), run_output(2)
  assert "Final evaluation fitness" in one and one == two


@pytest.mark.parametrize("flag, message", [
    ("--num_islands=0", "num_islands must be >= 1"),
    ("--migration_every=-1", "migration_every must be >= 0"),
    ("--migration_size=0", "migration_size must be in"),
])
def test_bad_island_flags(flag, message):
  with pytest.raises(ValueError, match=message):
    config(flag)


def test_migration_needs_evolution():
  with pytest.raises(ValueError, match="migration_every needs strategy=evolution"):
    config("--strategy=random", "--migration_every=10", "--migration_size=5")
