"""The FEC cache and fingerprint keys (REFERENCE.md §6)."""

import collections

import numpy as np
import pytest

from azero_jax.search.fec import (
  FecCache,
  FingerprintMemo,
  error_sums,
  grouped,
  row_hashes,
  with_train_steps,
)

TRAIN = [0.5, 0.25, 1.0 / 3.0]
VALID = [0.125, 2.0]


def test_cache_defaults():
  cache = FecCache()
  assert (cache.cache_size, cache.forget_every) == (100_000, 100)


def test_miss_then_hit():
  cache = FecCache()
  assert cache.lookup(7) is None
  cache.insert(7, 0.75)
  assert cache.lookup(7) == 0.75
  assert (cache.hits, cache.misses, cache.hit_rate) == (1, 1, 0.5)
  assert 7 in cache and len(cache) == 1


def test_hit_rate_before_any_lookup():
  assert FecCache().hit_rate == 0.0


def test_entry_serves_forget_every_minus_one_hits():
  cache = FecCache(forget_every=100)
  cache.insert(1, 0.5)
  assert all(cache.lookup(1) == 0.5 for _ in range(99))  # count 2..100; erased at 100
  assert 1 not in cache
  assert cache.lookup(1) is None
  assert (cache.hits, cache.misses) == (99, 1)


def test_forget_every_small_and_zero():
  cache = FecCache(forget_every=2)
  cache.insert(1, 0.5)
  assert cache.lookup(1) == 0.5 and cache.lookup(1) is None
  never = FecCache(forget_every=0)
  never.insert(1, 0.5)
  assert all(never.lookup(1) == 0.5 for _ in range(1000))


def test_reinsert_resets_count_and_value():
  cache = FecCache(forget_every=3)
  cache.insert(1, 0.5)
  cache.lookup(1)
  cache.insert(1, 0.6)
  assert cache.lookup(1) == 0.6 and cache.lookup(1) == 0.6 and 1 not in cache


def test_lru_eviction_and_hit_moves_to_front():
  cache = FecCache(cache_size=3)
  for key in (1, 2, 3):
    cache.insert(key, key / 10)
  cache.lookup(1)  # 1 is now the most recently used; 2 is the least
  cache.insert(4, 0.4)
  assert 2 not in cache and all(key in cache for key in (1, 3, 4))
  cache.insert(5, 0.5)
  assert 3 not in cache and len(cache) == 3


def test_cache_validation():
  with pytest.raises(ValueError, match="cache_size"):
    FecCache(cache_size=0)
  with pytest.raises(ValueError, match="forget_every"):
    FecCache(forget_every=-1)


def fingerprint_keys(train_errors, valid_errors, task_index, num_train_steps):
  """One key per lane (errors [n, a] and [n, b], task index [n], N [n]), as the search makes
  them: `error_sums` of the errors (float32 as they are, others as float64), then N."""
  train, valid = np.asarray(train_errors), np.asarray(valid_errors)
  if train.dtype != np.float32 or valid.dtype != np.float32:
    train, valid = train.astype(np.float64), valid.astype(np.float64)
  sums = error_sums(train, valid, np.asarray(task_index, np.int64), train.shape[1],
                    valid.shape[1])
  return with_train_steps(np.asarray(sums), num_train_steps)


def key(train, valid, task_index, num_train_steps):
  return fingerprint_keys([train], [valid], [task_index], [num_train_steps])[0]


def test_keys_are_deterministic_and_array_agnostic():
  first = key(TRAIN, VALID, 3, 100)
  assert isinstance(first, np.uint64)
  assert first == key(np.array(TRAIN), np.array(VALID), 3, 100)
  assert first == key(tuple(TRAIN), VALID, np.int64(3), 100)


def test_keys_are_vectorised_over_lanes():
  keys = fingerprint_keys([TRAIN, TRAIN], [VALID, VALID], [3, 4], 100)
  assert keys.dtype == np.uint64
  assert keys.tolist() == [key(TRAIN, VALID, 3, 100), key(TRAIN, VALID, 4, 100)]


def test_key_treats_signed_zeros_equal():
  assert key([0.0, 1.0], [-0.0], 0, 10) == key([-0.0, 1.0], [0.0], 0, 10)


def test_key_treats_nans_equal():
  other_nan = np.frombuffer(np.array([0x7FF8000000000001], dtype=np.uint64).tobytes(), np.float64)
  assert key([1.0], other_nan, 0, 10) == key([1.0], [np.nan], 0, 10)


