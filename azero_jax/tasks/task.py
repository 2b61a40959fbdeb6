"""A task: one dataset with train/valid splits, an evaluation type and an epoch schedule."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

EVAL_TYPES = ("rms", "accuracy")


def epoch_orders(num_examples: int, num_epochs: int, shuffle_seed: int) -> np.ndarray:
  """Visiting order per epoch: epoch 0 is the stored order, epoch k >= 1 reshuffles epoch k-1.

  REFERENCE.md §4.5. We use NumPy's PRNG rather than std::mt19937 + std::shuffle, so the orders
  follow the same rule but not the same permutations as the original.
  """
  rng = np.random.default_rng(shuffle_seed)
  orders = [np.arange(num_examples)]
  for _ in range(1, num_epochs):
    orders.append(orders[-1][rng.permutation(num_examples)])
  return np.stack(orders).astype(np.int32)


@dataclasses.dataclass(frozen=True, eq=False)
class Task:
  """Train and validation examples of one task (features [n, F], labels [n])."""

  x_train: np.ndarray
  y_train: np.ndarray
  x_valid: np.ndarray
  y_valid: np.ndarray
  eval_type: str = "rms"
  orders: np.ndarray | None = None  # [num_epochs, n_train] visiting order; None = one epoch
  name: str = ""

  def __post_init__(self):
    if self.eval_type not in EVAL_TYPES:
      raise ValueError(f"eval_type must be one of {EVAL_TYPES}, got {self.eval_type!r}")
    for split in ("train", "valid"):
      x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
      if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"{split} split: expected features [n, F] and labels [n] with n >= 1, "
                         f"got {x.shape} and {y.shape}")
    if self.x_train.shape[1] != self.x_valid.shape[1]:
      raise ValueError("train and valid features must have the same feature size F")
    if self.orders is None:
      object.__setattr__(self, "orders", epoch_orders(len(self.y_train), 1, 0))

  @classmethod
  def from_arrays(cls, x_train, y_train, x_valid, y_valid, *, eval_type: str = "rms",
                  num_epochs: int = 1, shuffle_seed: int = 0, orders=None,
                  name: str = "") -> Task:
    """Builds a task from arrays; epochs after the first visit the examples reshuffled."""
    x_train = np.asarray(x_train, dtype=np.float64)
    y_train = np.asarray(y_train, dtype=np.float64)
    if num_epochs < 1:
      raise ValueError(f"num_epochs must be >= 1, got {num_epochs}")
    if orders is None:
      orders = epoch_orders(len(y_train), num_epochs, shuffle_seed)
    return cls(x_train, y_train, np.asarray(x_valid, dtype=np.float64),
               np.asarray(y_valid, dtype=np.float64), eval_type,
               np.asarray(orders, dtype=np.int32), name)

  @property
  def features_size(self) -> int:
    return self.x_train.shape[1]

  @property
  def num_epochs(self) -> int:
    return self.orders.shape[0]

  @property
  def num_train_examples(self) -> int:
    return self.x_train.shape[0]

  @property
  def num_valid_examples(self) -> int:
    return self.x_valid.shape[0]

  @property
  def shape_key(self) -> tuple:
    """Tasks with equal keys stack without padding."""
    return (self.features_size, self.num_train_examples, self.num_valid_examples,
            self.num_epochs, self.eval_type)

  @property
  def group_key(self) -> tuple:
    """Tasks with equal keys can share one compiled evaluator call (examples get padded)."""
    return (self.features_size, self.eval_type)


class TaskBatch(NamedTuple):
  """Tasks stacked along a leading task axis, padded to common example and epoch counts."""

  x_train: np.ndarray  # [T, n_train, F]
  y_train: np.ndarray  # [T, n_train]
  x_valid: np.ndarray  # [T, n_valid, F]
  y_valid: np.ndarray  # [T, n_valid]
  orders: np.ndarray  # [T, epochs, n_train]
  num_train: np.ndarray  # [T] unpadded counts
  num_valid: np.ndarray  # [T]
  num_epochs: np.ndarray  # [T]

  @property
  def ragged(self) -> bool:
    """Whether some task is padded (the evaluator then masks the padding)."""
    return bool((self.num_train < self.y_train.shape[1]).any()
                or (self.num_valid < self.y_valid.shape[1]).any()
                or (self.num_epochs < self.orders.shape[1]).any())


def _pad(array: np.ndarray, size: int, axis: int) -> np.ndarray:
  widths = [(0, 0)] * array.ndim
  widths[axis] = (0, size - array.shape[axis])
  return np.pad(array, widths)


def stack_tasks(tasks: Sequence[Task], *, num_train: int | None = None,
                num_valid: int | None = None, num_epochs: int | None = None) -> TaskBatch:
  """Stacks tasks of one feature size and eval type, zero-padding examples and epochs.

  The sizes default to the largest among the tasks; padding is masked by the evaluator.
  """
  keys = {task.group_key for task in tasks}
  if len(keys) != 1:
    raise ValueError(f"tasks of different feature sizes or eval types cannot be stacked: "
                     f"{sorted(keys)}")
  num_train = num_train or max(t.num_train_examples for t in tasks)
  num_valid = num_valid or max(t.num_valid_examples for t in tasks)
  num_epochs = num_epochs or max(t.num_epochs for t in tasks)
  return TaskBatch(
      x_train=np.stack([_pad(t.x_train, num_train, 0) for t in tasks]),
      y_train=np.stack([_pad(t.y_train, num_train, 0) for t in tasks]),
      x_valid=np.stack([_pad(t.x_valid, num_valid, 0) for t in tasks]),
      y_valid=np.stack([_pad(t.y_valid, num_valid, 0) for t in tasks]),
      orders=np.stack([_pad(_pad(t.orders, num_train, 1), num_epochs, 0) for t in tasks]),
      num_train=np.array([t.num_train_examples for t in tasks], np.int32),
      num_valid=np.array([t.num_valid_examples for t in tasks], np.int32),
      num_epochs=np.array([t.num_epochs for t in tasks], np.int32))
