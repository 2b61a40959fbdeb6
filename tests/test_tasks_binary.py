"""Dataset readers and projected binary classification tasks (REFERENCE.md §10.3)."""

import gzip
import os
import pickle

import numpy as np
import pytest

from azero_jax.tasks import binary, datasets

PER_CLASS = 30  # images per class in the tiny datasets the tests write


def _images(rng, num_classes, width):
  labels = np.repeat(np.arange(num_classes), PER_CLASS)
  rng.shuffle(labels)
  return rng.integers(0, 256, size=(len(labels), width), dtype=np.uint8), labels


def write_cifar10(root, rng, num_classes=10):
  """A tiny CIFAR-10 in the python-pickle layout; returns the train images and labels."""
  folder = root / "cifar-10-batches-py"
  folder.mkdir(parents=True)
  x, y = _images(rng, num_classes, 3072)
  for i, (xb, yb) in enumerate(zip(np.array_split(x, 5), np.array_split(y, 5), strict=True)):
    with open(folder / f"data_batch_{i + 1}", "wb") as f:
      pickle.dump({b"batch_label": b"batch", b"data": xb, b"labels": yb.tolist()}, f)
  with open(folder / "test_batch", "wb") as f:
    pickle.dump({b"data": x[:7], b"labels": y[:7].tolist()}, f, protocol=2)
  return x, y


def _idx_bytes(array: np.ndarray) -> bytes:
  header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
  return header + array.astype(np.uint8).tobytes()


def write_mnist(root, rng, gz=False):
  """Tiny MNIST idx files (train and t10k); returns the train images [n, 784] and labels."""
  root.mkdir(parents=True, exist_ok=True)
  x, y = _images(rng, 10, 784)
  opener, suffix = (gzip.open, ".gz") if gz else (open, "")
  for prefix, xs, ys in (("train", x, y), ("t10k", x[:9], y[:9])):
    with opener(root / f"{prefix}-images-idx3-ubyte{suffix}", "wb") as f:
      f.write(_idx_bytes(xs.reshape(-1, 28, 28)))
    with opener(root / f"{prefix}-labels-idx1-ubyte{suffix}", "wb") as f:
      f.write(_idx_bytes(ys))
  return x, y


@pytest.fixture
def rng():
  return np.random.default_rng(0)


# --- readers ----------------------------------------------------------------------------------

def test_cifar10_reader_round_trip(tmp_path, rng):
  x, y = write_cifar10(tmp_path, rng)
  for root in (tmp_path, tmp_path / "cifar-10-batches-py"):
    got_x, got_y = datasets.load_cifar10(root)
    np.testing.assert_array_equal(got_x, x)
    np.testing.assert_array_equal(got_y, y)
  test_x, test_y = datasets.load_cifar10(tmp_path, "test")
  np.testing.assert_array_equal(test_x, x[:7])
  assert test_y.tolist() == y[:7].tolist()


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_reader_round_trip(tmp_path, rng, gz):
  x, y = write_mnist(tmp_path, rng, gz=gz)
  got_x, got_y = datasets.load_mnist(tmp_path)
  np.testing.assert_array_equal(got_x, x)
  np.testing.assert_array_equal(got_y, y)
  assert datasets.load_mnist(tmp_path, "test")[0].shape == (9, 784)


def test_digits_reader():
  pytest.importorskip("sklearn")
  x, y = datasets.load_digits()
  assert x.shape == (1797, 64) and x.dtype == np.uint8 and x.max() == 16
  assert sorted(set(y.tolist())) == list(range(10))


def test_missing_dataset_dirs_name_path_and_layout(tmp_path):
  missing = tmp_path / "nowhere"
  with pytest.raises(datasets.DatasetError, match="nowhere.*cifar-10-batches-py.*data_batch_1"):
    datasets.load_cifar10(missing)
  with pytest.raises(datasets.DatasetError, match="nowhere.*train-images-idx3-ubyte"):
    datasets.load_mnist(missing)
  with pytest.raises(datasets.DatasetError, match="data_batch_1.*Expected layout"):
    datasets.load_cifar10(tmp_path)  # exists, but holds no batches
  with pytest.raises(datasets.DatasetError, match="also tried .gz.*train-images-idx3-ubyte"):
    datasets.load_mnist(tmp_path)


def test_malformed_cifar_batches(tmp_path, rng):
  write_cifar10(tmp_path, rng)
  batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
  batch.write_bytes(b"not a pickle")
  with pytest.raises(datasets.DatasetError, match="malformed.*data_batch_3"):
    datasets.load_cifar10(tmp_path)
  with open(batch, "wb") as f:
    pickle.dump({b"data": np.zeros((3, 100), np.uint8), b"labels": [0, 1, 2]}, f)
  with pytest.raises(datasets.DatasetError, match=r"data_batch_3.*\[n, 3072\]"):
    datasets.load_cifar10(tmp_path)
  with open(batch, "wb") as f:
    pickle.dump({b"data": os.system}, f)  # a pickle that would import a callable
  with pytest.raises(datasets.DatasetError, match="not allowed"):
    datasets.load_cifar10(tmp_path)


