"""Task mixes (--search_task_mix, the paper's "50% of the workers on MNIST"): each island searches
only its family's tasks, one family is --search_task alone, the families are dealt in turn, and a
run with a mix resumes with the same lines."""

import io
import pathlib

import jax
import numpy as np
import pytest
from search_runs import DEMO_OPS, DEMO_SIZES, masked, search_config, varied_programs

from azero_jax import evaluator
from azero_jax.search import checkpoint, driver, fitness
from azero_jax.search.fitness import FecSpec, SearchEvaluator
from azero_jax.search.randomizer import Memory
from azero_jax.tasks.spec import TaskSpec, parse_mix

ROOT = pathlib.Path(__file__).resolve().parent.parent
OPS, SIZES = DEMO_OPS, DEMO_SIZES
BATCH = 16
# Two families with the same feature size and eval type: one compiled group unless split.
FAMILY_A = TaskSpec.parse("linear:features=4,num_tasks=3,num_train_examples=30,"
                          "num_valid_examples=20")
FAMILY_B = TaskSpec.parse("affine:features=4,num_tasks=2,num_train_examples=40,"
                          "num_valid_examples=20")
TASKS_A, TASKS_B = FAMILY_A.build(), FAMILY_B.build()
ISLAND_TASKS = np.array([[1, 1, 1, 0, 0], [0, 0, 0, 1, 1]], dtype=bool)


def mixed_evaluator(fec=None, hurdle_tasks=0):
  return SearchEvaluator([*TASKS_A, *TASKS_B], memory=Memory(4, 3, 1), op_lists=(OPS,) * 3,
                         widths=SIZES, batch_size=BATCH, keys=[jax.random.key(0)] * 2, fec=fec,
                         hurdle_tasks=hurdle_tasks, island_tasks=ISLAND_TASKS)


