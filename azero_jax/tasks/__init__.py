"""Tasks: datasets with train/valid splits, synthetic families and projected binary datasets."""

from azero_jax.tasks.binary import RECOMMENDED_HELD_OUT_PAIRS, binary_task
from azero_jax.tasks.collections import TaskCollections, make_collections, randomize_seeds
from azero_jax.tasks.spec import FAMILIES, TaskSpec, define_task_flags, spec_from_flags
from azero_jax.tasks.synthetic import (
  affine_task,
  fixed_task,
  increment_task,
  linear_task,
  nonlinear_task,
  ones_task,
  zeros_task,
)
from azero_jax.tasks.task import Task, TaskBatch, stack_tasks

__all__ = ["FAMILIES", "RECOMMENDED_HELD_OUT_PAIRS", "Task", "TaskBatch", "TaskCollections",
           "TaskSpec", "affine_task", "binary_task", "define_task_flags", "fixed_task",
           "increment_task", "linear_task", "make_collections", "nonlinear_task", "ones_task",
           "randomize_seeds", "spec_from_flags", "stack_tasks", "zeros_task"]
