"""The `arrays` task family (azero_jax/tasks/arrays.py): your own data from an .npz or CSV file."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from azero_jax.tasks import binary
from azero_jax.tasks.datasets import DatasetError
from azero_jax.tasks.spec import TaskSpec

ROOT = Path(__file__).resolve().parent.parent
NUM_TRAIN, NUM_VALID, D = 40, 10, 6


def raw_data(seed=0):
  """Features [50, D] whose label is the row's number, so a task's rows can be traced back."""
  x = np.random.default_rng(seed).normal(size=(NUM_TRAIN + NUM_VALID, D))
  return x, np.arange(len(x), dtype=np.float64)


def write_npz(path, x, y, **extra):
  np.savez(path, x_train=x[:NUM_TRAIN], y_train=y[:NUM_TRAIN], x_valid=x[NUM_TRAIN:],
           y_valid=y[NUM_TRAIN:], **extra)
  return path


def expected_features(x, rows_train, rows_valid, features, seed):
  """The binary tasks' recipe: project with the seed's matrix when D > F, then standardise with
  the train split's statistics."""
  if x.shape[1] > features:
    x = x @ binary.projection_matrix(x.shape[1], features, seed)
  return binary.standardize(x[rows_train], x[rows_valid])


@pytest.mark.parametrize("features", [D, 3])
def test_tasks_resplit_project_and_standardise_the_file(tmp_path, features):
  x, y = raw_data()
  path = write_npz(tmp_path / "data.npz", x, y)
  spec = TaskSpec.parse(f"arrays:path={path},features={features},num_tasks=3,data_seeds=5")
  spec.check_data()
  tasks = spec.build()
  train_sets = []
  for task, seed in zip(tasks, (5, 6, 7)):
    rows_train, rows_valid = task.y_train.astype(int), task.y_valid.astype(int)
    assert len(rows_train) == NUM_TRAIN and len(rows_valid) == NUM_VALID  # the file's sizes
    assert sorted([*rows_train, *rows_valid]) == list(range(NUM_TRAIN + NUM_VALID))  # one pool
    want_train, want_valid = expected_features(x, rows_train, rows_valid, features, seed)
    np.testing.assert_allclose(task.x_train, want_train, atol=1e-12)
    np.testing.assert_allclose(task.x_valid, want_valid, atol=1e-12)
    assert task.eval_type == "rms" and task.features_size == features
    train_sets.append(frozenset(rows_train))
  assert len(set(train_sets)) == 3  # one split per seed
  again = spec.build()[0]
  assert np.array_equal(again.x_train, tasks[0].x_train)
  assert np.array_equal(again.y_valid, tasks[0].y_valid)


def test_a_csv_file_with_a_label_column(tmp_path):
  x, y = raw_data()
  table = np.column_stack([x[:, :2], y, x[:, 2:]])  # the label column in the middle
  header = "f0,f1,label," + ",".join(f"f{i}" for i in range(2, D))
  path = tmp_path / "data.csv"
  np.savetxt(path, table, delimiter=",", header=header, comments="", fmt="%.17g")
  (task,) = TaskSpec.parse(f"arrays:path={path},features={D},data_seeds=3").build()
  rows_train, rows_valid = task.y_train.astype(int), task.y_valid.astype(int)
  assert len(rows_valid) == 10  # a fifth of the rows
  assert sorted([*rows_train, *rows_valid]) == list(range(len(y)))
  want_train, _ = expected_features(x, rows_train, rows_valid, D, 3)
  np.testing.assert_allclose(task.x_train, want_train, atol=1e-12)


def test_example_counts_take_the_first_rows_of_each_split(tmp_path):
  x, y = raw_data()
  path = write_npz(tmp_path / "data.npz", x, y)
  whole = TaskSpec.parse(f"arrays:path={path}").build()[0]
  part = TaskSpec.parse(f"arrays:path={path},num_train_examples=7,num_valid_examples=3").build()[0]
  assert np.array_equal(part.y_train, whole.y_train[:7])
  assert np.array_equal(part.x_valid, whole.x_valid[:3])
  with pytest.raises(DatasetError, match="41 train examples requested .* the file gives 40"):
    TaskSpec.parse(f"arrays:path={path},num_train_examples=41").build()


