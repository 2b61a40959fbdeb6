"""Readers for the image datasets behind projected binary tasks: CIFAR-10, MNIST and sklearn digits.

Each reader returns `(x, y)`: flattened images `x` [n, D] (uint8 pixel values, unscaled) and integer
class labels `y` [n] in 0..9, in file order. Nothing is downloaded: CIFAR-10 and MNIST are read from
a local directory; the digits come bundled with scikit-learn (the optional extra `digits`).
"""

from __future__ import annotations

import gzip
import os
import pickle

import numpy as np

DATASETS = ("cifar10", "mnist", "digits")
SPLITS = ("train", "test")

CIFAR10_LAYOUT = ("the CIFAR-10 python version: a folder 'cifar-10-batches-py' (or the dataset "
                  "dir itself) holding pickle files data_batch_1 ... data_batch_5 and test_batch, "
                  "each a dict with b'data' (uint8 [n, 3072]) and b'labels' (n ints in 0..9)")
MNIST_LAYOUT = ("MNIST idx files directly in the dataset dir: train-images-idx3-ubyte, "
                "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte "
                "(each optionally gzipped, with a .gz suffix)")


class DatasetError(ValueError):
  """A dataset directory is missing, incomplete or malformed."""


def _error(path, problem: str, layout: str) -> DatasetError:
  return DatasetError(f"{problem}: {os.fspath(path)!r}. Expected layout: {layout}")


def _check_dir(dataset_dir, layout: str) -> str:
  if dataset_dir is None or not os.path.isdir(dataset_dir):
    raise _error(dataset_dir, "dataset directory not found", layout)
  return os.fspath(dataset_dir)


def _check_split(split: str) -> None:
  if split not in SPLITS:
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def _check_arrays(path, x: np.ndarray, y: np.ndarray, width: int, layout: str):
  if x.ndim != 2 or x.shape[1] != width or y.shape != (x.shape[0],):
    raise _error(path, f"expected images [n, {width}] and labels [n], got {x.shape} and "
                       f"{y.shape}", layout)
  if y.size and (y.min() < 0 or y.max() > 9):
    raise _error(path, "labels outside 0..9", layout)
  return x, y


# --- CIFAR-10 ---------------------------------------------------------------------------------

_CIFAR_PICKLE_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
  """Unpickles plain containers and NumPy arrays only, never arbitrary callables."""

  def find_class(self, module, name):
    if (module, name) not in _CIFAR_PICKLE_GLOBALS:
      raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")
    return super().find_class(module, name)


def _cifar_batch(path: str) -> tuple[np.ndarray, np.ndarray]:
  try:
    with open(path, "rb") as f:
      batch = _ArrayUnpickler(f, encoding="bytes").load()
    x = np.asarray(batch[b"data"], dtype=np.uint8)
    y = np.asarray(batch[b"labels"], dtype=np.int64)
  except OSError as e:
    raise _error(path, f"unreadable CIFAR-10 batch file ({e.strerror})", CIFAR10_LAYOUT) from e
  except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError,
          IndexError) as e:
    raise _error(path, f"malformed CIFAR-10 batch file ({e})", CIFAR10_LAYOUT) from e
  return _check_arrays(path, x, y, 3072, CIFAR10_LAYOUT)


def _cifar_files(dataset_dir, split: str) -> list[str]:
  _check_split(split)
  root = _check_dir(dataset_dir, CIFAR10_LAYOUT)
  nested = os.path.join(root, "cifar-10-batches-py")
  root = nested if os.path.isdir(nested) else root
  names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
  paths = [os.path.join(root, name) for name in names]
  for path in paths:
    if not os.path.isfile(path):
      raise _error(path, "CIFAR-10 batch file not found", CIFAR10_LAYOUT)
  return paths


