"""Tasks from your own data (the `arrays` task family): an `.npz` file or a CSV file.

An `.npz` file holds x_train [n, D], y_train [n], x_valid [m, D] and y_valid [m], and may hold
x_test [k, D] and y_test [k] (checked, then held out: no task uses them, as with the test split of
the binary tasks' files). A CSV file has a header row naming its columns: the column `label` holds
the labels, every other column is a feature, and a fifth of the rows (VALID_FRACTION) are valid.

Tasks are built as the projected binary tasks are (azero_jax/tasks/binary.py), one data seed per
task: the train and valid examples are pooled and split again with the seed, keeping the file's
sizes; when the data have more than F features they are projected to F with the seed's Gaussian
matrix; every split is standardised with the mean and standard deviation of the task's train
split. A file that is not as described raises DatasetError naming the file and what was expected.
"""

from __future__ import annotations

import csv
import functools
import os
import zipfile

import numpy as np

from azero_jax.tasks import binary
from azero_jax.tasks.datasets import DatasetError
from azero_jax.tasks.synthetic import epoch_shuffle_seed
from azero_jax.tasks.task import Task

SPLITS = ("train", "valid")
_SPLIT_STREAM = 0  # the split's random stream of a seed, as in binary.py
LABEL_COLUMN = "label"
VALID_FRACTION = 0.2  # of a CSV file's rows
NPZ_LAYOUT = "arrays x_train [n, D], y_train [n], x_valid [m, D], y_valid [m] (and optionally " \
             "x_test [k, D], y_test [k])"
CSV_LAYOUT = f"a header row naming the columns, one of them {LABEL_COLUMN!r}, then one example " \
             "per row, every value a number"


def _error(path: str, problem: str) -> DatasetError:
  return DatasetError(f"{path}: {problem}")


def _read_npz(path: str) -> dict[str, np.ndarray]:
  try:
    with np.load(path, allow_pickle=False) as data:
      arrays = {name: data[name] for name in data.files}
  except OSError as error:
    raise _error(path, f"cannot read it ({error.strerror or error})") from None
  except (ValueError, zipfile.BadZipFile):
    raise _error(path, f"not an .npz file of numeric arrays; expected {NPZ_LAYOUT}") from None
  splits = SPLITS + (("test",) if "x_test" in arrays or "y_test" in arrays else ())
  for name in (f"{k}_{split}" for split in splits for k in "xy"):
    if name not in arrays:
      raise _error(path, f"no array {name}; expected {NPZ_LAYOUT}")
  return {f"{k}_{split}": arrays[f"{k}_{split}"] for split in splits for k in "xy"}


def _number(text: str, path: str, row: int, column: str) -> float:
  try:
    return float(text)
  except ValueError:
    raise _error(path, f"line {row}: {text!r} in column {column!r} is not a number; expected "
                 f"{CSV_LAYOUT}") from None


def _read_csv(path: str) -> dict[str, np.ndarray]:
  try:
    with open(path, newline="") as file:
      rows = list(csv.reader(file))
  except OSError as error:
    raise _error(path, f"cannot read it ({error.strerror})") from None
  except (UnicodeDecodeError, csv.Error):
    raise _error(path, f"not a CSV text file; expected {CSV_LAYOUT}") from None
  header = [name.strip() for name in rows[0]] if rows else []
  if LABEL_COLUMN not in header:
    raise _error(path, f"no column {LABEL_COLUMN!r} in the header row; expected {CSV_LAYOUT}")
  values = []
  for line, row in enumerate(rows[1:], start=2):
    if len(row) != len(header):
      raise _error(path, f"line {line}: {len(row)} values, the header names {len(header)}")
    values.append([_number(text, path, line, column) for text, column in zip(row, header)])
  if len(values) < 2:
    raise _error(path, f"{len(values)} rows of data; at least 2 are needed (train and valid)")
  table = np.array(values)
  label = header.index(LABEL_COLUMN)
  x, y = np.delete(table, label, axis=1), table[:, label]
  num_valid = max(1, round(len(y) * VALID_FRACTION))
  return {"x_train": x[num_valid:], "y_train": y[num_valid:], "x_valid": x[:num_valid],
          "y_valid": y[:num_valid]}


