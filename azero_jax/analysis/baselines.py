"""Hand-designed baselines trained with optax on the tasks the evolved programs are scored on.

Binary (accuracy) tasks get logistic regression and a 2-layer ReLU network with hidden size F;
regression (rms) tasks get linear regression and the same network. Each model is trained with
mini-batch SGD and with Adam, for every learning rate of a small sweep; the learning rate with the
best mean validation fitness on the *tuning* tasks is then scored on the final tasks. Scores use
the evaluator's fitness on the validation split (accuracy, or 1 - (2/pi) atan(RMSE)), so they sit
on the same scale as an evolved program's fitness. Everything is vmapped over tasks and learning
rates and compiled once per (model, optimizer, task shape).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from azero_jax.executables import DiskJit
from azero_jax.tasks.task import Task

OPTIMIZERS = {"sgd": optax.sgd, "adam": optax.adam}
LEARNING_RATES = {"sgd": (0.01, 0.03, 0.1, 0.3, 1.0), "adam": (0.001, 0.003, 0.01, 0.03, 0.1)}
MODELS = {"accuracy": ("logistic", "mlp"), "rms": ("linear", "mlp")}
MODEL_NAMES = {"logistic": "logistic regression", "linear": "linear regression",
               "mlp": "2-layer ReLU network"}


def init_params(model: str, features: int, hidden: int, key) -> dict:
  """Zero weights for the linear models; He-scaled first layer for the network."""
  if model in ("logistic", "linear"):
    return {"w": jnp.zeros(features), "b": jnp.zeros(())}
  first, second = jax.random.split(key)
  return {"w1": jax.random.normal(first, (features, hidden)) * jnp.sqrt(2.0 / features),
          "b1": jnp.zeros(hidden),
          "w2": jax.random.normal(second, (hidden,)) / jnp.sqrt(hidden),
          "b2": jnp.zeros(())}


def predict(model: str, params: dict, x: jax.Array) -> jax.Array:
  """Logits (binary) or values (regression) for features [n, F]."""
  if model in ("logistic", "linear"):
    return x @ params["w"] + params["b"]
  return jax.nn.relu(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


def loss(model: str, eval_type: str, params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
  """Binary cross-entropy on logits, or mean squared error."""
  output = predict(model, params, x)
  if eval_type == "accuracy":
    return optax.sigmoid_binary_cross_entropy(output, y).mean()
  return jnp.mean((output - y) ** 2)


def score(model: str, eval_type: str, params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
  """The evaluator's fitness: accuracy, or 1 - (2/pi) atan(RMSE) in [0, 1]; 0 when not finite."""
  output = predict(model, params, x)
  if eval_type == "accuracy":
    fitness = jnp.mean((output > 0) == (y > 0.5))
  else:
    fitness = 1.0 - (2.0 / jnp.pi) * jnp.arctan(jnp.sqrt(jnp.mean((output - y) ** 2)))
  return jnp.where(jnp.isfinite(fitness), jnp.clip(fitness, 0.0, 1.0), 0.0)


def train_and_score(model: str, eval_type: str, optimizer: str, epochs: int, batch_size: int,
                    hidden: int, learning_rate, key, x_train, y_train, x_valid, y_valid):
  """Trains one model on one task (shuffled mini-batches) and scores it on the valid split."""
  count = x_train.shape[0]
  batch = min(batch_size, count)
  steps = count // batch
  init_key, order_key = jax.random.split(key)
  params = init_params(model, x_train.shape[1], hidden, init_key)
  transform = OPTIMIZERS[optimizer](learning_rate)
  gradient = jax.grad(functools.partial(loss, model, eval_type))

  def step(carry, rows):
    params, state = carry
    updates, state = transform.update(gradient(params, x_train[rows], y_train[rows]), state,
                                      params)
    return (optax.apply_updates(params, updates), state), None

  def epoch(carry, epoch_key):
    rows = jax.random.permutation(epoch_key, count)[:steps * batch].reshape(steps, batch)
    return jax.lax.scan(step, carry, rows)[0], None

  carry = (params, transform.init(params))
  (params, _), _ = jax.lax.scan(epoch, carry, jax.random.split(order_key, epochs))
  return score(model, eval_type, params, x_valid, y_valid)