def test_float32_keys_hash_the_float32_bits():
  """The evaluator's float32 errors are hashed in their own precision (two to a word): signed
  zeros and NaNs fold as in float64, one ulp changes the key, an odd count of errors works."""
  f32 = lambda values: np.array([values], np.float32)
  f32_key = lambda train, valid: fingerprint_keys(f32(train), f32(valid), [0], [10])[0]
  nan = np.frombuffer(np.array([0x7FC00001], np.uint32).tobytes(), np.float32)[0]
  assert f32_key([0.0, 1.0], [-0.0]) == f32_key([-0.0, 1.0], [0.0])
  assert f32_key([1.0, nan], [2.0]) == f32_key([1.0, np.nan], [2.0])
  assert f32_key([1.0, 2.0], [3.0]) != f32_key([1.0, np.nextafter(np.float32(2), 3)], [3.0])
  assert f32_key([1.0, 2.0], [3.0]) != f32_key([1.0], [2.0, 3.0])


def test_key_distinguishes_every_part():
  first = key(TRAIN, VALID, 3, 100)
  assert first != key(TRAIN, VALID, 4, 100)  # task index
  assert first != key(TRAIN, VALID, 3, 0)  # budget-rejected run
  assert first != key(TRAIN[:2], TRAIN[2:] + VALID, 3, 100)  # split point
  assert first != key(TRAIN, [np.nan, np.nan], 3, 100)  # aborted run: no valid errors
  nudged = [TRAIN[0], np.nextafter(TRAIN[1], 1.0), TRAIN[2]]
  assert first != key(nudged, VALID, 3, 100)  # exact bits, no rounding


def test_fill_keeps_count_and_position():
  cache = FecCache(cache_size=2, forget_every=3)
  found = cache.lookup_batch([1, 2, 1])  # a miss, a miss, a hit on the first placeholder
  assert found.missed.tolist() == [0, 1] and found.pending.tolist() == [[2, 0]]
  cache.fill([0.5, 0.2])
  cache.insert(3, 0.3)  # evicts 2, the least recently used
  assert 2 not in cache
  assert cache.lookup(1) == 0.5 and 1 not in cache  # the third count forgets it


def test_fill_of_an_evicted_placeholder_changes_nothing():
  cache = FecCache(cache_size=1)
  cache.lookup_batch([1, 2])  # 2 evicts 1's placeholder
  cache.fill([0.1, 0.2])
  assert 1 not in cache and cache.lookup(2) == 0.2


def test_lookup_batch_reserves_misses_for_later_duplicates():
  cache = FecCache(forget_every=3)
  cache.insert(1, 0.5)
  found = cache.lookup_batch([2, 1, 2, 2, 1])
  assert found.fitness.tolist() == [0.0, 0.5, 0.0, 0.0, 0.5]
  assert found.missed.tolist() == [0] and found.pending.tolist() == [[2, 0], [3, 0]]
  assert (cache.hits, cache.misses) == (4, 1)
  assert 1 not in cache and 2 not in cache  # both reached the third count
  cache.fill([0.7])  # the placeholder of key 2 was forgotten at count 3: nothing comes back
  assert len(cache) == 0


def test_lookup_batch_forgets_within_a_batch_and_points_hits_at_the_latest_miss():
  cache = FecCache(forget_every=3)
  found = cache.lookup_batch([7, 7, 7, 7, 7])
  # Miss (count 1), two hits on the placeholder (the second forgets it), miss again, one hit.
  assert found.missed.tolist() == [0, 3]
  assert found.pending.tolist() == [[1, 0], [2, 0], [4, 3]]
  assert (cache.hits, cache.misses) == (3, 2)


def test_lookup_batch_evicts_like_insert():
  cache = FecCache(cache_size=2)
  assert cache.lookup_batch([1, 2, 3]).missed.tolist() == [0, 1, 2]
  assert 1 not in cache and len(cache) == 2