def _check_arrays(path: str, arrays: dict[str, np.ndarray]) -> None:
  features = arrays["x_train"].shape[1:]
  for split in [name[2:] for name in arrays if name.startswith("x_")]:
    x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
    if x.ndim != 2 or y.shape != x.shape[:1] or not len(y) or x.shape[1:] != features:
      raise _error(path, f"x_{split} has shape {x.shape} and y_{split} {y.shape}; expected "
                   f"x_{split} [n, D] and y_{split} [n] with n >= 1 and D (features) the same in "
                   f"every split, D >= 1")
    for name, array in ((f"x_{split}", x), (f"y_{split}", y)):
      if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise _error(path, f"{name} holds {array.dtype} values; expected numbers")
      if not np.isfinite(array.astype(np.float64)).all():
        raise _error(path, f"{name} holds NaN or infinite values; expected finite numbers")
  if not features or not features[0]:
    raise _error(path, f"the examples have no features; expected {NPZ_LAYOUT}")


@functools.lru_cache(maxsize=4)
def _read(path: str, _version: tuple[str, int, int]) -> dict[str, np.ndarray]:
  reader = {".npz": _read_npz, ".csv": _read_csv}.get(os.path.splitext(path)[1].lower())
  if reader is None:
    raise _error(path, "expected a .npz file (arrays x_train, y_train, x_valid, y_valid) or a "
                 ".csv file (a header row with a 'label' column)")
  arrays = reader(path)
  _check_arrays(path, arrays)
  return {name: array.astype(np.float64) for name, array in arrays.items()}


def read_arrays(path: str) -> dict[str, np.ndarray]:
  """The checked splits of a data file, float64 (read once per file version)."""
  try:
    stat = os.stat(path)
  except OSError as error:
    raise _error(path, f"cannot read it ({error.strerror})") from None
  return _read(path, (os.path.realpath(path), stat.st_mtime_ns, stat.st_size))


def check_file(path: str, features: int, eval_type: str) -> dict[str, np.ndarray]:
  """The file's splits, checked against the task settings: labels 0 or 1 for accuracy, and at
  least `features` features (more are projected). Raises DatasetError naming the file."""
  arrays = read_arrays(path)
  available = arrays["x_train"].shape[1]
  if features > available:
    raise _error(path, f"the examples have {available} features and the task asks for "
                 f"features={features}; expected features <= {available}")
  if eval_type == "accuracy":
    for name in (n for n in arrays if n.startswith("y_")):
      wrong = arrays[name][(arrays[name] != 0) & (arrays[name] != 1)]
      if wrong.size:
        raise _error(path, f"{name} holds the label {wrong[0]:g}; eval_type=accuracy expects "
                     "labels 0 and 1")
  return arrays


def _take(x: np.ndarray, y: np.ndarray, count: int | None, split: str, path: str):
  if count is None:
    return x, y
  if count > len(y):
    raise _error(path, f"{count} {split} examples requested (num_{split}_examples) but the file "
                 f"gives {len(y)}")
  return x[:count], y[:count]


def arrays_task(path: str, features: int, num_train_examples: int | None = None,
                num_valid_examples: int | None = None, *, data_seed: int,
                eval_type: str = "rms", num_epochs: int = 1) -> Task:
  """The task of one data seed from the file at `path` (see the module docstring); the first
  `num_train_examples` / `num_valid_examples` of its splits (None: all)."""
  arrays = check_file(path, features, eval_type)
  x = np.concatenate([arrays["x_train"], arrays["x_valid"]])
  y = np.concatenate([arrays["y_train"], arrays["y_valid"]])
  num_train = len(arrays["y_train"])
  order = np.random.default_rng([int(data_seed), _SPLIT_STREAM]).permutation(len(y))
  train, valid = order[:num_train], order[num_train:]
  if x.shape[1] > features:
    x = x @ binary.projection_matrix(x.shape[1], features, data_seed)
  x_train, x_valid = binary.standardize(x[train], x[valid])
  x_train, y_train = _take(x_train, y[train], num_train_examples, "train", path)
  x_valid, y_valid = _take(x_valid, y[valid], num_valid_examples, "valid", path)
  name = f"arrays({os.path.basename(path)},F={features},data_seed={data_seed})"
  return Task.from_arrays(x_train, y_train, x_valid, y_valid, eval_type=eval_type,
                          num_epochs=num_epochs, shuffle_seed=epoch_shuffle_seed(data_seed),
                          name=name)