@functools.partial(DiskJit, static_argnums=(0, 1, 2, 3, 4, 5))
def sweep(model, eval_type, optimizer, epochs, batch_size, hidden, learning_rates, keys,
          x_train, y_train, x_valid, y_valid):
  """Fitness [learning rates, tasks] for stacked tasks [T, n, F]."""
  run = functools.partial(train_and_score, model, eval_type, optimizer, epochs, batch_size,
                          hidden)
  over_tasks = jax.vmap(run, in_axes=(None, 0, 0, 0, 0, 0))
  return jax.vmap(over_tasks, in_axes=(0, None, None, None, None, None))(
      learning_rates, keys, x_train, y_train, x_valid, y_valid)


def stack(tasks: Sequence[Task]) -> tuple[jax.Array, ...]:
  """Train and valid arrays stacked over tasks (float32); tasks must share their shapes."""
  shapes = {(t.x_train.shape, t.x_valid.shape) for t in tasks}
  if len(shapes) != 1:
    raise ValueError(f"baseline tasks must share their shapes, got {sorted(shapes)}")
  return tuple(jnp.asarray(np.stack([getattr(t, name) for t in tasks]), dtype=jnp.float32)
               for name in ("x_train", "y_train", "x_valid", "y_valid"))


def fitness_table(model: str, optimizer: str, tasks: Sequence[Task], learning_rates,
                  key, *, epochs: int, batch_size: int, hidden: int) -> np.ndarray:
  """Fitness [learning rates, tasks] of one model and optimizer."""
  eval_types = {t.eval_type for t in tasks}
  if len(eval_types) != 1:
    raise ValueError(f"baseline tasks must share one eval type, got {sorted(eval_types)}")
  keys = jax.random.split(key, len(tasks))
  return np.asarray(sweep(model, eval_types.pop(), optimizer, epochs, batch_size, hidden,
                          jnp.asarray(learning_rates, dtype=jnp.float32), keys, *stack(tasks)))


def tuning_and_final(model: str, optimizer: str, tuning_tasks: Sequence[Task],
                     final_tasks: Sequence[Task], learning_rates, key, **options):
  """Fitness [learning rates, tasks] on the tuning and on the final tasks; one compiled call
  when both share their shapes."""
  shape = lambda t: (t.x_train.shape, t.x_valid.shape)
  if {shape(t) for t in tuning_tasks} == {shape(t) for t in final_tasks}:
    both = fitness_table(model, optimizer, [*tuning_tasks, *final_tasks], learning_rates, key,
                         **options)
    return both[:, :len(tuning_tasks)], both[:, len(tuning_tasks):]
  return tuple(fitness_table(model, optimizer, tasks, learning_rates, key, **options)
               for tasks in (tuning_tasks, final_tasks))


def run_baselines(final_tasks: Sequence[Task], tuning_tasks: Sequence[Task], *,
                  tuned_on: str = "the tuning tasks", epochs: int = 10, batch_size: int = 16,
                  hidden: int | None = None, seed: int = 0) -> dict:
  """Every model and optimizer: the learning rate best on `tuning_tasks`, scored on
  `final_tasks` (mean and standard error over tasks). `hidden` None means F."""
  eval_type = final_tasks[0].eval_type
  hidden = hidden or final_tasks[0].features_size
  key = jax.random.key(seed)
  options = {"epochs": epochs, "batch_size": batch_size, "hidden": hidden}
  models = []
  for model in MODELS[eval_type]:
    for optimizer, rates in LEARNING_RATES.items():
      tuning, final = tuning_and_final(model, optimizer, tuning_tasks, final_tasks, rates, key,
                                       **options)
      best = int(np.argmax(tuning.mean(axis=1)))
      models.append({"model": MODEL_NAMES[model], "optimizer": optimizer,
                     "learning_rate": rates[best], "tuning_fitness": float(tuning[best].mean()),
                     "sweep": dict(zip(map(str, rates), map(float, tuning.mean(axis=1)))),
                     "fitness": float(final[best].mean()),
                     "fitness_sem": float(final[best].std(ddof=1) / math.sqrt(final.shape[1]))
                     if final.shape[1] > 1 else 0.0})
  return {"tuned_on": tuned_on, "eval_type": eval_type, "num_final_tasks": len(final_tasks),
          **options, "models": models}
