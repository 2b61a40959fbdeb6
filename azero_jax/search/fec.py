"""Functional equivalence checking (REFERENCE.md §6): fingerprint keys and the LRU fitness cache.

The fingerprint of a program on a task is its errors on a short run (10 train, 10 valid examples),
the task index and the number of train examples of the full run. The original hashes the exact
float64 errors to 64 bits, and so do we, from the exact bits of the float32 errors our evaluator
computes (no truncation, as the original code and unlike the paper; two fingerprints share a key
with probability ~2^-64). -0.0 is folded into +0.0 and every NaN into one NaN. Errors after an
abort are NaN, so a fixed-length row carries the same information as the original's truncated
lists.
"""

from __future__ import annotations

import collections
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from azero_jax.executables import DiskJit

DEFAULT_CACHE_SIZE = 100_000
DEFAULT_FORGET_EVERY = 100
_FREE = np.iinfo(np.int64).max  # the stamp of a free cache slot
_PLAN_ROUNDS = 8  # fixed-point rounds of a batch's plan before the one-key-at-a-time path


_SHIFTS = (np.uint64(30), np.uint64(27), np.uint64(31))
_MULTIPLIERS = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))


def _mix(values):
  """SplitMix64's finaliser, a well-mixed 64-bit function of 64 bits, of uint64 `values` (they
  wrap): NumPy arrays in place through one scratch array (a search hashes arrays of megabytes,
  and every fresh temporary costs page faults), and returned; traced arrays as new values."""
  in_place = isinstance(values, np.ndarray)
  scratch = values >> _SHIFTS[0]
  values ^= scratch
  for multiplier, shift in zip(_MULTIPLIERS, _SHIFTS[1:]):
    values *= multiplier
    if in_place:
      np.right_shift(values, shift, out=scratch)
    else:
      scratch = values >> shift
    values ^= scratch
  return values


def _words(column: np.ndarray) -> np.ndarray:
  """The values of an [n, ...] array as uint64 words: the bits of float64 (a view where the last
  axis is contiguous), the value of integers."""
  column = np.asarray(column)
  if column.dtype == np.float64:
    return (column if column.strides[-1] == 8 else np.ascontiguousarray(column)).view(np.uint64)
  return column.astype(np.uint64)


@functools.cache
def _salts(place: int, count: int) -> np.ndarray:
  """The salts of the places [place, place + count) in a row (read-only: shared)."""
  salts = _mix(np.arange(place, place + count, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15))
  salts.flags.writeable = False
  return salts


def _salted(words: np.ndarray, place: int = 0, out: np.ndarray | None = None) -> np.ndarray:
  """Each word of [n, ...] uint64 `words` mixed with its place in the row (`place` onwards, in
  row-major order), into `out` (may be `words`; default a new array)."""
  row = words.shape[1:]
  return _mix(np.add(words, _salts(place, math.prod(row)).reshape(row), out=out))


def row_hashes(*columns) -> np.ndarray:
  """[n, 2] uint64: two 64-bit hashes of each row's exact values in `columns` ([n, ...] arrays).

  Every word (with its place in the row) is mixed to 64 bits; the row's hashes are the sum and
  the XOR of its mixed words. Rows that differ in one word differ in both; otherwise a pair of
  rows shares both with probability ~2^-96 (the mixed words behave as random).
  """
  count = len(columns[0])
  sums, xors = np.zeros(count, np.uint64), np.zeros(count, np.uint64)
  place = 0
  with np.errstate(over="ignore"):
    for column in columns:
      mixed = _salted(_words(column), place)
      mixed = mixed.reshape(count, math.prod(mixed.shape[1:]))
      sums += mixed.sum(axis=1, dtype=np.uint64)
      xors ^= np.bitwise_xor.reduce(mixed, axis=1)
      place += mixed.shape[1]
  return np.stack([sums, xors], axis=1)