def test_an_eviction_before_a_keys_first_use_in_the_batch_makes_that_use_a_miss():
  cache = FecCache(cache_size=3)
  cache.lookup_batch([1, 2, 3])
  cache.fill([0.1, 0.2, 0.3])
  # 4 evicts 1 (the least recently used), so 1 misses and evicts 2, and 5 evicts 3.
  found = cache.lookup_batch([4, 1, 5])
  assert found.missed.tolist() == [0, 1, 2] and found.pending.size == 0
  assert cache.state().keys.tolist() == [4, 1, 5]
  assert (cache.conflicted_batches, cache.sequential_batches) == (1, 0)
  # 6 evicts 4; 1 was used before the next eviction, which takes 5 instead.
  cache.fill([0.4, 0.1, 0.5])
  found = cache.lookup_batch([6, 1, 7])
  assert found.missed.tolist() == [0, 2] and found.fitness.tolist() == [0.0, 0.1, 0.0]
  assert cache.state().keys.tolist() == [6, 1, 7] and 5 not in cache


class OneAtATime:
  """The original's LRU cache written out: keys looked up one after another, a miss inserting a
  placeholder that `fill` sets once the batch is evaluated."""

  def __init__(self, cache_size, forget_every):
    self.size, self.forget = cache_size, forget_every
    self.entries = collections.OrderedDict()  # key -> [fitness or ("pending", position), count]
    self.hits = self.misses = 0

  def lookup_batch(self, keys):
    fitness, missed, pending, self.placeholders = [], [], [], []
    for position, key in enumerate(keys):
      entry = self.entries.get(key)
      if entry is None:
        entry = self.entries[key] = [("pending", position), 1]
        if len(self.entries) > self.size:
          self.entries.popitem(last=False)
        self.misses += 1
        missed.append(position)
        fitness.append(0.0)
        self.placeholders.append(entry)
        continue
      self.hits += 1
      entry[1] += 1
      if self.forget and entry[1] >= self.forget:
        del self.entries[key]
      else:
        self.entries.move_to_end(key)
      if isinstance(entry[0], tuple):
        pending.append([position, entry[0][1]])
        fitness.append(0.0)
      else:
        fitness.append(entry[0])
    return fitness, missed, pending

  def fill(self, fitness):
    for entry, value in zip(self.placeholders, fitness):
      entry[0] = value


@pytest.mark.parametrize("cache_size,forget_every,num_keys", [
    (3, 0, 12), (3, 2, 12), (5, 3, 12), (8, 4, 12), (100, 3, 12), (40, 0, 60), (40, 5, 60)])
def test_lookup_batch_equals_looking_the_keys_up_one_at_a_time(cache_size, forget_every,
                                                                 num_keys):
  """Random batches with many repeats, evictions and forgetting: the outcome of every batch and
  the cache after it (LRU order, fitness, counts) equal the one-at-a-time original's."""
  rng = np.random.default_rng(cache_size * 10 + forget_every)
  cache, reference = FecCache(cache_size, forget_every), OneAtATime(cache_size, forget_every)
  num_batches = 150
  for batch in range(num_batches):
    keys = rng.integers(0, num_keys, rng.integers(1, 16)).tolist()
    found = cache.lookup_batch(keys)
    fitness, missed, pending = reference.lookup_batch(keys)
    assert found.fitness.tolist() == fitness, batch
    assert found.missed.tolist() == missed, batch
    assert found.pending.tolist() == pending, batch
    values = (batch + np.arange(len(missed))) / 1000
    cache.fill(values)
    reference.fill(values)
    state = cache.state()
    assert state.keys.tolist() == list(reference.entries), batch
    assert state.fitness.tolist() == [entry[0] for entry in reference.entries.values()], batch
    assert state.counts.tolist() == [entry[1] for entry in reference.entries.values()], batch
    assert (state.hits, state.misses) == (reference.hits, reference.misses), batch
  # Every path was checked: the array path; its evictions of keys the batch uses later (only with
  # fewer slots than keys); the sequential path for batches that would evict more entries than
  # they leave alone (only with fewer slots than a batch's keys).
  assert cache.sequential_batches < num_batches
  assert (cache.conflicted_batches > 0) == (cache_size < num_keys)
  assert (cache.sequential_batches > 0) == (cache_size < 15)  # batches hold up to 15 keys


