"""Synthetic task families (REFERENCE.md §10.2, §10.4) and their fitness statistics (issue 3)."""

import numpy as np
import pytest

from azero_jax.program import Program
from azero_jax.search.generator import LINEAR
from azero_jax.tasks import synthetic
from azero_jax.tasks.spec import TaskSpec

SEEDS = {"param_seed": 1001, "data_seed": 11001}

LINEAR_PROGRAM = LINEAR.to_text()
NO_OP_PROGRAM = "def Setup():\n  NoOp()\ndef Predict():\n  NoOp()\ndef Learn():\n  NoOp()\n"


def _all_x(task):
  return np.concatenate([task.x_train, task.x_valid])


def _all_y(task):
  return np.concatenate([task.y_train, task.y_valid])


@pytest.mark.parametrize("features", [1, 2, 4, 7])
def test_linear_labels_are_exactly_w_dot_x(features):
  task = synthetic.linear_task(features, 100, 20, **SEEDS)
  w = synthetic.linear_weights(features, SEEDS["param_seed"])
  np.testing.assert_array_equal(_all_y(task), _all_x(task) @ w)
  recovered = np.linalg.lstsq(task.x_train, task.y_train, rcond=None)[0]
  np.testing.assert_allclose(recovered, w, atol=1e-6)
  assert task.eval_type == "rms" and task.y_train.dtype == np.float64


def test_affine_recovers_w_and_b_and_shares_linear_inputs():
  task = synthetic.affine_task(4, 100, 20, **SEEDS)
  w, b = synthetic.affine_parameters(4, SEEDS["param_seed"])
  design = np.hstack([task.x_train, np.ones((100, 1))])
  recovered = np.linalg.lstsq(design, task.y_train, rcond=None)[0]
  np.testing.assert_allclose(recovered, np.append(w, b), atol=1e-6)
  linear = synthetic.linear_task(4, 100, 20, **SEEDS)
  np.testing.assert_array_equal(task.x_train, linear.x_train)
  np.testing.assert_array_equal(w, synthetic.linear_weights(4, SEEDS["param_seed"]))


@pytest.mark.parametrize("features", [3, 4, 8])
def test_teacher_labels_and_zeroed_units(features):
  task = synthetic.nonlinear_task(features, 200, 50, **SEEDS)
  m, u = synthetic.teacher_parameters(features, SEEDS["param_seed"])
  assert not m[[0, 2]].any() and u[0] == 0 and u[2] == 0
  assert np.count_nonzero(m) == (features - 2) * features
  x = _all_x(task)
  np.testing.assert_array_equal(_all_y(task), np.maximum(x @ m.T, 0) @ u)
  assert np.all(x[:, 0] != 0) and task.y_train.any()


def test_teacher_needs_three_features():
  with pytest.raises(ValueError, match="features >= 3.*features=2"):
    synthetic.nonlinear_task(2, 10, 10, **SEEDS)


@pytest.mark.parametrize("make", [synthetic.linear_task, synthetic.affine_task,
                                  synthetic.nonlinear_task])
def test_same_seeds_give_identical_tasks(make):
  a, b = make(4, 50, 10, **SEEDS, num_epochs=3), make(4, 50, 10, **SEEDS, num_epochs=3)
  for field in ("x_train", "y_train", "x_valid", "y_valid", "orders"):
    np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
  other_param = make(4, 50, 10, param_seed=1002, data_seed=11001)
  other_data = make(4, 50, 10, param_seed=1001, data_seed=11002)
  np.testing.assert_array_equal(other_param.x_train, a.x_train)
  assert not np.array_equal(other_param.y_train, a.y_train)
  assert not np.array_equal(other_data.x_train, a.x_train)


def test_train_rows_drawn_before_valid_rows():
  small = synthetic.linear_task(4, 30, 5, **SEEDS)
  large = synthetic.linear_task(4, 30, 50, **SEEDS)
  longer = synthetic.linear_task(4, 35, 5, **SEEDS)
  np.testing.assert_array_equal(small.x_train, large.x_train)
  np.testing.assert_array_equal(small.x_valid, large.x_valid[:5])
  np.testing.assert_array_equal(longer.x_train[:30], small.x_train)


def test_features_are_standard_normal():
  x = synthetic.linear_task(8, 20000, 10, **SEEDS).x_train
  assert abs(x.mean()) < 0.01 and abs(x.std() - 1) < 0.01
  assert np.abs(np.corrcoef(x.T) - np.eye(8)).max() < 0.03


def test_epoch_orders():
  task = synthetic.linear_task(4, 20, 5, **SEEDS, num_epochs=4)
  assert task.orders.shape == (4, 20)
  np.testing.assert_array_equal(task.orders[0], np.arange(20))
  for order in task.orders[1:]:
    np.testing.assert_array_equal(np.sort(order), np.arange(20))
  assert len({tuple(o) for o in task.orders}) == 4
  np.testing.assert_array_equal(
      task.orders, synthetic.fixed_task(task.x_train, task.y_train, task.x_valid, task.y_valid,
                                        num_epochs=4, data_seed=SEEDS["data_seed"]).orders)


def test_unit_test_tasks():
  zeros = synthetic.zeros_task(3, 5, 4)
  ones = synthetic.ones_task(3, 5, 4, eval_type="accuracy")
  assert not zeros.x_train.any() and not zeros.y_valid.any()
  assert (ones.x_valid == 1).all() and (ones.y_train == 1).all() and ones.eval_type == "accuracy"
  inc = synthetic.increment_task(2, 4, 3, increment=0.5)
  np.testing.assert_array_equal(inc.y_train, [0, 0.5, 1, 1.5])
  np.testing.assert_array_equal(inc.x_train, [[0, 0], [0.5, 0.5], [1, 1], [1.5, 1.5]])
  np.testing.assert_array_equal(inc.y_valid, [0, 0.5, 1])
  fixed = synthetic.fixed_task([[1.0, 2.0]], [3.0], [[4.0, 5.0]], [6.0])
  assert fixed.x_train.tolist() == [[1, 2]] and fixed.y_valid.tolist() == [6]


def _mean_fitness(family, program_text, num_tasks):
  interpreter = pytest.importorskip("azero_jax.interpreter")
  program = Program.from_text(program_text)
  tasks = TaskSpec(family, features=4, num_tasks=num_tasks, num_train_examples=1000,
                   num_valid_examples=100).build()
  return np.mean([interpreter.interpret(program, task, num_scalars=5, num_vectors=9,
                                        num_matrices=2) for task in tasks])


# The original's means over 1000 tasks (issue 3); on 100 tasks the standard error of the no-op
# and teacher means is about 0.02, so they get a wider tolerance. BUILD_NOTES.md ("Tasks") has our
# 1000-task figures.
@pytest.mark.parametrize("family, program, expected, tolerance", [
    pytest.param("linear", NO_OP_PROGRAM, 0.34, 0.05, id="no_op-linear"),
    pytest.param("nonlinear", NO_OP_PROGRAM, 0.43, 0.05, id="no_op-teacher"),
    pytest.param("linear", LINEAR_PROGRAM, 0.9999, 0.0005, id="linear_program-linear"),
    pytest.param("nonlinear", LINEAR_PROGRAM, 0.52, 0.05, id="linear_program-teacher"),
])
def test_reference_program_statistics(family, program, expected, tolerance):
  assert _mean_fitness(family, program, 100) == pytest.approx(expected, abs=tolerance)