@pytest.mark.parametrize("fec", [None, FecSpec()], ids=["no_fec", "fec"])
def test_an_island_evaluates_only_its_familys_tasks(monkeypatch, fec):
  calls = []  # (tasks in the call, islands of its rows)
  run_packed = evaluator.run_packed

  def counting(config, packed, tasks, key, fold=None, row_folds=None):
    if row_folds is not None:  # a full run (padding rows copy the first row's island)
      calls.append((tasks.x_train.shape[0], set(np.asarray(row_folds)[:, 0].tolist())))
    elif fold is not None:  # a full run of one island's rows, with that island's key
      calls.append((tasks.x_train.shape[0],
                    {k for k, own in enumerate(search._island_keys) if own is key}))
    return run_packed(config, packed, tasks, key, fold=fold, row_folds=row_folds)

  monkeypatch.setattr(fitness.evaluator, "run_packed", counting)
  batch = varied_programs(BATCH)
  islands = np.arange(BATCH) % 2
  search = mixed_evaluator(fec)
  result = search.evaluate(batch, islands)
  assert sorted(calls) == [(2, {1}), (3, {0})]  # one call per family, on its island's programs
  on_a = evaluator.evaluate(batch, TASKS_A, num_scalars=4, num_vectors=3, num_matrices=1,
                            op_sets=(OPS,) * 3)
  on_b = evaluator.evaluate(batch, TASKS_B, num_scalars=4, num_vectors=3, num_matrices=1,
                            op_sets=(OPS,) * 3)
  expected = np.where(islands == 0, on_a.mean(axis=1), on_b.mean(axis=1))
  np.testing.assert_allclose(result.fitness, expected, atol=1e-6)
  for island, tasks in enumerate((TASKS_A, TASKS_B)):  # each island's programs on their own
    mine = islands == island
    alone = SearchEvaluator(tasks, memory=Memory(4, 3, 1), op_lists=(OPS,) * 3, widths=SIZES,
                            batch_size=BATCH, keys=jax.random.key(0), fec=fec)
    np.testing.assert_array_equal(result.train_steps[mine],
                                  alone.evaluate([p for p, m in zip(batch, mine) if m]).train_steps)
  if fec:  # lookups only on each program's own tasks
    cache = search.caches[0]
    assert cache.hits + cache.misses == (BATCH // 2) * 3 + (BATCH // 2) * 2


def test_hurdle_tasks_are_the_first_of_each_islands_tasks():
  batch = varied_programs(BATCH)
  islands = np.arange(BATCH) % 2
  per_task = np.concatenate([
      evaluator.evaluate(batch, tasks, num_scalars=4, num_vectors=3, num_matrices=1,
                         op_sets=(OPS,) * 3) for tasks in (TASKS_A, TASKS_B)], axis=1)
  result = mixed_evaluator(hurdle_tasks=1).evaluate(batch, islands,
                                                    hurdles=np.full(BATCH, np.inf))
  first = np.where(islands == 0, per_task[:, 0], per_task[:, 3])
  np.testing.assert_allclose(result.hurdle_fitness, first, atol=1e-6)
  # All stopped: their own other tasks count 0, the other family's are not theirs.
  np.testing.assert_allclose(result.fitness, first / np.where(islands == 0, 3, 2), atol=1e-6)


def test_families_are_dealt_to_the_islands_in_turn_across_experiments():
  assert driver.island_families(2, 4).tolist() == [0, 1, 0, 1]
  assert [driver.island_families(3, 1, e).tolist() for e in (1, 2, 3, 4)] == [[0], [1], [2], [0]]
  assert driver.island_families(2, 3, 2).tolist() == [1, 0, 1]  # the turn goes on
  # Ray workers: worker w's islands follow worker w - 1's.
  assert [driver.island_families(2, 1, 1, (w, 4)).tolist() for w in range(4)] == [[0], [1], [0],
                                                                                  [1]]


FLAGS = (f"--flagfile={ROOT}/experiments/configs/integration_linear.flags",
         "--population_size=40", "--batch_size=20", "--max_train_steps=60000",
         "--random_seed=5", "--fec_cache_size=300", "--fec_forget_every=5",
         "--select_task=linear:features=4,num_tasks=2,num_train_examples=50,num_valid_examples=20",
         "--final_task=linear:features=4,num_tasks=2,num_train_examples=50,num_valid_examples=20")
SEARCH = "linear:features=4,num_tasks=3,num_train_examples=50,num_valid_examples=20"
MIX = f"{SEARCH};affine:features=4,num_tasks=2,num_train_examples=40,num_valid_examples=20"


def config(*args) -> driver.SearchConfig:
  return search_config(*FLAGS, *args)


def test_a_mix_of_one_family_is_the_search_task_alone():
  alone, mixed = [], []
  driver.run(config(f"--search_task={SEARCH}", "--num_islands=2"), write=alone.append)
  driver.run(config(f"--search_task_mix={SEARCH}", "--num_islands=2", "--search_task=zeros"),
             write=mixed.append)
  assert masked(mixed) == masked(alone) and len(alone) > 8


def test_one_island_alternates_the_family_per_experiment():
  lines = []
  driver.run(config(f"--search_task_mix={MIX}", "--max_experiments=3"), write=lines.append)
  families = [line.split(": ")[1].split(":")[0] for line in lines
              if line.startswith("Search task families")]
  assert families == ["linear", "affine", "linear"]


def test_search_task_flags_apply_to_every_family():
  mixed = config(f"--search_task_mix={MIX}", "--num_islands=2", "--search_num_tasks=4")
  assert [spec.num_tasks for spec in mixed.search_task_mix] == [4, 4]
  assert mixed.search_tasks == mixed.search_task_mix[0]


class Checkpoints(driver.RunHooks):
  """Every snapshot the driver offers, encoded at once (the population changes in place)."""

  def __init__(self, config_):
    self.config, self.saved = config_, []

  def boundary(self, evaluations, snapshot, force):
    file = io.BytesIO()
    np.savez(file, **checkpoint.encode(snapshot(), self.config))
    self.saved.append(file.getvalue())


def test_resuming_a_mixed_run_prints_the_same_lines():
  config_ = config(f"--search_task_mix={MIX}", "--num_islands=2", "--migration_every=40",
                   "--migration_size=5", "--hurdle_tasks=1", "--progress_every=80")
  lines, hooks = [], Checkpoints(config_)
  result = driver.run(config_, write=lines.append, hooks=hooks)
  decoded = [checkpoint.decode(dict(np.load(io.BytesIO(saved)))) for saved in hooks.saved]
  middle = [snapshot for snapshot, _ in decoded if snapshot.current is not None
            and snapshot.current.progress is not None]
  snapshot = middle[len(middle) // 2]
  resumed_lines = []
  resumed = driver.run(config_, write=resumed_lines.append, resume=snapshot)
  assert resumed_lines[4] == lines[4] == ("Search task families of the islands: "
                                          f"{MIX.replace('features=4,', '').replace(';', ', ')}")
  tail = masked(resumed_lines[5:])  # after the seed, device, islands, "Resuming", families
  assert len(tail) > 5 and masked(lines)[-len(tail):] == tail
  assert resumed.best_program == result.best_program


@pytest.mark.parametrize("args, message", [
    (("--num_islands=2", "--search_task_mix=linear;affine;zeros"),
     "search_task_mix: 3 families need num_islands >= 3"),
    ((f"--search_task_mix={SEARCH};{SEARCH}", "--num_islands=2"),
     "search_task_mix: a family is given twice"),
    ((f"--search_task_mix={SEARCH};binary_digits", "--num_islands=2"),
     "every family of search_task_mix"),
    ((f"--search_task_mix={MIX}", "--num_islands=2", "--hurdle_tasks=2"),
     "hurdle_tasks must be < the 2 search tasks of each family"),
    (("--search_task_mix=linear;;affine",), "--search_task_mix: expected task specs separated"),
    (("--search_task_mix=linear;cubic",), "--search_task_mix: task spec 'cubic': unknown task"),
])
def test_bad_mixes(args, message):
  with pytest.raises(ValueError, match=message):
    config(*args)


def test_parse_mix():
  assert parse_mix(" linear ; affine:features=2") == (TaskSpec("linear"),
                                                       TaskSpec("affine", features=2))
