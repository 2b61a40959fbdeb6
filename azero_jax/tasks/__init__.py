"""Tasks: datasets with train/valid splits, synthetic families and projected binary datasets."""

from azero_jax.tasks.task import Task, TaskBatch, stack_tasks

__all__ = ["Task", "TaskBatch", "stack_tasks"]