def test_malformed_idx_files(tmp_path, rng):
  write_mnist(tmp_path, rng)
  images = tmp_path / "train-images-idx3-ubyte"
  good = images.read_bytes()
  images.write_bytes(b"\x00\x00\x0d\x03" + good[4:])
  with pytest.raises(datasets.DatasetError, match="magic.*train-images-idx3-ubyte"):
    datasets.load_mnist(tmp_path)
  images.write_bytes(good[:-5])
  with pytest.raises(datasets.DatasetError, match="size does not match"):
    datasets.load_mnist(tmp_path)


# --- class pairs ------------------------------------------------------------------------------

def test_pair_selection_never_returns_a_held_out_pair():
  drawn = [binary.select_pair(seed) for seed in range(3000)]
  pairs = {(p, n) for p, n, _ in drawn}
  assert not pairs & set(binary.RECOMMENDED_HELD_OUT_PAIRS)
  assert len(pairs) == 36 and all(p < n for p, n in pairs)
  assert all(0 <= s < 100 for _, _, s in drawn) and len({s for _, _, s in drawn}) == 100
  only_recommended = binary.complement_pairs(binary.RECOMMENDED_HELD_OUT_PAIRS)
  final = {binary.select_pair(seed, only_recommended)[:2] for seed in range(1000)}
  assert final == set(binary.RECOMMENDED_HELD_OUT_PAIRS)
  assert binary.select_pair(7) == binary.select_pair(7)
  with pytest.raises(ValueError, match="every class pair is held out"):
    binary.select_pair(0, binary.ALL_PAIRS)


def test_held_out_pairs_are_unordered():
  assert binary.normalize_pairs([(5, 0), (0, 5), (9, 8)]) == ((0, 5), (8, 9))
  assert len(binary.complement_pairs([(5, 0)])) == 44
  with pytest.raises(ValueError, match=r"\(3, 3\)"):
    binary.normalize_pairs([(3, 3)])


def test_file_seed_of_a_given_pair():
  assert binary.file_seed(11001, 0, 100) == 1
  assert binary.file_seed(3, 0, 10) == 3 and binary.file_seed(13, 5, 10) == 8


# --- dataset generation -----------------------------------------------------------------------

def test_stratified_split_is_balanced_and_disjoint(rng):
  labels = np.repeat([0.0, 1.0], 50)
  train, valid, test = binary.stratified_split(labels, 5, 7, rng)
  assert sorted(np.concatenate([train, valid, test]).tolist()) == list(range(100))
  for rows, per_class in ((train, 38), (valid, 5), (test, 7)):
    assert np.bincount(labels[rows].astype(int)).tolist() == [per_class, per_class]


def _generated(rng, features=5):
  images, labels = _images(rng, 10, 48)
  made = binary.make_binary_dataset(images, labels, 3, 7, features, 42, per_class=20,
                                    valid_per_class=3, test_per_class=2)
  return images, labels, made


def test_splits_are_stratified_with_positive_label_one(rng):
  images, labels, made = _generated(rng)
  for split, size in (("train", 30), ("valid", 6), ("test", 4)):
    y, rows = made[f"y_{split}"], made[f"i_{split}"]
    assert len(y) == size and y.sum() == size / 2
    np.testing.assert_array_equal(y, labels[rows] == 3)
    assert set(labels[rows].tolist()) == {3, 7}
  all_rows = np.concatenate([made["i_train"], made["i_valid"], made["i_test"]])
  assert len(set(all_rows.tolist())) == 40
  for c in (3, 7):  # the first per_class images of each class, in file order
    assert set(all_rows[labels[all_rows] == c]) == set(np.flatnonzero(labels == c)[:20])


def test_standardisation_uses_train_statistics_only(rng):
  images, _, made = _generated(rng)
  r = binary.projection_matrix(48, 5, 42)
  projected = {s: images[made[f"i_{s}"]].astype(np.float64) @ r for s in ("train", "valid", "test")}
  mean, std = projected["train"].mean(0), projected["train"].std(0)
  for split, x in projected.items():
    np.testing.assert_allclose(made[f"x_{split}"], (x - mean) / std, rtol=1e-5, atol=1e-5)
  assert made["x_train"].dtype == np.float32
  np.testing.assert_allclose(made["x_train"].mean(0), 0, atol=1e-5)
  np.testing.assert_allclose(made["x_train"].std(0), 1, atol=1e-5)
  assert np.abs(made["x_valid"].mean(0)).max() > 1e-3  # valid is not standardised on itself


