"""Search fitness (REFERENCE.md §5.1, §6, §12): batches of programs on T_search, with FEC.

For a batch of programs, in order:
1. the train budget decides each task's N on the *unstripped* program (N or 0);
2. dead code is stripped, so programs that differ only there share one fingerprint;
3. with FEC: each stripped program is fingerprinted by a short run (the first 10 train and 10 valid
   examples of every task, one fixed PRNG key), memoised per stripped program (the run is
   deterministic, so a repeat would give the same errors and steps); then one LRU lookup per
   (program, task) in batch order. A fingerprint that missed earlier in the same batch is a hit
   and shares the fitness evaluated for it, as in the one-at-a-time original;
4. the full evaluation runs only for programs with a missed task, packed into a smaller batch;
5. per-task fitness is combined by mean (or the upper median).
Train steps count as §4.6: every fingerprint step (memoised ones too), and full-run steps of the
misses.

Hurdles (REFERENCE.md §13.2, `hurdle_tasks` = H > 0): steps 3-4 run first on the first H tasks;
a program goes on to the other tasks only if its fitness there (combined as in 5) reaches its
hurdle. The remaining tasks are a second round of lookups and a second compacted full run. A
program stopped at the hurdle counts its unevaluated tasks as 0 (kMinFitness): the mean and the
median only grow when a per-task fitness grows, so its fitness is a lower bound of the fitness a
full evaluation would give, and it never ranks above a program it would have lost to. Its train
steps are those of the tasks it was evaluated on (its fingerprints of the other tasks, computed in
the same call as the others for batching, count only if it goes on). FEC caches per-task fitness
of full runs only: unevaluated tasks are neither looked up nor inserted.

Task mixes (`island_tasks`, a [K, T] mask): T_search is the union of several task families and
each island searches only its row's tasks. A program's lanes (program, task) outside its island's
row are never looked up, run or counted, and its fitness combines only its island's tasks; each
full-run round runs one compiled call per family block (tasks with the same islands), on the
programs that have a lane there. Hurdle tasks are the first H of each island's tasks. FEC keys
include the task, so one cache serves every family. (The fingerprint run still covers every task
of the union: its results outside a program's island are unused.)

Islands: each program of a batch belongs to an island. Each island has its own PRNG key and
full-run call count (its random draws are those of a one-island search with its key), and with
`fec_scope="island"` its own cache; the fingerprint memo is shared (the runs are deterministic),
and so are the compiled calls: all islands' programs go through one pass of each stage.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from azero_jax import evaluator
from azero_jax.program import COMPONENTS, PackedPopulation, Program, ProgramBatch
from azero_jax.search.budget import TrainBudget
from azero_jax.search.dead_code import strip_packed
from azero_jax.search.fec import (
  DEFAULT_CACHE_SIZE,
  DEFAULT_FORGET_EVERY,
  FecCache,
  FingerprintMemo,
  error_sums,
  row_hashes,
  with_train_steps,
)
from azero_jax.search.randomizer import Memory, read_columns
from azero_jax.tasks.task import Task, TaskBatch, stack_tasks

FEC_SEED = 235732282  # the original reseeds its FEC RNG to this constant
COMBINATIONS = ("mean", "median")
FEC_SCOPES = ("shared", "island")


@dataclasses.dataclass(frozen=True)
class FecSpec:
  """FEC settings (REFERENCE.md §6.1)."""

  num_train_examples: int = 10
  num_valid_examples: int = 10
  cache_size: int = DEFAULT_CACHE_SIZE
  forget_every: int = DEFAULT_FORGET_EVERY


class Evaluation(NamedTuple):
  fitness: np.ndarray  # [n] combined over tasks
  train_steps: np.ndarray  # [n] train steps each program used (§4.6)
  hurdle_fitness: np.ndarray | None = None  # [n] combined over the hurdle tasks (with hurdles)


def combine(per_task: np.ndarray, mode: str = "mean", mask: np.ndarray | None = None
            ) -> np.ndarray:
  """Combines [n, T] per-task fitness: mean, or the element at T // 2 after sorting (median).

  With `mask` [n, T] each row combines only its masked tasks (in task order, so an all-True mask
  gives exactly the unmasked result); rows with the same mask are combined together."""
  if mask is not None and len(mask) and (mask == mask[0]).all():  # one pattern (most searches)
    per_task, mask = per_task[:, mask[0]], None
  if mask is not None:
    combined = np.empty(len(per_task))
    patterns, inverse = np.unique(mask, axis=0, return_inverse=True)
    for index, columns in enumerate(patterns):
      rows = inverse.ravel() == index
      combined[rows] = combine(per_task[np.ix_(rows, columns)], mode)
    return combined
  if mode == "mean":
    return per_task.mean(axis=1)
  return np.sort(per_task, axis=1)[:, per_task.shape[1] // 2]


def first_occurrences(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """For rows `keys` [n, 2]: the index of each distinct row's first occurrence, in order of
  appearance, and for every row the position of its distinct row in that list."""
  order = np.lexsort(keys.T[::-1])  # stable: equal rows keep their order
  ordered = keys[order]
  starts = np.ones(len(keys), dtype=bool)
  starts[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
  group = np.empty(len(keys), np.int64)
  group[order] = np.cumsum(starts) - 1  # distinct rows numbered in sorted order
  first = order[starts]
  rank = np.empty(first.size, np.int64)
  rank[np.argsort(first)] = np.arange(first.size)
  return np.sort(first), rank[group]


def compact_bucket(count: int, largest: int, minimum: int = 16) -> int:
  """The smallest of largest, largest / 2, largest / 4, ... (at least `minimum`) holding count.

  Halving keeps the number of compiled shapes small (log2(largest / minimum) + 1 per call site)
  while padding at most doubles the work.
  """
  size = largest
  while size // 2 >= max(count, minimum):
    size //= 2
  return size


# The fixed work of a compiled call in lanes' slot work (a slot of one program on one task):
# ~300 per loop iteration over slots and ~900 per example (XLA:CPU, 2 host devices, demo programs:
# ~3 and ~9 us against ~10 ns a lane; RESULTS.md, seventh session). Splitting rows into calls by
# their lengths saves slot work, and each call pays these.
ITERATION_LANES = 300
EXAMPLE_LANES = 900
MAX_LENGTH_GROUPS = 4


def length_groups(lengths: np.ndarray, examples: tuple[int, int], num_tasks: int, largest: int,
                  max_groups: int = MAX_LENGTH_GROUPS) -> list[np.ndarray]:
  """The rows of stripped programs (`lengths` [n, 3]: Setup, Predict, Learn) split into at most
  `max_groups` compiled calls so as to minimise the estimated work.

  A call loops as far as its longest Setup, Predict and Learn, padded to `compact_bucket` rows on
  `num_tasks` tasks with `examples` (train, valid) per epoch, and pays `ITERATION_LANES` per loop
  iteration and `EXAMPLE_LANES` per example. Stripped programs are short or empty more often than
  not (the demo: a third have neither Predict nor Learn), so rows of similar length go together.
  Groups are ranges of the rows sorted by their loop length; returns each group's row indices,
  shortest first.
  """
  train, valid = examples
  # A row's own loop length but for Setup, which runs once (fewer classes, the same order).
  own = train * (lengths[:, 1] + lengths[:, 2]) + valid * lengths[:, 1]
  order = np.argsort(own, kind="stable")
  starts = np.flatnonzero(np.diff(own[order], prepend=-1))  # each class's first row
  bounds = np.append(starts, own.size)
  num_classes = starts.size
  if num_classes == 1:
    return [order]
  # [a, b, 3]: the longest components of classes a..b (a <= b).
  upper = np.triu(np.ones((num_classes, num_classes), dtype=bool))[..., None]
  longest = np.maximum.accumulate(
    np.where(upper, np.maximum.reduceat(lengths[order], starts)[None], 0), axis=1)
  iterations = (longest[..., 0] + train * (longest[..., 1] + longest[..., 2] + 1)
                + valid * (longest[..., 1] + 1))
  fixed = (train + valid) * EXAMPLE_LANES
  sizes = np.array([compact_bucket(count, largest) for count in (1 << np.arange(
    int(largest).bit_length()))])  # the compact buckets, ascending
  rows = np.maximum(bounds[None, 1:] - bounds[:-1, None], 1)
  padded = sizes[np.minimum(np.searchsorted(sizes, rows), sizes.size - 1)]
  work = np.where(upper[..., 0], iterations * (ITERATION_LANES + padded * num_tasks) + fixed,
                  np.inf)
  # best[g][b]: the least work for classes 0..b in exactly g + 1 calls, first[g][b] the start
  # of the last of them.
  best, first = [work[0]], [np.zeros(num_classes, np.int64)]
  for _ in range(1, max_groups):
    split = best[-1][:-1, None] + work[1:]  # [a - 1, b]: calls for 0..a - 1, then one for a..b
    first.append(np.argmin(split, axis=0) + 1)
    best.append(split.min(axis=0))
  cuts, end = [], num_classes
  for calls in range(int(np.argmin([b[-1] for b in best])), -1, -1):
    cuts.append((int(first[calls][end - 1]), end))
    end = cuts[-1][0]
  return [order[bounds[a]:bounds[b]] for a, b in reversed(cuts)]


def fingerprint_task(task: Task, num_train: int, num_valid: int) -> Task:
  """The task cut to its first train and valid examples, one epoch in stored order (§4.5)."""
  train, valid = min(num_train, task.num_train_examples), min(num_valid, task.num_valid_examples)
  return Task(task.x_train[:train], task.y_train[:train], task.x_valid[:valid],
              task.y_valid[:valid], task.eval_type, np.arange(train, dtype=np.int32)[None])


class _Group(NamedTuple):
  """Tasks that share one compiled evaluator call (feature size, eval type)."""

  indices: np.ndarray  # positions in T_search
  config: evaluator.Config
  tasks: TaskBatch  # on the devices (evaluator.place_tasks)
  fingerprint_config: evaluator.Config | None
  fingerprint_tasks: TaskBatch | None
  task_index: jax.Array | None  # `indices` on the devices (fingerprint keys hash them)


class SearchEvaluator:
  """Fitness of batches of programs on T_search, with per-experiment FEC cache and step count.

  `widths` (Setup, Predict, Learn) is the padded length of every packed program: the largest size
  a program can reach. `batch_size` is the largest batch `evaluate` gets; it and the widths fix
  the compiled shapes for the whole search. `keys` holds one PRNG key per island (a single key:
  one island); `fec_scope` is "shared" (one cache for all islands) or "island". With
  `hurdle_tasks` H > 0 the programs are evaluated on the first H tasks first (see the module
  docstring). `island_tasks` [K, T] says which tasks each island's programs are evaluated on
  (default: all; a task mix, see the module docstring).
  """

  def __init__(self, tasks: Sequence[Task], *, memory: Memory, op_lists, widths: Sequence[int],
               batch_size: int, keys, fec: FecSpec | None = None,
               budget: TrainBudget | None = None, combination: str = "mean",
               dtype: str = "float32", max_abs_error: float = 100.0, fec_scope: str = "shared",
               hurdle_tasks: int = 0, island_tasks: np.ndarray | None = None):
    if combination not in COMBINATIONS:
      raise ValueError(f"combination must be one of {COMBINATIONS}, got {combination!r}")
    if fec_scope not in FEC_SCOPES:
      raise ValueError(f"fec_scope must be one of {FEC_SCOPES}, got {fec_scope!r}")
    keys = jnp.stack(list(keys)) if isinstance(keys, (list, tuple)) else keys
    keys = keys[None] if keys.ndim == 0 else keys
    self.num_islands = keys.shape[0]
    self.island_tasks = (np.ones((self.num_islands, len(tasks)), dtype=bool)
                         if island_tasks is None else np.asarray(island_tasks, dtype=bool))
    if self.island_tasks.shape != (self.num_islands, len(tasks)):
      raise ValueError(f"island_tasks must have shape {(self.num_islands, len(tasks))} (islands, "
                       f"tasks), got {self.island_tasks.shape}")
    fewest = int(self.island_tasks.sum(axis=1).min())
    if not 0 <= hurdle_tasks < fewest:
      raise ValueError(f"hurdle_tasks must be in [0, {fewest}), got {hurdle_tasks}")
    self.tasks = list(tasks)
    self.widths = tuple(int(w) for w in widths)
    self.bucket = evaluator.bucket(batch_size, minimum=8)
    self.fec = fec
    self.budget = budget
    self.combination = combination
    num_caches = self.num_islands if fec_scope == "island" else 1
    self.caches = ([FecCache(fec.cache_size, fec.forget_every) for _ in range(num_caches)]
                   if fec else [])
    self.num_train_steps = np.array([t.num_train_examples * t.num_epochs for t in self.tasks])
    self.full_evaluations = 0  # programs run on the full tasks (with hurdles: per round)
    self.fingerprint_runs = 0  # programs run on the fingerprint tasks
    self.hurdle_tasks = hurdle_tasks
    self.stopped_at_hurdle = 0  # programs not evaluated beyond the hurdle tasks
    # Fingerprint keys and steps by stripped program and allowed tasks.
    self._memo = FingerprintMemo(fec.cache_size, len(self.tasks)) if fec else None
    self._keys = evaluator.replicated(keys)  # [K], for batches of several islands
    self._island_keys = [evaluator.replicated(key) for key in keys]  # for one island's batch
    self._fec_key = evaluator.replicated(jax.random.key(FEC_SEED))
    self._calls = np.zeros(self.num_islands, np.int64)  # full-run calls per island
    op_sets = tuple(evaluator.normalize_op_set(ops_) for ops_ in op_lists)
    # Per function, the table columns its instructions can read: the memo's keys hash only these.
    self._read_columns = tuple(read_columns(op_set) for op_set in op_sets)

    def config(eval_type: str, tasks: TaskBatch, record: bool) -> evaluator.Config:
      """The group's evaluator config, its execution chosen once (not on every call)."""
      made = evaluator.Config(memory.num_scalars, memory.num_vectors, memory.num_matrices,
                              op_sets, eval_type, dtype, float(max_abs_error), record,
                              tasks.ragged)
      return made._replace(execution=evaluator.choose_execution(made, tasks.x_train.shape[-1]))

    def task_groups(positions, fingerprints: bool) -> list[_Group]:
      groups: dict[tuple, list[int]] = {}
      for index in positions:
        groups.setdefault(self.tasks[index].group_key, []).append(index)
      made = []
      for (_, eval_type), indices in groups.items():
        full = stack_tasks([self.tasks[i] for i in indices])
        short = short_config = task_index = None
        if fingerprints:
          short = stack_tasks([fingerprint_task(self.tasks[i], fec.num_train_examples,
                                                fec.num_valid_examples) for i in indices])
          short_config = config(eval_type, short, True)
          short = evaluator.place_tasks(short, dtype)
          task_index = evaluator.replicated(np.array(indices))
        made.append(_Group(np.array(indices), config(eval_type, full, False),
                           evaluator.place_tasks(full, dtype), short_config, short, task_index))
      return made

    num_tasks = len(self.tasks)
    self._groups = task_groups(range(num_tasks), fec is not None)
    # The train and valid errors of a fingerprint (the most of any task group; keys pad the rest).
    self._fingerprint_widths = tuple(
        max(getattr(g.fingerprint_tasks, name).shape[-1] for g in self._groups)
        for name in ("y_train", "y_valid")) if fec else None
    # [K, T]: each island's hurdle tasks, the first H of its tasks.
    self._hurdle_lanes = self.island_tasks & (np.cumsum(self.island_tasks, axis=1)
                                              <= hurdle_tasks)
    # The lanes [K, T] of each full-run round (all tasks, or the hurdle tasks and the others), in
    # family blocks (tasks evaluated by the same islands), each block with its task groups.
    blocks = np.unique(self.island_tasks, axis=1, return_inverse=True)[1].ravel()
    rounds = ([self.island_tasks] if not hurdle_tasks else
              [self._hurdle_lanes, self.island_tasks & ~self._hurdle_lanes])
    self._rounds = []
    for lanes in rounds:
      split = []
      for block in np.unique(blocks):
        columns = lanes & (blocks == block)[None, :]
        indices = np.nonzero(columns.any(axis=0))[0]
        if indices.size:
          split.append((columns, self._groups if indices.size == num_tasks
                        else task_groups(indices, False)))
      self._rounds.append(split)

  @property
  def hit_rate(self) -> float:
    """FEC hits / lookups in this experiment over all islands (0 without FEC)."""
    lookups = sum(cache.hits + cache.misses for cache in self.caches)
    return sum(cache.hits for cache in self.caches) / lookups if lookups else 0.0

  def state(self) -> dict:
    """What resuming the search needs: the counters, the full-run PRNG call counts and the FEC
    caches. The fingerprint memo is left out: it only spares recomputing deterministic runs."""
    return {"calls": self._calls.tolist(), "full_evaluations": self.full_evaluations,
            "fingerprint_runs": self.fingerprint_runs,
            "stopped_at_hurdle": self.stopped_at_hurdle,
            "caches": [cache.state() for cache in self.caches]}

  def restore(self, state: dict) -> None:
    """Continues from `state()` of an evaluator built with the same tasks, keys and settings."""
    self._calls = np.array(state["calls"], np.int64).reshape(self.num_islands)
    self.full_evaluations = int(state["full_evaluations"])
    self.fingerprint_runs = int(state["fingerprint_runs"])
    self.stopped_at_hurdle = int(state["stopped_at_hurdle"])
    for cache, saved in zip(self.caches, state["caches"], strict=True):
      cache.restore(saved)

  def evaluate(self, programs: Sequence[Program], islands: np.ndarray | None = None,
               hurdles: np.ndarray | None = None) -> Evaluation:
    """Combined fitness and train steps of each program (a ProgramBatch, or any sequence of
    Programs); `islands` [n] says which island each belongs to (default: island 0); with
    `hurdle_tasks`, `hurdles` [n] the fitness each needs on them to go on (default: none)."""
    return finish(self.stages(programs, islands, hurdles))

  def stages(self, programs: Sequence[Program], islands: np.ndarray | None = None,
             hurdles: np.ndarray | None = None) -> Generator[None, None, Evaluation]:
    """`evaluate` as a generator that pauses after dispatching the fingerprint run and after
    dispatching each round of full runs (one, or two with hurdles; one per family block of a
    task mix), so that the caller can do host work for other islands meanwhile. Stages of two
    batches may interleave as long as a batch's cache lookups (from its second stage on) start
    after the previous batch finished."""
    if len(programs) > self.bucket:
      raise ValueError(f"a batch of {len(programs)} programs exceeds batch_size {self.bucket}")
    islands = (np.zeros(len(programs), np.int64) if islands is None
               else np.asarray(islands, np.int64))
    tasks = self.island_tasks[islands]  # [n, T]: the tasks each program is evaluated on
    allowed = self._allowed(programs) & tasks
    stripped = strip_packed(ProgramBatch.of(programs).packed, self.widths)
    memo = self._memo_lookup(stripped, allowed) if self.caches else None
    yield
    keys = fingerprint_steps = None
    if self.caches:
      keys, fingerprint_steps = self._fingerprints(memo, allowed)
    count, num_tasks = allowed.shape
    per_task = np.zeros((count, num_tasks))
    steps = np.zeros((count, num_tasks), dtype=np.int64)
    evaluated = np.zeros((count, num_tasks), dtype=bool)
    going_on = np.ones(count, dtype=bool)
    hurdle_fitness = None
    for position, blocks in enumerate(self._rounds):
      if position:  # the hurdle: programs below it stop
        hurdle_fitness = combine(per_task, self.combination, self._hurdle_lanes[islands])
        if hurdles is not None:
          going_on = hurdle_fitness >= hurdles
        self.stopped_at_hurdle += int(np.sum(~going_on))
      for columns, groups in blocks:
        lanes = going_on[:, None] & columns[islands]
        fitness, used = yield from self._round(stripped, keys, allowed, islands, lanes, groups)
        per_task = np.where(lanes, fitness, per_task)
        steps, evaluated = steps + used, evaluated | lanes
    if fingerprint_steps is not None:
      steps = steps + np.where(evaluated, fingerprint_steps, 0)
    return Evaluation(combine(per_task, self.combination, tasks), steps.sum(axis=1),
                      hurdle_fitness)

  def _round(self, stripped: PackedPopulation, keys: np.ndarray | None, allowed: np.ndarray,
             islands: np.ndarray, lanes: np.ndarray, groups: list[_Group]):
    """Fitness and full-run train steps [n, T] of the (program, task) `lanes` (0 elsewhere): FEC
    lookups in batch order, then one full run of the programs with a missed lane, dispatched
    before the one pause of this generator and collected after it."""
    if self.caches:
      cached, missed, sources, filled = self._lookup(keys, islands, lanes)
    else:
      missed = lanes
    full = self._dispatch_run(stripped, missed.any(axis=1), allowed & lanes, islands, groups)
    yield
    full, full_steps = self._collect_run(full, len(missed), allowed & lanes)
    if not self.caches:
      return full, full_steps
    per_task = np.where(missed, full, cached)
    flat = per_task.ravel()
    for cache, cache_lanes in zip(self.caches, filled):
      cache.fill(flat[cache_lanes])
    pending = sources >= 0
    per_task[pending] = flat[sources[pending]]
    return per_task, np.where(missed, full_steps, 0)

  def _allowed(self, programs: Sequence[Program]) -> np.ndarray:
    """[n, T]: whether the budget lets each program train on each task (decided unstripped)."""
    if self.budget is None:
      return np.ones((len(programs), len(self.tasks)), dtype=bool)
    distinct = np.unique(self.num_train_steps)
    within = np.array([[self.budget.within(p, int(n)) for n in distinct] for p in programs])
    return within[:, np.searchsorted(distinct, self.num_train_steps)]

  def _memo_lookup(self, stripped: PackedPopulation, allowed: np.ndarray):
    """Memo lookups, and one fingerprint run dispatched for the programs never fingerprinted
    (each distinct one once, in order of first appearance)."""
    program_keys = row_hashes(*(c.table[..., :columns] for c, columns in
                                zip(stripped, self._read_columns)),
                              *(c.length[:, None] for c in stripped), allowed)
    slots = self._memo.find(program_keys)
    found = slots >= 0
    # Read now: another batch's fingerprints may evict these entries before this batch's.
    memoised = self._memo.values(slots[found])
    missing = np.flatnonzero(~found)
    first, source = first_occurrences(program_keys[missing])
    todo = missing[first]  # the rows to fingerprint
    results = self._dispatch_fingerprints(stripped.take(todo)) if todo.size else None
    return program_keys, found, memoised, todo, source, results

  def _fingerprints(self, memo, allowed: np.ndarray):
    """Cache keys [n, T] and fingerprint steps [n, T], from the memo and the dispatched run."""
    program_keys, found, memoised, todo, source, results = memo
    keys = np.empty(allowed.shape, np.uint64)
    steps = np.empty(allowed.shape, np.int64)
    keys[found], steps[found] = memoised
    if todo.size:
      sums, fresh_steps = self._collect_fingerprints(results, todo.size)
      fresh_keys = with_train_steps(sums, np.where(allowed[todo], self.num_train_steps, 0))
      keys[~found], steps[~found] = fresh_keys[source], fresh_steps[source]
      self._memo.add(program_keys[todo], fresh_keys, fresh_steps)
    return keys, steps

  def _dispatch_fingerprints(self, programs: PackedPopulation) -> list:
    """The short runs of `programs`, one compiled call per task group, and the sums of their
    fingerprint keys' error words (`fec.error_sums`, device arrays)."""
    self.fingerprint_runs += programs.size
    packed = evaluator.pad_population(programs, compact_bucket(programs.size, self.bucket))
    dispatched = []
    for group in self._groups:
      result = evaluator.run_packed(group.fingerprint_config, packed, group.fingerprint_tasks,
                                    self._fec_key)
      dispatched.append((error_sums(result.train_errors, result.valid_errors, group.task_index,
                                    *self._fingerprint_widths), result.train_steps))
    return dispatched

  def _collect_fingerprints(self, dispatched: list, count: int):
    """The error sums [m, T] (`fec.error_sums`) and train steps [m, T] of the short runs."""
    sums = np.zeros((count, len(self.tasks)), np.uint64)
    steps = np.zeros((count, len(self.tasks)), dtype=np.int64)
    for group, (group_sums, group_steps) in zip(self._groups, dispatched):
      sums[:, group.indices] = np.asarray(group_sums)[:count]
      steps[:, group.indices] = np.asarray(group_steps)[:count]
    return sums, steps

  def _lookup(self, keys: np.ndarray, islands: np.ndarray, todo: np.ndarray):
    """One cache lookup per (program, task) of `keys` [n, T] where `todo` [n, T], in batch order
    in its island's cache.

    Returns cached fitness [n, T], the misses [n, T] (inserted as placeholders), for hits on a
    placeholder the flat index of the lane that missed it (else -1), and per cache the flat
    indices of its misses (what its `fill` takes).
    """
    count, num_tasks = keys.shape
    fitness = np.zeros(count * num_tasks)
    missed = np.zeros(count * num_tasks, dtype=bool)
    sources = np.full(count * num_tasks, -1)
    scopes = ([np.arange(count)] if len(self.caches) == 1
              else [np.nonzero(islands == k)[0] for k in range(len(self.caches))])
    filled = []
    for cache, rows in zip(self.caches, scopes):
      lanes = (rows[:, None] * num_tasks + np.arange(num_tasks)).ravel()  # flat, increasing
      lanes = lanes[todo.ravel()[lanes]]
      found = cache.lookup_batch(keys.ravel()[lanes])
      fitness[lanes] = found.fitness
      missed[lanes[found.missed]] = True
      sources[lanes[found.pending[:, 0]]] = lanes[found.pending[:, 1]]
      filled.append(lanes[found.missed])
    shape = (count, num_tasks)
    return fitness.reshape(shape), missed.reshape(shape), sources.reshape(shape), filled

  def _dispatch_run(self, stripped: PackedPopulation, run: np.ndarray, allowed: np.ndarray,
                    islands: np.ndarray, groups: list[_Group]):
    """Full runs on the `groups`' tasks of the rows in `run` that may train somewhere, in calls
    by length (`length_groups`): (groups, [(rows, device results per task group)] per call).
    Each row's random draws use its island's key folded with the island's full-run call count,
    whichever call runs it."""
    rows = np.nonzero(run & allowed.any(axis=1))[0]
    if not rows.size:
      return groups, []
    self.full_evaluations += rows.size
    programs = stripped.take(rows)
    lengths = np.stack([c.length for c in programs], axis=1)
    examples = (max(g.tasks.y_train.shape[1] * g.tasks.orders.shape[1] for g in groups),
                max(g.tasks.y_valid.shape[1] * g.tasks.orders.shape[1] for g in groups))
    owners = islands[rows]
    folds = self._calls[owners]
    self._calls[np.unique(owners)] += 1
    calls = []
    for part in length_groups(lengths, examples, len(self.tasks), self.bucket):
      size = compact_bucket(part.size, self.bucket)
      packed = evaluator.pad_population(programs.take(part), size)
      owner = owners[part[0]]
      if (owners[part] == owner).all():  # one island's key, folded with its call count
        keys = {"key": self._island_keys[owner], "fold": int(folds[part[0]])}
      else:
        row_folds = np.zeros((size, 2), np.int64)  # padding rows copy the first row's key
        row_folds[:] = owner, folds[part[0]]
        row_folds[:part.size, 0] = owners[part]
        row_folds[:part.size, 1] = folds[part]
        keys = {"key": self._keys, "row_folds": row_folds}
      calls.append((rows[part], [evaluator.run_packed(group.config, packed, group.tasks, **keys)
                                 for group in groups]))
    return groups, calls

  def _collect_run(self, dispatched, count: int, allowed: np.ndarray):
    """Full-run fitness and train steps [n, T] (0 for rows not run and tasks not allowed)."""
    groups, calls = dispatched
    fitness = np.zeros((count, len(self.tasks)))
    steps = np.zeros((count, len(self.tasks)), dtype=np.int64)
    for rows, results in calls:
      for group, result in zip(groups, results):
        columns = np.ix_(rows, group.indices)
        fitness[columns] = np.asarray(result.fitness, dtype=np.float64)[:rows.size]
        steps[columns] = np.asarray(result.train_steps)[:rows.size]
    return np.where(allowed, fitness, 0.0), np.where(allowed, steps, 0)


def finish(stages: Generator[None, None, Evaluation]) -> Evaluation:
  """Runs a `SearchEvaluator.stages` generator to its end and returns its evaluation."""
  try:
    while True:
      next(stages)
  except StopIteration as done:
    return done.value


def search_widths(init_program: Program, max_sizes: Sequence[int]) -> tuple[int, ...]:
  """Largest reachable size per function: the initial program or max - 1 (insert's bound)."""
  return tuple(max(len(init_program.component(name)), int(size) - 1, 0)
               for name, size in zip(COMPONENTS, max_sizes))
