"""Synthetic tasks: scalar regression families and the unit-test tasks (REFERENCE.md §10.2, §10.4).

Every random draw comes from `np.random.default_rng((seed + offset) mod 2**32)`, with the original's
per-family seed offsets. The distributions match the original's; the random streams do not.
Labels are computed in float64.
"""

from __future__ import annotations

import numpy as np

from azero_jax.tasks.task import Task

# Seed offsets of the original (task_util.h, task.h), added before truncating to 32 bits.
LINEAR_DATA_OFFSET = 939723201
LINEAR_PARAM_OFFSET = 997958712
TEACHER_DATA_OFFSET = 865546086
TEACHER_PARAM_OFFSET = 174299604
EPOCH_SHUFFLE_OFFSET = 3274582109

# Hidden units of the teacher network that are switched off (rows of M, entries of u).
TEACHER_ZEROED_UNITS = (0, 2)


def _rng(seed: int, offset: int) -> np.random.Generator:
  return np.random.default_rng((int(seed) + offset) % 2**32)


def epoch_shuffle_seed(data_seed: int) -> int:
  """Seed of a task's epoch reshuffling (REFERENCE.md §4.5)."""
  return (int(data_seed) + EPOCH_SHUFFLE_OFFSET) % 2**32


def gaussian_features(features: int, num_train_examples: int, num_valid_examples: int,
                      seed: int) -> tuple[np.ndarray, np.ndarray]:
  """N(0, 1) features from one stream: all train rows first, then all valid rows."""
  rng = np.random.default_rng(seed)
  x_train = rng.standard_normal((num_train_examples, features))
  x_valid = rng.standard_normal((num_valid_examples, features))
  return x_train, x_valid


def linear_weights(features: int, param_seed: int) -> np.ndarray:
  """The weight vector w ~ N(0, I_F) of a linear task."""
  return _rng(param_seed, LINEAR_PARAM_OFFSET).standard_normal(features)


def affine_parameters(features: int, param_seed: int) -> tuple[np.ndarray, float]:
  """(w, b) of an affine task: w is the linear task's w for the same seed, then b ~ N(0, 1)."""
  rng = _rng(param_seed, LINEAR_PARAM_OFFSET)
  w = rng.standard_normal(features)
  return w, float(rng.standard_normal())


def teacher_parameters(features: int, param_seed: int) -> tuple[np.ndarray, np.ndarray]:
  """(M [F, F], u [F]) of the teacher network; rows 0 and 2 of M and u[0], u[2] are zero."""
  if features < 3:
    raise ValueError(f"the teacher network (nonlinear) task needs features >= 3, since it zeroes "
                     f"hidden units {TEACHER_ZEROED_UNITS}; got features={features}")
  rng = _rng(param_seed, TEACHER_PARAM_OFFSET)
  m = rng.standard_normal((features, features))
  u = rng.standard_normal(features)
  m[list(TEACHER_ZEROED_UNITS)] = 0.0
  u[list(TEACHER_ZEROED_UNITS)] = 0.0
  return m, u


def teacher_labels(x: np.ndarray, m: np.ndarray, u: np.ndarray) -> np.ndarray:
  """y = u . relu(M x) for every row x."""
  return np.maximum(x @ m.T, 0.0) @ u


def _regression_task(name: str, x_train, x_valid, label_fn, data_seed: int,
                     num_epochs: int) -> Task:
  return Task.from_arrays(x_train, label_fn(x_train), x_valid, label_fn(x_valid), eval_type="rms",
                          num_epochs=num_epochs, shuffle_seed=epoch_shuffle_seed(data_seed),
                          name=name)


def linear_task(features: int, num_train_examples: int, num_valid_examples: int, *,
                param_seed: int, data_seed: int, num_epochs: int = 1) -> Task:
  """Scalar linear regression: x ~ N(0, I_F), y = w . x (no bias, no noise)."""
  w = linear_weights(features, param_seed)
  x_train, x_valid = gaussian_features(features, num_train_examples, num_valid_examples,
                                       (data_seed + LINEAR_DATA_OFFSET) % 2**32)
  name = f"linear(F={features},param_seed={param_seed},data_seed={data_seed})"
  return _regression_task(name, x_train, x_valid, lambda x: x @ w, data_seed, num_epochs)


