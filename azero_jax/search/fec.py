"""Functional equivalence checking (REFERENCE.md §6): fingerprint keys and the LRU fitness cache.

The fingerprint of a program on a task is its errors on a short run (10 train, 10 valid examples),
the task index and the number of train examples of the full run. The original hashes the exact
float64 errors to 64 bits; we key the cache by those exact bytes themselves (no truncation, as the
original code and unlike the paper, and no hash collisions). -0.0 is folded into +0.0 and every
NaN into one NaN. Errors after an abort are NaN, so a fixed-length row carries the same information
as the original's truncated lists.
"""

from __future__ import annotations

import collections
from collections.abc import Hashable
from typing import NamedTuple

import numpy as np

DEFAULT_CACHE_SIZE = 100_000
DEFAULT_FORGET_EVERY = 100


def row_keys(*columns) -> list[bytes]:
  """One hashable key per row: the bytes of its values in `columns` ([n, k] arrays), as float64."""
  rows = np.ascontiguousarray(np.concatenate([np.asarray(c, np.float64) for c in columns], axis=1))
  return rows.view(np.dtype((np.void, rows.shape[1] * 8))).ravel().tolist()


def fingerprint_keys(train_errors, valid_errors, task_index, num_train_steps) -> list[bytes]:
  """One cache key per lane: errors [n, a] and [n, b], task index [n] and full-run N [n].

  A key is the bytes of the row (a, b, task index, N, train errors, valid errors) as float64.
  """
  train = np.asarray(train_errors, dtype=np.float64)
  valid = np.asarray(valid_errors, dtype=np.float64)
  count = train.shape[0]
  header = np.stack([np.full(count, train.shape[1]), np.full(count, valid.shape[1]),
                     np.broadcast_to(task_index, count), np.broadcast_to(num_train_steps, count)],
                    axis=1)
  errors = np.concatenate([train, valid], axis=1) + 0.0  # -0.0 + 0.0 == +0.0
  return row_keys(header, np.where(np.isnan(errors), np.nan, errors))


class Pending(NamedTuple):
  """Placeholder entry of a fitness being evaluated: the batch position whose lookup missed."""

  position: int


class BatchLookup(NamedTuple):
  """What `FecCache.lookup_batch` found, one entry per key of the batch."""

  fitness: list[float]  # the cached fitness (0.0 for misses and pending hits)
  missed: list[int]  # positions that missed (a Pending placeholder was inserted)
  pending: list[tuple[int, int]]  # hits on a placeholder: (position, position that missed)
  placeholders: list[list]  # the entry inserted for each miss, to `fill` once evaluated


class FecState(NamedTuple):
  """A cache's contents for a checkpoint: entries from least to most recently used."""

  keys: list[bytes]
  fitness: np.ndarray  # [n] float64
  counts: np.ndarray  # [n] int64
  hits: int
  misses: int


class FecCache:
  """LRU map from fingerprint key to per-task fitness, with forced forgetting.

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
    # key -> [fitness, count]; the last entry is the most recently used.
    self._entries: collections.OrderedDict[Hashable, list] = collections.OrderedDict()

  def __len__(self) -> int:
    return len(self._entries)

  def __contains__(self, key: Hashable) -> bool:
    return key in self._entries

  def lookup(self, key: Hashable):
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

  def lookup_batch(self, keys) -> BatchLookup:
    """`lookup` of each key in order; a miss inserts a `Pending` placeholder at once.

    So a later equal key in the same batch hits, as it would in the one-at-a-time original once
    the first was evaluated and inserted; `fill` sets the fitness afterwards.
    """
    entries, forget_every, size = self._entries, self.forget_every, self.cache_size
    get, move_to_end, evict = entries.get, entries.move_to_end, entries.popitem
    fitness, missed, pending, placeholders = [], [], [], []
    for position, key in enumerate(keys):
      entry = get(key)
      if entry is None:
        entry = entries[key] = [Pending(position), 1]
        if len(entries) > size:
          evict(last=False)
        missed.append(position)
        placeholders.append(entry)
        fitness.append(0.0)
        continue
      entry[1] += 1
      if forget_every and entry[1] >= forget_every:
        del entries[key]
      else:
        move_to_end(key)
      value = entry[0]
      if type(value) is Pending:
        pending.append((position, value.position))
        fitness.append(0.0)
      else:
        fitness.append(value)
    self.misses += len(missed)
    self.hits += len(fitness) - len(missed)
    return BatchLookup(fitness, missed, pending, placeholders)

  def insert(self, key: Hashable, fitness) -> None:
    """Stores a fitness at the front with count 1 (replacing any entry), evicting the LRU ones."""
    self._entries[key] = [fitness, 1]
    self._entries.move_to_end(key)
    while len(self._entries) > self.cache_size:
      self._entries.popitem(last=False)

  @staticmethod
  def fill(placeholders: list[list], fitness) -> None:
    """Sets the fitness of the placeholders a `lookup_batch` inserted, keeping their counts and
    positions. Placeholders evicted or forgotten meanwhile are no longer in the cache; setting
    theirs changes nothing."""
    for entry, value in zip(placeholders, fitness):
      entry[0] = value

  @property
  def hit_rate(self) -> float:
    """Hits / lookups so far (0 before any lookup)."""
    lookups = self.hits + self.misses
    return self.hits / lookups if lookups else 0.0

  def state(self) -> FecState:
    """The entries in LRU order and the hit counters (called between batches, when every entry
    holds a fitness)."""
    values = list(self._entries.values())
    return FecState(list(self._entries), np.array([v[0] for v in values], dtype=np.float64),
                    np.array([v[1] for v in values], dtype=np.int64), self.hits, self.misses)

  def restore(self, state: FecState) -> None:
    """Replaces the contents with a saved state."""
    self._entries = collections.OrderedDict(
        (key, [float(fitness), int(count)])
        for key, fitness, count in zip(state.keys, state.fitness, state.counts))
    self.hits, self.misses = int(state.hits), int(state.misses)