def test_zero_variance_features_are_left_unscaled():
  train = np.array([[1.0, 2.0], [3.0, 2.0]])
  scaled_train, scaled_valid = binary.standardize(train, np.array([[5.0, 4.0]]))
  np.testing.assert_array_equal(scaled_train, [[-1, 0], [1, 0]])
  np.testing.assert_array_equal(scaled_valid, [[3, 2]])


def test_split_sizes_match_the_original_for_full_datasets():
  cifar_like = np.repeat(np.arange(10), 5000)
  assert binary.split_sizes("cifar10", cifar_like) == (5000, 500, 500)  # 8000 / 1000 / 1000
  mnist_like = np.repeat(np.arange(10), 6000)
  assert binary.split_sizes("mnist", mnist_like) == (5000, 500, 500)
  digits_like = np.repeat(np.arange(10), 174)
  assert binary.split_sizes("digits", digits_like) == (174, 26, 26)
  with pytest.raises(ValueError, match="too few"):
    binary.split_sizes("cifar10", np.repeat(np.arange(10), 2))


# --- tasks and the cache ----------------------------------------------------------------------

def test_cifar_task_from_tiny_files_and_cache(tmp_path, rng, monkeypatch):
  write_cifar10(tmp_path / "data", rng)
  options = {"data_seed": 11001, "dataset_dir": tmp_path / "data", "cache_dir": tmp_path / "cache",
             "num_epochs": 2}
  task = binary.binary_task("cifar10", 8, **options)
  assert task.eval_type == "accuracy" and task.x_train.shape == (48, 8)
  assert task.x_valid.shape == (6, 8) and task.y_valid.mean() == 0.5
  assert task.orders.shape == (2, 48)
  positive, negative, seed = binary.select_pair(11001)
  assert task.name.startswith(f"binary_cifar10(pos={positive},neg={negative},F=8,seed={seed}")
  files = [os.path.join(d, f) for d, _, fs in os.walk(tmp_path / "cache") for f in fs]
  assert len(files) == 1
  assert files[0].endswith(f"binary_cifar10-pos_{positive}-neg_{negative}-dim_8-seed_{seed}.npz")

  def no_generation(*args):
    raise AssertionError("the cached file should have been reused")

  monkeypatch.setattr(binary, "_source", no_generation)
  again = binary.binary_task("cifar10", 8, **options)
  for field in ("x_train", "y_train", "x_valid", "y_valid", "orders"):
    np.testing.assert_array_equal(getattr(task, field), getattr(again, field))
  first = binary.binary_task("cifar10", 8, num_train_examples=10, num_valid_examples=4, **options)
  np.testing.assert_array_equal(first.x_train, task.x_train[:10])
  with pytest.raises(ValueError, match="49 train examples requested.*only 48"):
    binary.binary_task("cifar10", 8, num_train_examples=49, **options)


def test_damaged_cache_file_is_regenerated(tmp_path, rng):
  write_mnist(tmp_path / "data", rng, gz=True)
  options = {"positive_class": 4, "negative_class": 1, "data_seed": 5,
             "dataset_dir": tmp_path / "data", "cache_dir": tmp_path / "cache"}
  task = binary.binary_task("mnist", 4, **options)
  path = binary.cache_path("mnist", 4, 1, 4, 5, dataset_dir=tmp_path / "data",
                           cache_dir=tmp_path / "cache")
  with open(path, "r+b") as f:
    f.truncate(100)
  again = binary.binary_task("mnist", 4, **options)
  np.testing.assert_array_equal(task.x_train, again.x_train)
  assert np.load(path)["x_train"].shape == (48, 4)


def test_cache_folder_depends_on_the_source_data(tmp_path, rng):
  write_cifar10(tmp_path / "a", rng)
  write_cifar10(tmp_path / "b", rng)
  paths = {binary.cache_path("cifar10", 0, 1, 4, 0, dataset_dir=tmp_path / d,
                             cache_dir=tmp_path) for d in "ab"}
  assert len(paths) == 2


def test_missing_dataset_dir_for_a_task(tmp_path):
  with pytest.raises(datasets.DatasetError, match="nowhere.*Expected layout"):
    binary.binary_task("cifar10", 4, data_seed=1, dataset_dir=tmp_path / "nowhere",
                       cache_dir=tmp_path)


def test_digits_tasks(tmp_path):
  pytest.importorskip("sklearn")
  tasks = [binary.binary_task("digits", 16, data_seed=s, cache_dir=tmp_path) for s in (1, 2)]
  for task in tasks:
    assert task.x_train.shape == (244, 16) and task.x_valid.shape == (52, 16)
    assert task.y_train.mean() == 0.5 and task.y_valid.mean() == 0.5
  assert not np.array_equal(tasks[0].x_train, tasks[1].x_train)