def affine_task(features: int, num_train_examples: int, num_valid_examples: int, *,
                param_seed: int, data_seed: int, num_epochs: int = 1) -> Task:
  """Scalar affine regression (paper §4.1): y = w . x + b; same x and w as the linear task."""
  w, b = affine_parameters(features, param_seed)
  x_train, x_valid = gaussian_features(features, num_train_examples, num_valid_examples,
                                       (data_seed + LINEAR_DATA_OFFSET) % 2**32)
  name = f"affine(F={features},param_seed={param_seed},data_seed={data_seed})"
  return _regression_task(name, x_train, x_valid, lambda x: x @ w + b, data_seed, num_epochs)


def nonlinear_task(features: int, num_train_examples: int, num_valid_examples: int, *,
                   param_seed: int, data_seed: int, num_epochs: int = 1) -> Task:
  """Regression on a 2-layer ReLU teacher network: y = u . relu(M x), no biases."""
  m, u = teacher_parameters(features, param_seed)
  x_train, x_valid = gaussian_features(features, num_train_examples, num_valid_examples,
                                       (data_seed + TEACHER_DATA_OFFSET) % 2**32)
  name = f"nonlinear(F={features},param_seed={param_seed},data_seed={data_seed})"
  return _regression_task(name, x_train, x_valid, lambda x: teacher_labels(x, m, u), data_seed,
                          num_epochs)


def fixed_task(x_train, y_train, x_valid, y_valid, *, eval_type: str = "rms", num_epochs: int = 1,
               data_seed: int = 0, name: str = "fixed") -> Task:
  """A task with explicit examples (the original's unit_test_fixed_task)."""
  return Task.from_arrays(x_train, y_train, x_valid, y_valid, eval_type=eval_type,
                          num_epochs=num_epochs, shuffle_seed=epoch_shuffle_seed(data_seed),
                          name=name)


def _constant_task(value: float, name: str, features: int, num_train_examples: int,
                   num_valid_examples: int, eval_type: str, num_epochs: int,
                   data_seed: int) -> Task:
  return fixed_task(np.full((num_train_examples, features), value),
                    np.full(num_train_examples, value),
                    np.full((num_valid_examples, features), value),
                    np.full(num_valid_examples, value),
                    eval_type=eval_type, num_epochs=num_epochs, data_seed=data_seed,
                    name=f"{name}(F={features})")


def zeros_task(features: int, num_train_examples: int, num_valid_examples: int, *,
               eval_type: str = "rms", num_epochs: int = 1, data_seed: int = 0) -> Task:
  """Every feature and label is 0."""
  return _constant_task(0.0, "zeros", features, num_train_examples, num_valid_examples,
                        eval_type, num_epochs, data_seed)


def ones_task(features: int, num_train_examples: int, num_valid_examples: int, *,
              eval_type: str = "rms", num_epochs: int = 1, data_seed: int = 0) -> Task:
  """Every feature and label is 1."""
  return _constant_task(1.0, "ones", features, num_train_examples, num_valid_examples,
                        eval_type, num_epochs, data_seed)


def _ramp(num_examples: int, features: int, increment: float) -> tuple[np.ndarray, np.ndarray]:
  y = np.arange(num_examples, dtype=np.float64) * increment
  return np.repeat(y[:, None], features, axis=1), y


def increment_task(features: int, num_train_examples: int, num_valid_examples: int, *,
                   increment: float = 1.0, eval_type: str = "rms", num_epochs: int = 1,
                   data_seed: int = 0) -> Task:
  """Example k has every feature and its label equal to k * increment; valid restarts at k = 0."""
  x_train, y_train = _ramp(num_train_examples, features, increment)
  x_valid, y_valid = _ramp(num_valid_examples, features, increment)
  return fixed_task(x_train, y_train, x_valid, y_valid, eval_type=eval_type,
                    num_epochs=num_epochs, data_seed=data_seed,
                    name=f"increment(F={features},increment={increment:g})")
