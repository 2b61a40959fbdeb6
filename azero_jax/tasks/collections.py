"""Task seeds and the T_search / T_select / final task collections (REFERENCE.md §10.5, §5.3).

Seed lists follow the original's rule: task i uses list[i] while the list lasts, and every later
task uses the previous seed + 1; an empty list means the default list. Randomised seeds come from
NumPy generators seeded with the original's salts and an explicit per-experiment seed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from azero_jax.tasks.binary import complement_pairs

if TYPE_CHECKING:
  from azero_jax.tasks.spec import TaskSpec
  from azero_jax.tasks.task import Task

DEFAULT_PARAM_SEEDS = (1001, 1012, 1010, 1000, 1006, 1008, 1007, 1003)
DEFAULT_DATA_SEEDS = (11001, 11012, 11010, 11000, 11006, 11008, 11007, 11003)
FIRST_PARAM_SEED_FOR_TEST = 9000
FIRST_DATA_SEED_FOR_TEST = 19000
# Final (unseen) tasks use the demo's final seeds, away from the defaults and the test seeds.
FINAL_PARAM_SEEDS = (2000000,)
FINAL_DATA_SEEDS = (1000000,)
PARAM_SEED_SALT = 85652777
DATA_SEED_SALT = 38272328


def fill_seeds(seeds: Sequence[int], num_tasks: int, defaults: Sequence[int]) -> tuple[int, ...]:
  """`num_tasks` seeds: `seeds` (or `defaults` if empty), continued by previous + 1."""
  base = [int(s) for s in (seeds or defaults)]
  out = base[:num_tasks]
  while len(out) < num_tasks:
    out.append(out[-1] + 1)
  return tuple(out)


def task_seeds(param_seeds: Sequence[int], data_seeds: Sequence[int],
               num_tasks: int) -> list[tuple[int, int]]:
  """(param_seed, data_seed) of each task, with the default lists for empty ones."""
  return list(zip(fill_seeds(param_seeds, num_tasks, DEFAULT_PARAM_SEEDS),
                  fill_seeds(data_seeds, num_tasks, DEFAULT_DATA_SEEDS), strict=True))


def random_seeds(num_tasks: int, experiment_seed: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
  """Fresh (param_seeds, data_seeds) for one experiment, uniform in [2, 2**32 - 2]."""
  param_rng = np.random.default_rng([PARAM_SEED_SALT, int(experiment_seed)])
  data_rng = np.random.default_rng([DATA_SEED_SALT, int(experiment_seed)])
  draw = lambda rng: tuple(int(s) for s in rng.integers(2, 2**32 - 1, size=num_tasks))
  return draw(param_rng), draw(data_rng)


def randomize_seeds(spec: TaskSpec, experiment_seed: int) -> TaskSpec:
  """`spec` with `num_tasks` random param and data seeds drawn from `experiment_seed`."""
  param_seeds, data_seeds = random_seeds(spec.num_tasks, experiment_seed)
  return spec.replace(param_seeds=param_seeds, data_seeds=data_seeds)


@dataclasses.dataclass(frozen=True)
class TaskCollections:
  """The task sets of one search: T_search, T_select and the final (unseen) tasks.

  With `randomize`, search and select tasks get fresh seeds per experiment / per selection
  (the original's --randomize_task_seeds); final tasks never do.
  """

  search: TaskSpec
  select: TaskSpec
  final: TaskSpec
  randomize: bool = True

  def search_tasks(self, experiment_seed: int | None = None,
                   spec: TaskSpec | None = None) -> list[Task]:
    """T_search (of `spec`, e.g. a family of a task mix, instead of `search` if given);
    `experiment_seed` is required when seeds are randomised."""
    return _maybe_randomized(spec or self.search, self.randomize, experiment_seed).build()

  def select_tasks(self, selection_seed: int | None = None) -> list[Task]:
    """T_select; `selection_seed` is required when seeds are randomised."""
    return _maybe_randomized(self.select, self.randomize, selection_seed).build()

  def final_tasks(self) -> list[Task]:
    """The final tasks, always from their fixed seeds."""
    return self.final.build()


def _maybe_randomized(spec: TaskSpec, randomize: bool, seed: int | None) -> TaskSpec:
  if not randomize:
    return spec
  if seed is None:
    raise ValueError("randomised task seeds need an explicit seed")
  return randomize_seeds(spec, seed)


def make_collections(search: TaskSpec, *, num_select_tasks: int = 100,
                     num_final_tasks: int = 100, eval_train_examples: int | None = None,
                     randomize: bool = True) -> TaskCollections:
  """T_search = `search`; T_select and final tasks of the same family and shapes.

  Select and final tasks use `eval_train_examples` train examples (None: as the search). Binary
  tasks without a fixed pair draw select and final tasks only from the search's held-out pairs
  (paper S4: 36 pairs for T_search, 9 for T_select). Final tasks use the fixed FINAL_*_SEEDS;
  select tasks use the default seeds unless randomised.
  """
  train = search.num_train_examples if eval_train_examples is None else eval_train_examples
  held_out = search.held_out_pairs
  if search.is_binary and search.positive_class is None:
    held_out = complement_pairs(search.held_out_pairs)
  evaluation = search.replace(num_train_examples=train, held_out_pairs=held_out)
  select = evaluation.replace(num_tasks=num_select_tasks, param_seeds=(), data_seeds=())
  final = evaluation.replace(num_tasks=num_final_tasks, param_seeds=FINAL_PARAM_SEEDS,
                             data_seeds=FINAL_DATA_SEEDS)
  return TaskCollections(search, select, final, randomize)