def grouped(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """`order = np.argsort(keys, kind="stable")` of uint64 `keys` and `keys[order]`: positions
  ordered by key, equal keys in position order.

  One plain sort of each key's high bits with its position in the low bits, several times faster
  than a stable argsort (40,000 keys: ~0.5 ms against ~2.8 ms); where two different keys share
  their high bits (rare: ~n^2 / 2^(64 - log2 n) per batch) the stable argsort is taken instead.
  """
  bits = max(int(keys.size - 1).bit_length(), 1)
  low = np.uint64((1 << bits) - 1)
  packed = np.sort((keys & ~low) | np.arange(keys.size, dtype=np.uint64))
  order = (packed & low).astype(np.int64)
  ordered = keys[order]
  high = packed & ~low
  if np.any((high[1:] == high[:-1]) & (ordered[1:] != ordered[:-1])):
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
  return order, ordered


# A fingerprint key's words in a row: a and b (the numbers of train and valid errors), the task
# index, the full run's N, then the errors.
_N_PLACE = 3
_ERRORS_PLACE = 4


@functools.partial(DiskJit, static_argnums=(3, 4))
def error_sums(train_errors, valid_errors, task_index, a: int, b: int):
  """The part of fingerprint keys that the errors decide, on the device that holds them:
  errors [..., T, a'] and [..., T, b'] (a' <= a, b' <= b: padded here with NaN), task index [T]
  -> [..., T] uint64, the sum of every salted word of a key's row but N's (`with_train_steps`
  adds it).

  A key hashes (a, b, task index, N) and the exact bits of the train and valid errors in their
  own precision (float32 errors, the evaluator's, two to a 64-bit word; others as float64), as the
  original hashes its fingerprints to 64 bits (-0.0 folded into +0.0, every NaN into one): the
  mixed sum of the words, each mixed with its place (as `row_hashes`; keys differ when one word
  does, and otherwise with probability ~2^-64)."""
  dtype = jnp.float32 if train_errors.dtype == valid_errors.dtype == jnp.float32 else jnp.float64
  per_word = 8 // jnp.dtype(dtype).itemsize
  width = -(-(a + b) // per_word) * per_word
  padding = lambda errors, size: [(0, 0)] * (errors.ndim - 1) + [(0, size - errors.shape[-1])]
  errors = jnp.concatenate([jnp.pad(train_errors.astype(dtype), padding(train_errors, a),
                                    constant_values=jnp.nan),
                            jnp.pad(valid_errors.astype(dtype), padding(valid_errors, b),
                                    constant_values=jnp.nan)], axis=-1)
  errors = jnp.pad(errors, padding(errors, width))  # zeros up to whole words
  errors = jnp.where(errors == 0, jnp.zeros((), dtype), errors)
  errors = jnp.where(jnp.isnan(errors), jnp.full((), jnp.nan, dtype), errors)
  shape = errors.shape[:-1]
  words = errors.reshape(*shape, width // per_word, per_word)
  words = jax.lax.bitcast_convert_type(words if per_word > 1 else words[..., 0], jnp.uint64)
  head = jnp.stack([jnp.full(shape, a, jnp.uint64), jnp.full(shape, b, jnp.uint64),
                    jnp.broadcast_to(task_index.astype(jnp.uint64), shape)], axis=-1)
  salted = lambda values, place: _mix(values + _salts(place, values.shape[-1])).sum(
      axis=-1, dtype=jnp.uint64)
  return salted(head, 0) + salted(words, _ERRORS_PLACE)


def with_train_steps(sums: np.ndarray, num_train_steps) -> np.ndarray:
  """Fingerprint keys from `error_sums` and each lane's full-run N (broadcast)."""
  steps = np.broadcast_to(np.asarray(num_train_steps, np.uint64), sums.shape)
  with np.errstate(over="ignore"):
    return _mix(sums + _salted(steps.reshape(-1, 1), _N_PLACE).reshape(sums.shape))


class BatchLookup(NamedTuple):
  """What `FecCache.lookup_batch` found, one entry per key of the batch (in batch order)."""

  fitness: np.ndarray  # [m] the cached fitness (0.0 for misses and pending hits)
  missed: np.ndarray  # positions that missed (a placeholder was inserted), increasing
  pending: np.ndarray  # [h, 2] hits on a placeholder: (position, position that inserted it)


class FecState(NamedTuple):
  """A cache's contents for a checkpoint: entries from least to most recently used."""

  keys: np.ndarray  # [n] uint64
  fitness: np.ndarray  # [n] float64
  counts: np.ndarray  # [n] int64
  hits: int
  misses: int


class FecCache:
  """LRU map from fingerprint key (uint64) to per-task fitness, with forced forgetting.

  An entry's count starts at 1 on insert and grows with each hit; once it reaches `forget_every`
  (0 = never) the entry is erased right after that hit. So an entry serves at most
  forget_every - 1 hits before the program is evaluated again.

  Entries live in slots (key, fitness, count, last-use stamp; a free slot's stamp is _FREE) that
  never move, so erasing one or filling a placeholder is a write to its slot. Keys are found
  through a sorted index and a small sorted index of recent keys, merged into it now and then;
  an index entry whose slot was freed or reused is stale and found as absent (a key has at most
  one index entry: inserting it again points its stale entry at the new slot).

  A batch of lookups is array work: each key's hits, misses and forgetting within the batch
  follow from its count and its occurrences (a cycle of one miss and up to forget_every - 1
  hits), the evictions from the running size. Each eviction takes the least recently used entry
  the batch has not used yet; an entry it takes before the batch's first use of it turns that use
  into a miss (more misses, more evictions: `_plan` iterates to the fixed point). The result is
  that of looking the keys up one after another, as the original does; a batch that would evict
  more entries than it leaves alone is looked up one key at a time instead.
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
    self.sequential_batches = 0  # batches that needed the one-key-at-a-time path
    self.conflicted_batches = 0  # batches whose evictions reached keys they look up later
    self.restore(FecState(np.zeros(0, np.uint64), np.zeros(0), np.zeros(0, np.int64), 0, 0))

  def __len__(self) -> int:
    return self._size

  def __contains__(self, key) -> bool:
    return self._find(np.array([key], np.uint64))[0] >= 0

  def lookup(self, key):
    """The cached fitness (a hit: counted, moved to the front, maybe forgotten) or None (a miss;
    nothing is inserted)."""
    slot = self._find(np.array([key], np.uint64))
    if slot[0] < 0:
      self.misses += 1
      return None
    value = float(self._fitness[slot[0]])
    self.hits += 1
    self._counts[slot] += 1
    if self.forget_every and self._counts[slot[0]] >= self.forget_every:
      self._free(slot)
    else:
      self._stamps[slot] = self._tick(1)
    return value

  def insert(self, key, fitness) -> None:
    """Stores a fitness at the front with count 1 (replacing any entry), evicting the LRU ones."""
    slot = self._find(np.array([key], np.uint64))
    self._free(slot[slot >= 0])
    self._add(np.array([key], np.uint64), np.array([fitness], np.float64),
              np.ones(1, np.int64), self._tick(1))
    self._evict(len(self) - self.cache_size)

  def lookup_batch(self, keys) -> BatchLookup:
    """`lookup` of each key in order where a miss inserts a placeholder at once, so that a later
    equal key in the same batch hits (as in the one-at-a-time original once the first was
    evaluated and inserted); `fill` then sets the fitness of the placeholders."""
    keys = np.asarray(keys, np.uint64)
    plan = self._plan(keys)
    if plan is None:
      self.sequential_batches += 1
      return self._lookup_sequentially(keys)
    found, final = plan
    self.hits += keys.size - found.missed.size
    self.misses += found.missed.size
    self._apply(final)
    return found

  def fill(self, fitness) -> None:
    """Sets the fitness of the placeholders the last `lookup_batch` inserted, one value per miss
    in position order. Placeholders evicted or forgotten meanwhile are gone; theirs is dropped."""
    fitness = np.asarray(fitness, np.float64)
    slots = self._unfilled
    alive = (self._stamps[slots] != _FREE) & (self._slot_keys[slots] == self._unfilled_keys)
    self._fitness[slots[alive]] = fitness[self._unfilled_misses[alive]]
    self._set_unfilled(np.zeros(0, np.int64), np.zeros(0, np.int64))

  @property
  def hit_rate(self) -> float:
    """Hits / lookups so far (0 before any lookup)."""
    lookups = self.hits + self.misses
    return self.hits / lookups if lookups else 0.0

  def state(self) -> FecState:
    """The entries in LRU order and the hit counters (called between batches, when every entry
    holds a fitness)."""
    slots = np.flatnonzero(self._stamps != _FREE)
    slots = slots[np.argsort(self._stamps[slots], kind="stable")]
    return FecState(self._slot_keys[slots], self._fitness[slots], self._counts[slots], self.hits,
                    self.misses)

  def restore(self, state: FecState) -> None:
    """Replaces the contents with a saved state."""
    keys = np.asarray(state.keys, np.uint64)
    self._slot_keys = keys.copy()
    self._fitness = np.asarray(state.fitness, np.float64).copy()
    self._counts = np.asarray(state.counts, np.int64).copy()
    self._stamps = np.arange(keys.size, dtype=np.int64)  # LRU rank: least recent first
    self._free_slots = np.zeros(0, np.int64)
    self._size = keys.size
    self._clock = keys.size
    order = np.argsort(keys, kind="stable")
    self._index, self._index_slots = keys[order], order
    self._recent, self._recent_slots = np.zeros(0, np.uint64), np.zeros(0, np.int64)
    self._old_bound = -1  # see `_victims`
    self.hits, self.misses = int(state.hits), int(state.misses)
    self._set_unfilled(np.zeros(0, np.int64), np.zeros(0, np.int64))

  # Array plumbing. --------------------------------------------------------------------------

  def _set_unfilled(self, slots: np.ndarray, misses: np.ndarray) -> None:
    """The placeholders the next `fill` sets: their slots (and keys) and which miss fills each."""
    self._unfilled, self._unfilled_misses = slots, misses
    self._unfilled_keys = self._slot_keys[slots]

  def _locate(self, keys: np.ndarray):
    """For each key, its entry in the index and in the recent index: (position, whether the
    entry holds the key) per index."""
    located = []
    for index in (self._index, self._recent):
      position = np.minimum(np.searchsorted(index, keys), max(index.size - 1, 0))
      located.append((position, index[position] == keys if index.size
                      else np.zeros(keys.size, bool)))
    return located

  def _find(self, keys: np.ndarray, located=None) -> np.ndarray:
    """Slot of each key's entry, or -1 (`located`: the keys' `_locate`, if known)."""
    slots = np.full(keys.size, -1, np.int64)
    located = self._locate(keys) if located is None else located
    for (position, listed), index_slots in zip(located, (self._index_slots, self._recent_slots)):
      slot = index_slots[position[listed]]
      live = (self._stamps[slot] != _FREE) & (self._slot_keys[slot] == keys[listed])
      slots[np.flatnonzero(listed)[live]] = slot[live]
    return slots

  def _tick(self, count: int) -> np.ndarray:
    stamps = self._clock + np.arange(count, dtype=np.int64)
    self._clock += count
    return stamps

  def _free(self, slots: np.ndarray) -> None:
    """Erases the entries in `slots` (distinct); their index entries become stale."""
    self._stamps[slots] = _FREE
    self._free_slots = np.concatenate([self._free_slots, slots])
    self._size -= slots.size

  def _add(self, keys, fitness, counts, stamps, located=None) -> np.ndarray:
    """Inserts absent keys (sorted, distinct) into free slots (grown as needed); their slots.
    `located`: the keys' `_locate`, if known (the indexes have not changed since)."""
    missing = keys.size - self._free_slots.size
    if missing > 0:
      grown = max(missing, self._stamps.size)
      self._free_slots = np.concatenate([self._free_slots,
                                         self._stamps.size + np.arange(grown)])
      self._slot_keys = np.concatenate([self._slot_keys, np.zeros(grown, np.uint64)])
      self._fitness = np.concatenate([self._fitness, np.zeros(grown)])
      self._counts = np.concatenate([self._counts, np.zeros(grown, np.int64)])
      self._stamps = np.concatenate([self._stamps, np.full(grown, _FREE)])
    slots, self._free_slots = self._free_slots[:keys.size], self._free_slots[keys.size:]
    self._slot_keys[slots], self._fitness[slots] = keys, fitness
    self._counts[slots], self._stamps[slots] = counts, stamps
    self._size += keys.size
    # Index entries: a stale one of the key points at its new slot; other keys join the recent
    # index, which joins the index once it holds an eighth as many keys.
    located = self._locate(keys) if located is None else located
    (index_position, in_index), (recent_position, in_recent) = located
    self._index_slots[index_position[in_index]] = slots[in_index]
    self._recent_slots[recent_position[in_recent]] = slots[in_recent]
    new = ~in_index & ~in_recent
    self._recent, self._recent_slots = _merged(self._recent, self._recent_slots, keys[new],
                                               slots[new])
    if self._recent.size > max(64, self._index.size // 8):
      self._index, self._index_slots = _merged(*self._live(self._index, self._index_slots),
                                               *self._live(self._recent, self._recent_slots))
      self._recent, self._recent_slots = np.zeros(0, np.uint64), np.zeros(0, np.int64)
    return slots

  def _live(self, index: np.ndarray, slots: np.ndarray):
    """An index without its stale entries."""
    live = (self._stamps[slots] != _FREE) & (self._slot_keys[slots] == index)
    return index[live], slots[live]

  def _victims(self, count: int) -> np.ndarray:
    """The slots of the `count` least recently used entries.

    They are among the entries stamped at most `_old_bound`, all older than the others (every
    later stamp is above it): a scan finds those and only they are partitioned. When fewer than
    `count` are left, one partition of all slots sets the bound at the 4 x count-th oldest.
    """
    old = np.flatnonzero(self._stamps <= self._old_bound)
    if old.size < count:
      oldest = min(4 * count, self._stamps.size) - 1
      self._old_bound = self._stamps[np.argpartition(self._stamps, oldest)[oldest]]
      old = np.flatnonzero(self._stamps <= self._old_bound)
    return old[np.argpartition(self._stamps[old], count - 1)[:count]]

  def _evict(self, count: int) -> None:
    if count > 0:
      self._free(self._victims(count))

  def _plan(self, keys: np.ndarray):
    """The batch's outcome as arrays, or None where the one-at-a-time path is needed.

    Old entries (present before the batch) that the batch's evictions reach before their first
    use are looked up as absent. Which those are depends on the evictions, which depend on the
    misses: starting from none, the set is recomputed until it stays the same (`_evicted`).
    """
    size = keys.size
    by_key, ordered = grouped(keys)  # positions grouped by key, in batch order
    first = np.ones(size, bool)
    first[1:] = ordered[1:] != ordered[:-1]
    starts = np.flatnonzero(first)  # each distinct key's first place in `by_key`
    unique, occurrences = ordered[starts], np.diff(np.append(starts, size))
    group = np.cumsum(first) - 1
    key_of = np.empty(size, np.int64)  # index into `unique` of each position
    key_of[by_key] = group
    key_rank = np.empty(size, np.int64)  # how many earlier positions hold the same key
    key_rank[by_key] = np.arange(size) - starts[group]
    grouping = (by_key, starts, occurrences, key_of, key_rank)
    located = self._locate(unique)  # the indexes stay as they are until `_apply` adds keys
    entry = self._find(unique, located)
    first_use = by_key[starts]  # each distinct key's first position
    evicted = np.zeros(unique.size, bool)  # old entries evicted before their first use
    for _ in range(_PLAN_ROUNDS):
      plan = self._outcome(unique, np.where(evicted, -1, entry), grouping)
      walk = self._evicted(plan[2], entry, first_use, evicted)
      if walk is None:
        return None
      victims, now_evicted = walk
      if np.array_equal(now_evicted, evicted):
        found, final, _ = plan
        return found, (*final, victims, located)
      if not evicted.any():
        self.conflicted_batches += 1
      evicted = now_evicted
    return None

  def _outcome(self, unique, entry, grouping):
    """What each position finds given which keys are present (`entry` >= 0), the keys' final
    state, and the evictions: at each position, how many happened up to it."""
    by_key, starts, occurrences, key_of, key_rank = grouping
    size, forget = key_of.size, self.forget_every
    present = entry >= 0
    count0, old_value = np.zeros(unique.size, np.int64), np.zeros(unique.size)
    count0[present] = self._counts[entry[present]]
    old_value[present] = self._fitness[entry[present]]
    # Hits on the old entry: ranks 0..last_old (the last forgets it); then cycles of one miss
    # and `cycle - 1` hits on its placeholder (the last forgets it).
    infinite = size + 1
    cycle = max(forget, 2) if forget else infinite
    last_old = np.where(present, np.maximum(forget - 1 - count0, 0) if forget else infinite, -1)
    old_hit = key_rank <= last_old[key_of]
    offset = key_rank - last_old[key_of] - 1  # rank within the cycles (>= 0 when not old_hit)
    phase = np.where(old_hit, -1, offset % cycle if forget else offset)
    miss = phase == 0
    forgets = (old_hit & (key_rank == last_old[key_of]) & bool(forget)) | (
        bool(forget) & (phase == cycle - 1))
    # Running size (each miss adds an entry, each forgetting hit removes one) -> evictions.
    running = len(self) + np.cumsum(miss.astype(np.int64) - forgets)
    evictions = np.maximum(np.maximum.accumulate(running) - self.cache_size, 0)
    # What each position found.
    positions = np.arange(size)
    fitness = np.where(old_hit, old_value[key_of], 0.0)
    missed = positions[miss]
    source_rank = key_rank - np.maximum(phase, 0)
    pending_mask = phase > 0
    source = by_key[starts[key_of] + source_rank]
    pending = np.stack([positions[pending_mask], source[pending_mask]], axis=1)
    # Each key's state after the batch, and the miss whose placeholder it holds (or -1).
    last = by_key[starts + occurrences - 1]  # position of each key's last occurrence
    last_phase = phase[last]
    final_count = np.where(last_phase < 0, count0 + occurrences, last_phase + 1)
    miss_number = np.full(size, -1)  # at each missed position, its place in `missed`
    miss_number[missed] = np.arange(missed.size)
    filled_by = np.where(last_phase < 0, -1, miss_number[source[last]])
    final = (unique, entry, forgets[last], final_count, last, filled_by, size)
    return BatchLookup(fitness, missed, pending), final, evictions

  def _evicted(self, evictions: np.ndarray, entry: np.ndarray, first_use: np.ndarray,
               evicted: np.ndarray):
    """The slots the batch's evictions free, in order, and which of the batch's keys they reach
    before their first use; None if they would need entries the batch has used (more evictions
    than the entries it leaves alone: then the batch is looked up one key at a time).

    `evictions` counts the evictions up to each position (given the keys assumed `evicted`
    before their first use). Each evicts the least recently used entry: the oldest entry the
    batch has not used yet (all the batch's uses are more recent).
    """
    count = int(evictions[-1]) if evictions.size else 0
    if not count:
      return np.zeros(0, np.int64), np.zeros(entry.size, bool)
    used = entry >= 0
    if count > len(self) - int((used & ~evicted).sum()):
      return None
    never = evictions.size  # the first use of an entry the batch does not use
    slot_use = np.full(self._stamps.size, never)
    slot_use[entry[used]] = first_use[used]
    oldest = self._victims(count)
    if (slot_use[oldest] == never).all():  # the oldest entries: none used by the batch
      return oldest, np.zeros(entry.size, bool)
    at = np.searchsorted(evictions, np.arange(1, count + 1))  # position of each eviction
    candidates = self._victims(min(count + int(used.sum()), len(self)))
    candidates = candidates[np.argsort(self._stamps[candidates])]  # least recent first
    taken = _taken(slot_use[candidates], at, never)
    if taken is None:
      return None
    victims = candidates[taken]
    return victims, np.isin(entry, victims) & used

  def _apply(self, final) -> None:
    unique, entry, gone, final_count, last, filled_by, size, victims, located = final
    present = entry >= 0
    stamps = self._clock + last
    self._clock += size
    kept = present & ~gone
    self._counts[entry[kept]] = final_count[kept]
    self._stamps[entry[kept]] = stamps[kept]
    self._free(np.concatenate([entry[present & gone], victims]))
    new = ~present & ~gone
    slots = entry.copy()
    slots[new] = self._add(unique[new], np.full(int(new.sum()), np.nan), final_count[new],
                           stamps[new], [(position[new], listed[new])
                                         for position, listed in located])
    waiting = ~gone & (filled_by >= 0)
    self._set_unfilled(slots[waiting], filled_by[waiting])

  def _lookup_sequentially(self, keys: np.ndarray) -> BatchLookup:
    """The batch one key at a time on an ordered dict (the reference semantics)."""
    state = self.state()
    entries = collections.OrderedDict(
        (int(k), [float(f), int(c)]) for k, f, c in zip(state.keys, state.fitness, state.counts))
    fitness, missed, pending, inserted = [], [], [], {}
    for position, key in enumerate(keys.tolist()):
      entry = entries.get(key)
      if entry is None:
        entries[key] = [None, 1]
        inserted[key] = len(missed)
        if len(entries) > self.cache_size:
          entries.popitem(last=False)
        missed.append(position)
        fitness.append(0.0)
        continue
      entry[1] += 1
      if self.forget_every and entry[1] >= self.forget_every:
        del entries[key]
      else:
        entries.move_to_end(key)
      if entry[0] is None:
        pending.append((position, missed[inserted[key]]))
        fitness.append(0.0)
      else:
        fitness.append(entry[0])
    self.misses += len(missed)
    self.hits += keys.size - len(missed)
    remaining = list(entries.items())
    waiting = np.array([inserted[k] if v[0] is None else -1 for k, v in remaining], np.int64)
    self.restore(FecState(np.array([k for k, _ in remaining], np.uint64),
                          np.array([np.nan if v[0] is None else v[0] for _, v in remaining]),
                          np.array([v[1] for _, v in remaining], np.int64),
                          self.hits, self.misses))
    slots = np.flatnonzero(waiting >= 0)  # restore puts the entries in slots 0, 1, ...
    self._set_unfilled(slots, waiting[slots])
    return BatchLookup(np.array(fitness), np.array(missed, np.int64),
                       np.array(pending, np.int64).reshape(-1, 2))


def _taken(uses: np.ndarray, at: np.ndarray, never: int) -> np.ndarray | None:
  """Which candidates (least recent first; `uses`: each one's first use in the batch, `never`
  if none) the evictions at batch positions `at` (non-decreasing) take, in order, or None if
  they run out: each takes the next candidate not used before it. A candidate passed over stays
  passed (its use makes it recent), so only the used candidates need a look, one by one."""
  count, passed = at.size, []
  used = np.flatnonzero(uses < never)
  for index, use in zip(used.tolist(), uses[used].tolist()):
    eviction = index - len(passed)  # the eviction that reaches this candidate
    if eviction >= count:
      break
    if use <= at[eviction]:
      passed.append(index)
  reached = min(uses.size, count + len(passed))
  if reached - len(passed) < count:
    return None
  return np.delete(np.arange(reached), passed)


def _merged(keys: np.ndarray, slots: np.ndarray, new_keys: np.ndarray, new_slots: np.ndarray):
  """A sorted index (keys and their slots) with entries added: one stable sort of the two side by
  side, which merges the sorted runs it finds."""
  keys, slots = np.concatenate([keys, new_keys]), np.concatenate([slots, new_slots])
  order = np.argsort(keys, kind="stable")
  return keys[order], slots[order]


class FingerprintMemo:
  """The fingerprint keys and train steps [T] of programs already fingerprinted, by program key
  (`row_hashes` of the stripped program's readable columns and its allowed tasks); the oldest
  entry goes first.

  The fingerprint run is deterministic, so an entry equals what a new run would give. Entries lie
  in a ring of `capacity` slots, found through the first halves of their keys (sorted) and
  checked against the second halves. A key whose first half is already held is not added.
  """

  def __init__(self, capacity: int, num_tasks: int):
    if capacity < 1:
      raise ValueError(f"capacity must be >= 1, got {capacity}")
    self.capacity = capacity
    self._index = np.zeros(0, np.uint64)  # first halves of the keys held, sorted
    self._index_slots = np.zeros(0, np.int64)  # ... and the slot holding each
    self._program_keys = np.zeros((capacity, 2), np.uint64)  # per slot
    self._keys = np.zeros((capacity, num_tasks), np.uint64)
    self._steps = np.zeros((capacity, num_tasks), np.int64)
    self._added = 0  # entries ever added; the next goes to slot _added % capacity

  def __len__(self) -> int:
    return self._index.size

  def find(self, program_keys: np.ndarray) -> np.ndarray:
    """The slot of each key [n, 2] held, or -1."""
    if not len(self):
      return np.full(len(program_keys), -1, np.int64)
    position = np.minimum(np.searchsorted(self._index, program_keys[:, 0]), len(self) - 1)
    slots = self._index_slots[position]
    held = (self._index[position] == program_keys[:, 0]) & (
        self._program_keys[slots, 1] == program_keys[:, 1])
    return np.where(held, slots, -1)

  def values(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fingerprint keys and train steps [m, T] at `slots`."""
    return self._keys[slots], self._steps[slots]

  def add(self, program_keys: np.ndarray, keys: np.ndarray, steps: np.ndarray) -> None:
    """Adds entries in order (keys not held), evicting the oldest beyond `capacity`."""
    first = program_keys[:, 0]
    _, rows = np.unique(first, return_index=True)  # the first row of each first half
    position = np.minimum(np.searchsorted(self._index, first[rows]), max(len(self) - 1, 0))
    held = self._index[position] == first[rows] if len(self) else np.zeros(rows.size, bool)
    rows = np.sort(rows[~held])[-self.capacity:]
    slots = (self._added + np.arange(rows.size)) % self.capacity
    overwritten = slots[slots < min(self._added, self.capacity)]
    # Each held first half has one index entry: those of the overwritten slots go.
    gone = np.searchsorted(self._index, self._program_keys[overwritten, 0])
    self._added += rows.size
    self._program_keys[slots], self._keys[slots] = program_keys[rows], keys[rows]
    self._steps[slots] = steps[rows]
    # The few new keys go where `searchsorted` puts them (a pass over the index, not a sort).
    order = np.argsort(first[rows])
    index, index_slots = np.delete(self._index, gone), np.delete(self._index_slots, gone)
    position = np.searchsorted(index, first[rows][order])
    self._index = np.insert(index, position, first[rows][order])
    self._index_slots = np.insert(index_slots, position, slots[order])
