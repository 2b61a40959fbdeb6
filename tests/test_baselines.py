"""Optax baselines: logistic regression and a 2-layer ReLU network on projected digits pairs."""

import jax
import numpy as np
import pytest

from azero_jax.analysis import baselines
from azero_jax.tasks.spec import TaskSpec


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
  pytest.importorskip("sklearn")
  cache = str(tmp_path_factory.mktemp("cache"))
  tuning = TaskSpec("binary_digits", features=16, num_tasks=8, cache_dir=cache).build()
  final = TaskSpec("binary_digits", features=16, num_tasks=16, cache_dir=cache,
                   held_out_pairs=TaskSpec.parse("binary_digits:held_out_pairs="
                                                 "all_but_recommended").held_out_pairs,
                   param_seeds=(2000000,), data_seeds=(1000000,)).build()
  return tuning, final


def best(results: dict, model: str) -> dict:
  return max((m for m in results["models"] if m["model"] == model), key=lambda m: m["fitness"])


def test_digits_pairs_logistic_and_network(digits):
  tuning, final = digits
  results = baselines.run_baselines(final, tuning, tuned_on="T_select")
  logistic = best(results, "logistic regression")
  network = best(results, "2-layer ReLU network")
  assert logistic["fitness"] > 0.85 and network["fitness"] > 0.85  # chance is 0.5
  noise = 2 * np.hypot(logistic["fitness_sem"], network["fitness_sem"])
  assert network["fitness"] >= logistic["fitness"] - noise
  assert results["hidden"] == 16 and len(results["models"]) == 4
  for entry in results["models"]:
    assert str(entry["learning_rate"]) in entry["sweep"]
    assert entry["tuning_fitness"] == max(entry["sweep"].values())


def test_linear_regression_solves_linear_tasks():
  tasks = TaskSpec("linear", features=4, num_tasks=4, num_train_examples=200,
                   num_valid_examples=50).build()
  table = baselines.fitness_table("linear", "adam", tasks, (0.03,), jax.random.key(0),
                                  epochs=20, batch_size=8, hidden=4)
  assert table.shape == (1, 4) and table.min() > 0.99


def test_diverging_training_scores_zero():
  tasks = TaskSpec("linear", features=4, num_tasks=2, num_train_examples=64,
                   num_valid_examples=8).build()
  table = baselines.fitness_table("linear", "sgd", tasks, (1e4,), jax.random.key(0), epochs=5,
                                  batch_size=8, hidden=4)
  assert np.array_equal(table, np.zeros((1, 2)))


def test_mixed_shapes_are_refused():
  tasks = [TaskSpec("linear", num_train_examples=n, num_valid_examples=4).build()[0]
           for n in (8, 16)]
  with pytest.raises(ValueError, match="share their shapes"):
    baselines.stack(tasks)
