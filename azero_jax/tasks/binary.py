"""Projected binary classification tasks (REFERENCE.md §10.3).

For a class pair (positive, negative) and a file seed: take the first `per_class` images of each of
the two classes, label positive 1 and negative 0, split each class into train / valid / test
(stratified, so every split is exactly balanced), project the flattened pixels with a seeded
Gaussian matrix R [D, F], and standardise every split with the mean and standard deviation of the
projected train split. The result is cached as `.npz` and reused.

The original's files hold 8000 / 1000 / 1000 examples (5000 per class); CIFAR-10 and MNIST give the
same here. The bundled digits have only ~180 images per class, so they use every image of the
smallest class and 15 % of them for each of valid and test.
"""

from __future__ import annotations

import functools
import hashlib
import os
import zipfile

import numpy as np

from azero_jax import files
from azero_jax.tasks import datasets
from azero_jax.tasks.synthetic import epoch_shuffle_seed
from azero_jax.tasks.task import Task

NUM_CLASSES = 10
ALL_PAIRS = tuple((i, j) for i in range(NUM_CLASSES) for j in range(i + 1, NUM_CLASSES))
# The 9 held-out pairs recommended by the original (task.proto) and used by run_baseline.sh.
RECOMMENDED_HELD_OUT_PAIRS = ((0, 5), (0, 9), (1, 8), (2, 9), (3, 5), (3, 6), (3, 8), (4, 6),
                              (8, 9))
PAIR_SEED_SALT = 856572777  # the original seeds its pair choice with HashMix(856572777, data_seed)
DEFAULT_MIN_DATA_SEED = 0
DEFAULT_MAX_DATA_SEED = 100  # projections per pair, as generate_datasets.py and the paper

# Per dataset: at most this many images per class, and the fraction of them for valid and for test.
MAX_PER_CLASS = {"cifar10": 5000, "mnist": 5000, "digits": None}
HOLDOUT_FRACTION = {"cifar10": 0.1, "mnist": 0.1, "digits": 0.15}
CACHE_FORMAT_VERSION = 1
CACHE_ENV_VAR = "AZERO_JAX_CACHE_DIR"
_SPLIT_STREAM, _PROJECTION_STREAM = 0, 1
_ARRAYS = tuple(f"{k}_{split}" for split in ("train", "valid", "test") for k in "xyi")


def normalize_pairs(pairs) -> tuple[tuple[int, int], ...]:
  """Pairs as sorted (i, j) tuples with 0 <= i < j <= 9, in lexicographic order, no duplicates."""
  out = set()
  for pair in pairs:
    i, j = (int(c) for c in pair)
    if i == j or not (0 <= i < NUM_CLASSES and 0 <= j < NUM_CLASSES):
      raise ValueError(f"a class pair needs two different classes in 0..9, got {tuple(pair)}")
    out.add((min(i, j), max(i, j)))
  return tuple(sorted(out))


def complement_pairs(pairs) -> tuple[tuple[int, int], ...]:
  """All 45 pairs except `pairs` (held-out pairs that leave only `pairs` to draw from)."""
  excluded = set(normalize_pairs(pairs))
  return tuple(p for p in ALL_PAIRS if p not in excluded)


def file_seed(data_seed: int, min_data_seed: int = DEFAULT_MIN_DATA_SEED,
              max_data_seed: int = DEFAULT_MAX_DATA_SEED) -> int:
  """File seed of a task whose class pair is given: min + data_seed mod (max - min)."""
  return min_data_seed + int(data_seed) % (max_data_seed - min_data_seed)


def select_pair(data_seed: int, held_out_pairs=RECOMMENDED_HELD_OUT_PAIRS, *,
                min_data_seed: int = DEFAULT_MIN_DATA_SEED,
                max_data_seed: int = DEFAULT_MAX_DATA_SEED) -> tuple[int, int, int]:
  """(positive, negative, file seed) for a task whose pair is not given.

  The pair is uniform over the pairs (i < j, positive i) that are not held out; then the file seed
  is uniform in [min_data_seed, max_data_seed).
  """
  allowed = complement_pairs(held_out_pairs)
  if not allowed:
    raise ValueError("every class pair is held out: no pair left to draw tasks from")
  rng = np.random.default_rng([PAIR_SEED_SALT, int(data_seed)])
  positive, negative = allowed[rng.integers(len(allowed))]
  return positive, negative, int(rng.integers(min_data_seed, max_data_seed))