def load_cifar10(dataset_dir, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
  """CIFAR-10 images [n, 3072] (uint8, channel-major as stored) and labels [n].

  `split` "train" reads data_batch_1..5 (50000 images), "test" reads test_batch.
  """
  batches = [_cifar_batch(path) for path in _cifar_files(dataset_dir, split)]
  return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


# --- MNIST ------------------------------------------------------------------------------------

def _idx_file(root: str, name: str) -> str:
  for candidate in (name, name + ".gz"):
    path = os.path.join(root, candidate)
    if os.path.isfile(path):
      return path
  raise _error(os.path.join(root, name), "MNIST idx file not found (also tried .gz)", MNIST_LAYOUT)


def read_idx(path: str) -> np.ndarray:
  """Reads an idx file of unsigned bytes (MNIST's format), gzipped or not."""
  opener = gzip.open if path.endswith(".gz") else open
  try:
    with opener(path, "rb") as f:
      data = f.read()
  except OSError as e:
    raise _error(path, f"unreadable idx file ({e})", MNIST_LAYOUT) from e
  if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
    raise _error(path, "not an idx file of unsigned bytes (bad magic number)", MNIST_LAYOUT)
  ndim = data[3]
  header = 4 + 4 * ndim
  shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
  if len(data) != header + int(np.prod(shape)):
    raise _error(path, f"idx file size does not match its header shape {shape}", MNIST_LAYOUT)
  return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _mnist_files(dataset_dir, split: str) -> list[str]:
  _check_split(split)
  root = _check_dir(dataset_dir, MNIST_LAYOUT)
  prefix = "train" if split == "train" else "t10k"
  return [_idx_file(root, f"{prefix}-{kind}") for kind in ("images-idx3-ubyte",
                                                           "labels-idx1-ubyte")]


def load_mnist(dataset_dir, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
  """MNIST images [n, 784] (uint8) and labels [n]; `split` "train" (60000) or "test" (10000)."""
  images_path, labels_path = _mnist_files(dataset_dir, split)
  images = read_idx(images_path)
  labels = read_idx(labels_path).astype(np.int64)
  if images.ndim != 3:
    raise _error(images_path, f"expected images [n, rows, cols], got shape {images.shape}",
                 MNIST_LAYOUT)
  return _check_arrays(images_path, images.reshape(len(images), -1), labels,
                       images.shape[1] * images.shape[2], MNIST_LAYOUT)


# --- scikit-learn digits ----------------------------------------------------------------------

def sklearn_datasets():
  """scikit-learn's `datasets` module, which holds the digits; a DatasetError naming the extra to
  install when scikit-learn is missing (the plain `pip install -e .` leaves it out)."""
  try:
    from sklearn import datasets as sk_datasets
  except ImportError:
    raise DatasetError('the digits dataset needs scikit-learn, which the plain install leaves '
                       'out: pip install -e ".[digits]"') from None
  return sk_datasets


def load_digits() -> tuple[np.ndarray, np.ndarray]:
  """scikit-learn's bundled 8x8 digits: images [1797, 64] (uint8 values 0..16) and labels."""
  digits = sklearn_datasets().load_digits()
  return digits.data.astype(np.uint8), digits.target.astype(np.int64)


def load_dataset(name: str, dataset_dir=None, split: str = "train"
                 ) -> tuple[np.ndarray, np.ndarray]:
  """Images and labels of `name` ("cifar10", "mnist" or "digits", which ignores the dir/split)."""
  if name == "cifar10":
    return load_cifar10(dataset_dir, split)
  if name == "mnist":
    return load_mnist(dataset_dir, split)
  if name == "digits":
    return load_digits()
  raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")


def source_files(name: str, dataset_dir=None, split: str = "train") -> list[str]:
  """The files `load_dataset` reads for `name` (none for digits, which come with scikit-learn);
  raises DatasetError if any is missing (or, for digits, scikit-learn)."""
  if name == "cifar10":
    return _cifar_files(dataset_dir, split)
  if name == "mnist":
    return _mnist_files(dataset_dir, split)
  if name == "digits":
    sklearn_datasets()
    return []
  raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")