def bad_files(folder: Path) -> dict[str, Path]:
  """One malformed data file per mistake."""
  x, y = raw_data()
  labels = (y % 2).astype(np.float64)
  files = {
      "missing_array": folder / "missing.npz",
      "wrong_features": folder / "features.npz",
      "wrong_length": folder / "length.npz",
      "nan": folder / "nan.npz",
      "labels_not_binary": write_npz(folder / "labels.npz", x, y),
      "test_without_labels": write_npz(folder / "test.npz", x, labels, x_test=x[:5]),
      "text_array": folder / "text.npz",
      "not_npz": folder / "broken.npz",
      "csv_without_label": folder / "nolabel.csv",
      "csv_not_a_number": folder / "word.csv",
      "unknown_suffix": folder / "data.txt",
  }
  np.savez(files["missing_array"], x_train=x, y_train=labels, x_valid=x)
  np.savez(files["wrong_features"], x_train=x, y_train=labels, x_valid=x[:, :3], y_valid=labels)
  np.savez(files["wrong_length"], x_train=x, y_train=labels[:-1], x_valid=x, y_valid=labels)
  with_nan = x.copy()
  with_nan[3, 2] = np.nan
  write_npz(files["nan"], with_nan, labels)
  np.savez(files["text_array"], x_train=x.astype(str), y_train=labels, x_valid=x, y_valid=labels)
  files["not_npz"].write_bytes(b"not a zip file")
  files["csv_without_label"].write_text("a,b\n1,2\n3,4\n")
  files["csv_not_a_number"].write_text("a,label\n1,0\nseven,1\n")
  files["unknown_suffix"].write_text("1,2\n")
  return files


BAD_FILES = [  # what the error says after "<file>: "
    ("missing_array", "no array y_valid; expected arrays x_train [n, D], y_train [n], x_valid "
                      "[m, D], y_valid [m] (and optionally x_test [k, D], y_test [k])"),
    ("wrong_features", "x_valid has shape (50, 3) and y_valid (50,); expected x_valid [n, D] and "
                       "y_valid [n] with n >= 1 and D (features) the same in every split"),
    ("wrong_length", "x_train has shape (50, 6) and y_train (49,); expected"),
    ("nan", "x_train holds NaN or infinite values; expected finite numbers"),
    ("labels_not_binary", "y_train holds the label 2; eval_type=accuracy expects labels 0 and 1"),
    ("test_without_labels", "no array y_test; expected arrays"),
    ("text_array", "x_train holds <U"),
    ("not_npz", "not an .npz file of numeric arrays; expected arrays x_train"),
    ("csv_without_label", "no column 'label' in the header row; expected a header row naming"),
    ("csv_not_a_number", "line 3: 'seven' in column 'a' is not a number"),
    ("unknown_suffix", "expected a .npz file (arrays x_train, y_train, x_valid, y_valid) or a"),
]


@pytest.mark.parametrize("name, message", BAD_FILES, ids=[name for name, _ in BAD_FILES])
def test_a_bad_file_is_one_error_naming_it(tmp_path, name, message):
  path = bad_files(tmp_path)[name]
  spec = TaskSpec.parse(f"arrays:path={path},eval_type=accuracy,features=3")
  with pytest.raises(DatasetError, match=re.escape(f"{path}: {message}")):
    spec.check_data()


def test_missing_file_and_too_many_features(tmp_path):
  with pytest.raises(DatasetError, match=f"^{tmp_path}/none.npz: cannot read it"):
    TaskSpec.parse(f"arrays:path={tmp_path}/none.npz").check_data()
  x, y = raw_data()
  path = write_npz(tmp_path / "data.npz", x, y)
  with pytest.raises(DatasetError, match="the examples have 6 features and the task asks for "
                     "features=8; expected features <= 6"):
    TaskSpec.parse(f"arrays:path={path},features=8").check_data()


def test_a_search_on_your_own_data_from_a_flag_file(tmp_path):
  x = np.random.default_rng(1).normal(size=(120, 10))
  labels = (x[:, 0] + x[:, 1] > 0).astype(np.float64)
  np.savez(tmp_path / "data.npz", x_train=x[:100], y_train=labels[:100], x_valid=x[100:],
           y_valid=labels[100:])
  spec = "arrays:path=data.npz,eval_type=accuracy,features=4"
  (tmp_path / "mine.flags").write_text("\n".join([
      f"--flagfile={ROOT}/experiments/configs/baseline.flags",
      f"--search_task={spec},num_tasks=2", f"--select_task={spec},num_tasks=2",
      f"--final_task={spec},num_tasks=3,data_seeds=1000000",
      "--population_size=20", "--batch_size=10", "--max_train_steps=60000",
      "--progress_every=100"]) + "\n")
  done = subprocess.run([sys.executable, "-m", "experiments.run_search", "--flagfile=mine.flags",
                         "--run_dir=run"], cwd=tmp_path, capture_output=True, text=True,
                        timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
  assert done.returncode == 0, done.stderr
  result = json.loads((tmp_path / "run" / "result.json").read_text())
  assert result["experiments"][0]["individuals"] >= 200
  assert 0 <= result["final_fitness"] <= 1
  assert "indivs=" in done.stdout