def split_sizes(dataset: str, labels: np.ndarray) -> tuple[int, int, int]:
  """(per_class, valid_per_class, test_per_class) for a dataset with these class labels.

  per_class is the same for every pair, so all tasks of a dataset have the same shapes.
  """
  counts = np.bincount(labels, minlength=NUM_CLASSES)
  per_class = int(counts[counts > 0].min())
  if MAX_PER_CLASS[dataset] is not None:
    per_class = min(per_class, MAX_PER_CLASS[dataset])
  held = max(1, round(per_class * HOLDOUT_FRACTION[dataset]))
  if per_class - 2 * held < 1:
    raise ValueError(f"{dataset}: {per_class} images per class are too few for train, valid and "
                     f"test splits")
  return per_class, held, held


def stratified_split(labels: np.ndarray, valid_per_class: int, test_per_class: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Row indices of (train, valid, test): every class contributes the same counts to valid and to
  test and the rest to train; rows within each split are shuffled."""
  splits = ([], [], [])
  for c in np.unique(labels):
    rows = rng.permutation(np.flatnonzero(labels == c))
    valid_end = test_per_class + valid_per_class
    splits[0].append(rows[valid_end:])
    splits[1].append(rows[test_per_class:valid_end])
    splits[2].append(rows[:test_per_class])
  return tuple(rng.permutation(np.concatenate(s)) for s in splits)


def projection_matrix(input_size: int, features: int, seed: int) -> np.ndarray:
  """The seeded Gaussian projection R [input_size, features] (shared by all pairs of a seed)."""
  return np.random.default_rng([int(seed), _PROJECTION_STREAM]).standard_normal(
      (input_size, features))


def standardize(x_train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
  """Scales every array with the mean and std of `x_train` (a zero std counts as 1)."""
  mean = x_train.mean(axis=0)
  scale = x_train.std(axis=0)
  scale[scale == 0] = 1.0
  return [(x - mean) / scale for x in (x_train, *others)]


def make_binary_dataset(images: np.ndarray, labels: np.ndarray, positive: int, negative: int,
                        features: int, seed: int, *, per_class: int, valid_per_class: int,
                        test_per_class: int) -> dict[str, np.ndarray]:
  """The splits of one (pair, seed): projected, standardised features `x_*` (float32), labels
  `y_*` (1 for the positive class) and the rows `i_*` of `images` they come from."""
  rows = []
  for c in (positive, negative):
    found = np.flatnonzero(labels == c)[:per_class]
    if len(found) < per_class:
      raise ValueError(f"class {c} has {len(found)} images, {per_class} are needed")
    rows.append(found)
  rows = np.concatenate(rows)
  y = (labels[rows] == positive).astype(np.float32)
  split_rng = np.random.default_rng([int(seed), _SPLIT_STREAM])
  splits = stratified_split(y, valid_per_class, test_per_class, split_rng)
  r = projection_matrix(images.shape[1], features, seed)
  projected = [images[rows[s]].astype(np.float64) @ r for s in splits]
  xs = standardize(*projected)
  out = {}
  for name, x, s in zip(("train", "valid", "test"), xs, splits, strict=True):
    out[f"x_{name}"] = x.astype(np.float32)
    out[f"y_{name}"] = y[s]
    out[f"i_{name}"] = rows[s]
  return out


def default_cache_dir() -> str:
  """$AZERO_JAX_CACHE_DIR, else ~/.cache/azero_jax."""
  return os.environ.get(CACHE_ENV_VAR) or os.path.join(os.path.expanduser("~"), ".cache",
                                                       "azero_jax")


def _source_fingerprint(dataset: str, dataset_dir) -> str:
  """Identifies the source data: its files' real paths, sizes and times, or sklearn's version."""
  parts = [dataset, str(CACHE_FORMAT_VERSION), repr(MAX_PER_CLASS[dataset]),
           repr(HOLDOUT_FRACTION[dataset])]
  sources = datasets.source_files(dataset, dataset_dir)  # raises if missing (digits: sklearn)
  if dataset == "digits":
    import sklearn
    parts.append(sklearn.__version__)
  for path in sources:
    stat = os.stat(path)
    parts += [os.path.realpath(path), str(stat.st_size), str(stat.st_mtime_ns)]
  return hashlib.sha1("\n".join(parts).encode()).hexdigest()[:12]


def cache_path(dataset: str, positive: int, negative: int, features: int, seed: int, *,
               dataset_dir=None, cache_dir=None) -> str:
  """Where the `.npz` of one (pair, F, seed) lives; the folder name identifies the source data."""
  folder = f"binary_{dataset}-{_source_fingerprint(dataset, dataset_dir)}"
  name = f"binary_{dataset}-pos_{positive}-neg_{negative}-dim_{features}-seed_{seed}.npz"
  return os.path.join(cache_dir or default_cache_dir(), folder, name)


@functools.lru_cache(maxsize=2)
def _source(dataset: str, dataset_dir) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int]]:
  images, labels = datasets.load_dataset(dataset, dataset_dir, "train")
  return images, labels, split_sizes(dataset, labels)


def _read_cached(path: str) -> dict[str, np.ndarray] | None:
  try:
    with np.load(path) as data:
      return {name: data[name] for name in _ARRAYS}
  except (OSError, ValueError, KeyError, zipfile.BadZipFile):
    return None  # missing, or damaged: generated again and replaced


def load_binary_dataset(dataset: str, positive: int, negative: int, features: int, seed: int, *,
                        dataset_dir=None, cache_dir=None) -> dict[str, np.ndarray]:
  """The splits of one (pair, F, seed): read from the cache, or generated and cached."""
  if dataset_dir is not None:
    dataset_dir = os.path.realpath(dataset_dir)
  path = cache_path(dataset, positive, negative, features, seed, dataset_dir=dataset_dir,
                    cache_dir=cache_dir)
  arrays = _read_cached(path)
  if arrays is None:
    images, labels, (per_class, n_valid, n_test) = _source(dataset, dataset_dir)
    arrays = make_binary_dataset(images, labels, positive, negative, features, seed,
                                 per_class=per_class, valid_per_class=n_valid,
                                 test_per_class=n_test)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    files.write_atomic(path, lambda file: np.savez(file, **arrays))
  return arrays


def _take(arrays, split: str, count: int | None, path_hint: str) -> tuple[np.ndarray, np.ndarray]:
  x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
  if count is None:
    return x, y
  if count > len(y):
    raise datasets.DatasetError(f"{count} {split} examples requested (num_{split}_examples) but "
                                f"the {path_hint} dataset has only {len(y)}")
  return x[:count], y[:count]


def binary_task(dataset: str, features: int, num_train_examples: int | None = None,
                num_valid_examples: int | None = None, *, data_seed: int,
                positive_class: int | None = None, negative_class: int | None = None,
                held_out_pairs=RECOMMENDED_HELD_OUT_PAIRS,
                min_data_seed: int = DEFAULT_MIN_DATA_SEED,
                max_data_seed: int = DEFAULT_MAX_DATA_SEED, num_epochs: int = 1,
                dataset_dir=None, cache_dir=None) -> Task:
  """A projected binary classification task (accuracy fitness).

  Without a class pair, the pair and file seed are drawn from `data_seed` (`select_pair`); with
  one, the file seed is `file_seed(data_seed)`. The task uses the first `num_train_examples`
  train rows and the first `num_valid_examples` valid rows (None: all of them).
  """
  if (positive_class is None) != (negative_class is None):
    raise ValueError("give both positive_class and negative_class, or neither")
  if positive_class is None:
    positive, negative, seed = select_pair(data_seed, held_out_pairs,
                                           min_data_seed=min_data_seed,
                                           max_data_seed=max_data_seed)
  else:
    positive, negative = int(positive_class), int(negative_class)
    seed = file_seed(data_seed, min_data_seed, max_data_seed)
  arrays = load_binary_dataset(dataset, positive, negative, features, seed,
                               dataset_dir=dataset_dir, cache_dir=cache_dir)
  hint = f"{dataset} pos {positive} / neg {negative}"
  x_train, y_train = _take(arrays, "train", num_train_examples, hint)
  x_valid, y_valid = _take(arrays, "valid", num_valid_examples, hint)
  name = (f"binary_{dataset}(pos={positive},neg={negative},F={features},seed={seed},"
          f"data_seed={data_seed})")
  return Task.from_arrays(x_train, y_train, x_valid, y_valid, eval_type="accuracy",
                          num_epochs=num_epochs, shuffle_seed=epoch_shuffle_seed(data_seed),
                          name=name)
