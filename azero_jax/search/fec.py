"""Functional equivalence checking (REFERENCE.md §6): fingerprint hashes and the LRU fitness cache.

The fingerprint of a program on a task is its errors on a short run (10 train, 10 valid examples),
the task index and the number of train examples of the full run. We hash the exact float64 bytes
(what the original code does, not the paper's truncation) with BLAKE2b cut to 64 bits: -0.0 is
folded into +0.0 and every NaN into one NaN, and the two list lengths are hashed too, so a short
train list followed by valid errors cannot collide with a longer train list.
"""

from __future__ import annotations

import collections
import hashlib
from collections.abc import Sequence

import numpy as np

DEFAULT_CACHE_SIZE = 100_000
DEFAULT_FORGET_EVERY = 100


def _canonical(errors: Sequence[float] | np.ndarray) -> bytes:
  values = np.asarray(errors, dtype=np.float64) + 0.0  # -0.0 + 0.0 == +0.0
  return np.where(np.isnan(values), np.nan, values).tobytes()


def fingerprint_hash(train_errors: Sequence[float] | np.ndarray,
                     valid_errors: Sequence[float] | np.ndarray, task_index: int,
                     num_train_steps: int) -> int:
  """64-bit hash (an unsigned int) of a fingerprint run's errors, the task and the full-run N."""
  header = np.array([len(train_errors), len(valid_errors), task_index, num_train_steps],
                    dtype=np.int64)
  digest = hashlib.blake2b(header.tobytes(), digest_size=8)
  digest.update(_canonical(train_errors))
  digest.update(_canonical(valid_errors))
  return int.from_bytes(digest.digest(), "little")


class FecCache:
  """LRU map from fingerprint hash to per-task fitness, with forced forgetting.

  An entry's count starts at 1 on insert and grows with each hit; once it reaches `forget_every`
  (0 = never) the entry is erased right after that hit. So an entry serves at most
  forget_every - 1 hits before the program is evaluated again.
  """

  def __init__(self, cache_size: int = DEFAULT_CACHE_SIZE,
               forget_every: int = DEFAULT_FORGET_EVERY):
    if cache_size < 1:
      raise ValueError(f"cache_size must be >= 1, got {cache_size}")
    if forget_every < 0:
      raise ValueError(f"forget_every must be >= 0 (0 = never), got {forget_every}")
    self.cache_size = cache_size
    self.forget_every = forget_every
    self.hits = 0
    self.misses = 0
    # hash -> [fitness, count]; the last entry is the most recently used.
    self._entries: collections.OrderedDict[int, list] = collections.OrderedDict()

  def __len__(self) -> int:
    return len(self._entries)

  def __contains__(self, key: int) -> bool:
    return key in self._entries

  def lookup(self, key: int) -> float | None:
    """The cached fitness (a hit: counted, moved to the front, maybe forgotten) or None."""
    entry = self._entries.get(key)
    if entry is None:
      self.misses += 1
      return None
    self.hits += 1
    entry[1] += 1
    if self.forget_every and entry[1] >= self.forget_every:
      del self._entries[key]
    else:
      self._entries.move_to_end(key)
    return entry[0]

  def insert(self, key: int, fitness: float) -> None:
    """Stores a fitness at the front with count 1 (replacing any entry), evicting the LRU ones."""
    self._entries[key] = [fitness, 1]
    self._entries.move_to_end(key)
    while len(self._entries) > self.cache_size:
      self._entries.popitem(last=False)

  @property
  def hit_rate(self) -> float:
    """Hits / lookups so far (0 before any lookup)."""
    lookups = self.hits + self.misses
    return self.hits / lookups if lookups else 0.0