@pytest.mark.parametrize("size", [1, 2, 7, 1000, 70000])
def test_grouped_is_the_stable_argsort(size):
  """Keys spread over 64 bits (the one-sort path) and small keys that share their high bits (the
  fallback) give the stable argsort."""
  rng = np.random.default_rng(size)
  for high in (2**64, 2 * size):
    distinct = rng.integers(0, high, max(size // 3, 1), dtype=np.uint64)
    keys = distinct[rng.integers(0, distinct.size, size)]
    order, ordered = grouped(keys)
    np.testing.assert_array_equal(order, np.argsort(keys, kind="stable"))
    np.testing.assert_array_equal(ordered, keys[order])


def test_row_hashes_are_equal_for_equal_rows_and_differ_in_both_halves_for_any_change():
  rng = np.random.default_rng(0)
  table = rng.normal(size=(6, 40))
  lengths = rng.integers(0, 9, (6, 3)).astype(np.int32)
  allowed = np.ones((6, 4), bool)
  base = row_hashes(table, lengths, allowed)
  assert base.shape == (6, 2) and base.dtype == np.uint64
  np.testing.assert_array_equal(row_hashes(table.copy(), lengths, allowed), base)
  assert len({tuple(h) for h in base.tolist()}) == 6
  changed = [(table.copy(), lengths, allowed) for _ in range(3)]
  changed[0][0][2, 17] = np.nextafter(table[2, 17], np.inf)  # one bit of one float
  changed[1] = (table, lengths.copy(), allowed)
  changed[1][1][2, 1] += 1
  changed[2] = (table, lengths, allowed.copy())
  changed[2][2][2, 3] = False
  for columns in changed:
    hashes = row_hashes(*columns)
    assert (hashes[2] != base[2]).all()
    np.testing.assert_array_equal(np.delete(hashes, 2, axis=0), np.delete(base, 2, axis=0))
  # A word's place counts: the same values in another order hash differently.
  assert (row_hashes(table[:, ::-1], lengths, allowed) != base).all()


def test_memo_finds_what_it_holds_and_forgets_the_oldest_first():
  """Random adds and lookups against an insertion-ordered dict of the same capacity."""
  rng = np.random.default_rng(1)
  memo, reference = FingerprintMemo(7, 2), collections.OrderedDict()
  for _ in range(60):
    program_keys = rng.integers(0, 12, (rng.integers(1, 6), 1)).astype(np.uint64) * [1, 3]
    slots = memo.find(program_keys)
    assert (slots >= 0).tolist() == [int(k) in reference for k in program_keys[:, 0]]
    keys, steps = memo.values(slots[slots >= 0])
    expected = [reference[int(k)] for k in program_keys[slots >= 0, 0]]
    assert [(a.tolist(), b.tolist()) for a, b in zip(keys, steps)] == expected
    new = program_keys[slots < 0]
    values = rng.integers(0, 2**20, (len(new), 2))
    memo.add(new, values.astype(np.uint64), values)
    for key, value in zip(new[:, 0].tolist(), values.tolist()):
      if key not in reference:
        reference[key] = (value, value)
        if len(reference) > 7:
          reference.popitem(last=False)
    assert len(memo) == len(reference)


def test_memo_checks_the_second_half_of_a_key():
  memo = FingerprintMemo(4, 1)
  memo.add(np.array([[5, 1]], np.uint64), np.array([[9]], np.uint64), np.array([[3]]))
  assert memo.find(np.array([[5, 1], [5, 2], [6, 1]], np.uint64)).tolist() == [0, -1, -1]
  # A key sharing a held first half is not added (the memo only spares recomputation).
  memo.add(np.array([[5, 2]], np.uint64), np.array([[8]], np.uint64), np.array([[4]]))
  assert len(memo) == 1 and memo.values(np.array([0]))[0].tolist() == [[9]]


def test_error_sums_pad_narrower_task_groups_with_nan():
  """A task group with fewer fingerprint examples than the widest hashes its errors padded with
  NaN to the common width, [programs, tasks, errors] at once, as the keys of single lanes do."""
  rng = np.random.default_rng(0)
  train, valid = rng.normal(size=(3, 2, 3)).astype(np.float32), np.zeros((3, 2, 1), np.float32)
  sums = np.asarray(error_sums(train, valid, np.array([5, 7]), 4, 2))
  padded = lambda errors, width: np.concatenate(
      [errors, np.full((*errors.shape[:-1], width - errors.shape[-1]), np.nan, np.float32)], -1)
  lanes = fingerprint_keys(padded(train, 4).reshape(6, 4), padded(valid, 2).reshape(6, 2),
                           np.tile([5, 7], 3), np.tile([100, 0], 3))
  np.testing.assert_array_equal(with_train_steps(sums, np.array([100, 0])).ravel(), lanes)
