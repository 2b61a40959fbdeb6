"""The batched JAX evaluator: a whole population of programs on many tasks in one compiled call.

Layout (see BUILD_NOTES.md for the measurements behind it): `vmap` over programs and tasks,
`lax.scan` over examples, `fori_loop` over instruction slots. A slot computes every op of its
component's (static) op set and selects the result by op id with `where`, never a one-hot product.
Programs are data: new programs never recompile; only shapes and static configuration do.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from azero_jax import ops
from azero_jax.program import (
  COMPONENTS,
  PackedComponent,
  PackedPopulation,
  Program,
  pack,
  zero_padded,
)
from azero_jax.tasks.task import Task, TaskBatch, stack_tasks

DTYPES = {"float32": jnp.float32, "float64": jnp.float64}
# Phases of execution, folded into the PRNG key of random ops.
_SETUP, _TRAIN_PREDICT, _TRAIN_LEARN, _VALID_PREDICT = range(4)


class Config(NamedTuple):
  """Static configuration of one compiled evaluator (hashable: it is a jit static argument)."""

  num_scalars: int
  num_vectors: int
  num_matrices: int
  op_sets: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]  # Setup, Predict, Learn
  eval_type: str = "rms"
  dtype: str = "float32"
  max_abs_error: float = 100.0
  record_errors: bool = False  # also return per-example errors (FEC fingerprints)
  ragged: bool = False  # tasks are padded: mask examples and epochs beyond each task's counts
  # Instruction loops run to the padded width (a trip count XLA knows when compiling) instead of
  # the batch's longest program. None: static on accelerators, where a loop with a known trip
  # count needs no device-to-host copy of its condition per iteration (1.8x on a GPU); dynamic on
  # the CPU, where short batches then run short loops.
  static_loops: bool | None = None


class Memory(NamedTuple):
  scalars: jax.Array  # [S]
  vectors: jax.Array  # [V, F]
  matrices: jax.Array  # [M, F, F]


class LaneResult(NamedTuple):
  fitness: jax.Array  # best validation fitness over epochs
  train_steps: jax.Array  # training examples processed, counting the failing one
  train_errors: jax.Array | None  # [n_train] |y - s1| of epoch 0 (NaN after an abort)
  valid_errors: jax.Array | None  # [n_valid] epoch-0 validation errors (NaN after a failure)


def normalize_op_set(op_ids) -> tuple[int, ...]:
  """Sorted distinct op ids without NO_OP (which never writes)."""
  return tuple(sorted(set(int(i) for i in op_ids) - {ops.NO_OP}))


# ---------------------------------------------------------------------------------------------
# One lane: one program on one task.


def _register_names(op_set):
  """Which (operand slot, kind) reads and which output kinds the op set needs."""
  reads = {(slot, kind) for i in op_set for slot, kind in enumerate(ops.OPS[i].inputs)}
  writes = sorted({ops.OPS[i].output for i in op_set}, key=ops.KINDS.index)
  return reads, writes


def _run_component(config: Config, which: int, component: PackedComponent, count, memory: Memory,
                   key) -> Memory:
  """Runs instruction slots [0, count) of one component function on the memory."""
  op_set = config.op_sets[which]
  if not op_set:
    return memory
  reads, writes = _register_names(op_set)
  uniform = any(ops.OPS[i].data is ops.Data.UNIFORM for i in op_set)
  gaussian = any(ops.OPS[i].data is ops.Data.GAUSSIAN for i in op_set)
  dtype = DTYPES[config.dtype]
  size = memory.vectors.shape[-1]
  kind_index = {kind: position for position, kind in enumerate(ops.KINDS)}

  # Output kinds whose old value some op needs (the const-sets); the others skip reading it.
  reads_old = {ops.OPS[i].output for i in op_set if ops.OPS[i].reads_output}
  read_slots = {}  # kind -> operand positions read; both operands of a kind in one gather
  for position, kind in sorted(reads):
    read_slots.setdefault(kind, []).append(position)

  def body(slot, memory):
    row = PackedComponent(component.table[slot], None)
    op, out = row.op, row.out
    addresses = (row.in1, row.in2)
    data = (row.activation.astype(dtype), *row.floats)
    operand = {}
    for kind, positions in read_slots.items():
      bank = memory[kind_index[kind]]
      if len(positions) == 1:
        operand[(positions[0], kind)] = bank[addresses[positions[0]]]
      else:
        both = bank[jnp.stack([addresses[p] for p in positions])]
        for j, p in enumerate(positions):
          operand[(p, kind)] = both[j]
    shape = {kind: memory[kind_index[kind]].shape[1:] for kind in writes}
    old = {kind: memory[kind_index[kind]][out] if kind in reads_old else
           jnp.zeros(shape[kind], dtype) for kind in writes}
    slot_key = jax.random.fold_in(key, slot)
    rand = {
        ops.Data.UNIFORM: jax.random.uniform(slot_key, (size, size), dtype) if uniform else None,
        ops.Data.GAUSSIAN: jax.random.normal(slot_key, (size, size), dtype) if gaussian else None,
    }
    registers = list(memory)
    for kind in writes:
      result, written = None, False
      for op_id in op_set:
        spec = ops.OPS[op_id]
        if spec.output != kind:
          continue
        a, b = (operand.get((position, kind_)) for position, kind_ in
                zip((0, 1), spec.inputs + (None,) * (2 - spec.num_inputs)))
        value = spec.apply(jnp, a, b, old[kind], data, rand.get(spec.data))
        value = jnp.asarray(value, dtype).reshape(shape[kind])
        is_op = op == op_id
        result = value if result is None else jnp.where(is_op, value, result)
        written = is_op | written
      bank = registers[kind_index[kind]]
      if kind in reads_old:
        new = jnp.where(written, result, old[kind])
        registers[kind_index[kind]] = bank.at[out].set(new)
      else:
        target = jnp.where(written, out, bank.shape[0])
        registers[kind_index[kind]] = bank.at[target].set(result, mode="drop")
    return Memory(*registers)

  return jax.lax.fori_loop(0, count, body, memory)


def _sigmoid(x):
  return 1.0 / (1.0 + jnp.exp(-x))


def _flip_and_squash(x):
  squashed = 1.0 + ops.NEG_TWO_OVER_PI * jnp.arctan(x)
  return jnp.where(jnp.isfinite(x), squashed, 0.0)


def _with_input(memory: Memory, x, label) -> Memory:
  """The harness's writes before Predict/Learn: v0 = x, s0 = label."""
  return memory._replace(scalars=memory.scalars.at[0].set(label),
                         vectors=memory.vectors.at[0].set(x))


def _evaluate_lane(config: Config, program: PackedPopulation, counts, task: TaskBatch,
                   key) -> LaneResult:
  """Evaluates one program on one task (REFERENCE.md §4): the function that gets vmapped."""
  dtype = DTYPES[config.dtype]
  size = task.x_train.shape[-1]
  accuracy = config.eval_type == "accuracy"
  setup, predict, learn = program
  if config.static_loops:
    counts = tuple(component.table.shape[0] for component in program)
  n_setup, n_predict, n_learn = counts
  num_valid = task.y_valid.shape[0]
  num_train = task.y_train.shape[0]
  num_epochs = task.orders.shape[0]
  keys = [jax.random.fold_in(key, phase) for phase in range(4)]

  memory = Memory(jnp.zeros(config.num_scalars, dtype),
                  jnp.zeros((config.num_vectors, size), dtype),
                  jnp.zeros((config.num_matrices, size, size), dtype))
  memory = _run_component(config, 0, setup, n_setup, memory, keys[_SETUP])

  def masked(active, new, old):
    """Keeps `old` where a padded example or epoch is inactive (only for ragged batches)."""
    if not config.ragged:
      return new
    return jax.tree.map(lambda n, o: jnp.where(active, n, o), new, old)

  def train_step(carry, inputs):
    memory, alive, steps = carry
    step, index, active = inputs
    x, y = task.x_train[index], task.y_train[index]
    updated = _with_input(memory, x, jnp.zeros((), dtype))
    updated = _run_component(config, 1, predict, n_predict, updated,
                             jax.random.fold_in(keys[_TRAIN_PREDICT], step))
    if accuracy:
      updated = updated._replace(scalars=updated.scalars.at[1].set(_sigmoid(updated.scalars[1])))
    error = jnp.abs(y - updated.scalars[1])
    bad = (jnp.isnan(error) | (error > config.max_abs_error)) & active
    steps = steps + (alive & active)
    recorded = jnp.where(alive & active & ~bad, error, jnp.nan)
    alive = alive & ~bad
    updated = _with_input(updated, x, y)
    updated = _run_component(config, 2, learn, n_learn, updated,
                             jax.random.fold_in(keys[_TRAIN_LEARN], step))
    return (masked(active, updated, memory), alive, steps), (
        recorded if config.record_errors else None)

  def valid_step(carry, inputs):
    memory, ok, loss = carry
    step, x, y, active = inputs
    updated = _run_component(config, 1, predict, n_predict, _with_input(memory, x, 0.0),
                             jax.random.fold_in(keys[_VALID_PREDICT], step))
    logit = updated.scalars[1]
    if accuracy:
      error = jnp.where((y > 0.5) == (_sigmoid(logit) > 0.5), 0.0, 1.0).astype(dtype)
      term = error
    else:
      error = y - logit
      term = error * error
    bad = (jnp.isnan(error) | (jnp.abs(error) > config.max_abs_error)) & active
    # After a failed example the original stops validating: later examples leave memory alone.
    memory = jax.tree.map(lambda new, old: jnp.where(ok & active, new, old), updated, memory)
    recorded = jnp.where(ok & active & ~bad, error, jnp.nan)
    loss = loss + jnp.where(active, term, 0.0)
    return (memory, ok & ~bad, loss), recorded if config.record_errors else None

  def epoch(carry, inputs):
    memory, alive, steps, best = carry
    epoch_index, order = inputs
    epoch_active = epoch_index < task.num_epochs
    train_ids = epoch_index * num_train + jnp.arange(num_train)
    train_active = (jnp.arange(num_train) < task.num_train) & epoch_active
    (memory, alive_after, steps), train_errors = jax.lax.scan(
        train_step, (memory, alive, steps), (train_ids, order, train_active))
    valid_ids = epoch_index * num_valid + jnp.arange(num_valid)
    valid_active = (jnp.arange(num_valid) < task.num_valid) & epoch_active
    (memory, ok, loss), valid_errors = jax.lax.scan(
        valid_step, (memory, jnp.array(True), jnp.zeros((), dtype)),
        (valid_ids, task.x_valid, task.y_valid, valid_active))
    count = task.num_valid.astype(dtype)
    if accuracy:
      fitness = 1.0 - loss / count
    else:
      fitness = _flip_and_squash(jnp.sqrt(loss / count))
    fitness = jnp.where(ok, fitness, 0.0)
    best = jnp.where(alive_after & epoch_active, jnp.maximum(best, fitness), best)
    return (memory, alive_after, steps, best), (train_errors, valid_errors)

  init = (memory, jnp.array(True), jnp.zeros((), jnp.int32), jnp.zeros((), dtype))
  (_, _, steps, best), errors = jax.lax.scan(epoch, init, (jnp.arange(num_epochs), task.orders))
  if config.record_errors:
    train_errors, valid_errors = errors[0][0], errors[1][0]
    # Validation after an aborted first epoch never ran.
    valid_errors = jnp.where(jnp.isnan(train_errors).any(), jnp.nan, valid_errors)
    return LaneResult(best, steps, train_errors, valid_errors)
  return LaneResult(best, steps, None, None)


@functools.partial(jax.jit, static_argnums=(0, 2, 6, 7))
def _evaluate_batch(config: Config, table, widths: tuple[int, ...], counts, tasks: TaskBatch,
                    key, paired: bool = False, fold: bool = False, row_folds=None) -> LaneResult:
  """Lanes [P programs] x [T tasks], or [P] pairs (program i on task i) when `paired`.

  `table` holds the Setup, Predict and Learn tables of a PackedPopulation side by side (`widths`
  slots each: one transfer instead of three), `counts` their loop bounds (and, when `fold`, a
  number to fold into the key first). With `row_folds` [P, 2], `key` is a stack of keys and
  program i uses `fold_in(key[row_folds[i, 0]], row_folds[i, 1])` (one key per island). The task
  index is folded into the key, so identical programs get identical random draws.
  """
  starts = np.cumsum((0, *widths))
  programs = PackedPopulation(*(PackedComponent(table[:, start:stop], None)
                                for start, stop in zip(starts[:-1], starts[1:])))
  if fold:
    key = jax.random.fold_in(key, counts[3])
  counts = counts[:3]
  task_ids = jnp.arange(tasks.y_train.shape[0])
  task_keys = jax.vmap(lambda t: jax.random.fold_in(key, t))
  if paired:
    return jax.vmap(_evaluate_lane, in_axes=(None, 0, None, 0, 0))(
        config, programs, counts, tasks, task_keys(task_ids))
  per_task = jax.vmap(_evaluate_lane, in_axes=(None, None, None, 0, 0))
  if row_folds is None:
    return jax.vmap(per_task, in_axes=(None, 0, None, None, None))(
        config, programs, counts, tasks, task_keys(task_ids))
  program_keys = jax.vmap(lambda row: jax.random.fold_in(key[row[0]], row[1]))(row_folds)
  lane_keys = jax.vmap(lambda k: jax.vmap(lambda t: jax.random.fold_in(k, t))(task_ids))(
      program_keys)
  return jax.vmap(per_task, in_axes=(None, 0, None, None, 0))(
      config, programs, counts, tasks, lane_keys)


# ---------------------------------------------------------------------------------------------
# Host side: buckets, packing and the public API.


def bucket(n: int, minimum: int = 1) -> int:
  """Rounds up to a power of two so that few distinct shapes get compiled."""
  return max(minimum, 1 << max(0, int(n - 1).bit_length()))


@functools.cache
def _shardings(num_devices: int):
  """(split along the first axis, replicated) over all devices of the default backend."""
  mesh = Mesh(np.array(jax.devices()[:num_devices]), ("lanes",))
  return NamedSharding(mesh, PartitionSpec("lanes")), NamedSharding(mesh, PartitionSpec())


def _split(size: int):
  """The sharding that splits `size` lanes over all devices, or None (one device, or uneven)."""
  num_devices = jax.device_count()
  return None if num_devices < 2 or size % num_devices else _shardings(num_devices)[0]


def replicated(value):
  """`value` (e.g. a PRNG key) copied to all devices once, so that calls sharded over them do
  not copy it again each time (~0.1 ms per call on a 2-device CPU)."""
  num_devices = jax.device_count()
  return jax.device_put(value, _shardings(num_devices)[1] if num_devices > 1 else None)


def place_tasks(tasks: TaskBatch, dtype: str, paired: bool = False) -> TaskBatch:
  """Tasks as device arrays in the evaluator's dtype, for reuse across `run_packed` calls.

  Replicated over all devices (split like the population when `paired`). Placing a search's
  tasks once saves a host-to-device copy per call.
  """
  floats = {"x_train", "y_train", "x_valid", "y_valid"}
  tasks = TaskBatch(*(np.asarray(value, DTYPES[dtype] if name in floats else np.int32)
                      for name, value in zip(TaskBatch._fields, tasks)))
  if not paired:
    return replicated(tasks)
  return jax.device_put(tasks, _split(tasks.x_train.shape[0]))


def _placed(tasks: TaskBatch, dtype: str, paired: bool) -> bool:
  """Whether `tasks` came from `place_tasks` with this dtype."""
  return isinstance(tasks.x_train, jax.Array) and tasks.x_train.dtype == DTYPES[dtype] and (
      paired or jax.device_count() < 2 or len(tasks.x_train.sharding.device_set) > 1)


def run_packed(config: Config, packed: PackedPopulation, tasks: TaskBatch, key,
               counts=None, paired: bool = False, fold: int | None = None,
               row_folds: np.ndarray | None = None) -> LaneResult:
  """Evaluates a packed population; device arrays [P, T] (or [P] when `paired`).

  The population is split over all devices when its size is a multiple of the device count.
  `tasks` may be host arrays or, faster for repeated calls, the result of `place_tasks`.
  With `fold`, the key is `jax.random.fold_in(key, fold)`, computed inside the compiled call
  (a search's per-call keys then cost no separate dispatch). With `row_folds` [P, 2] (key index,
  number to fold), `key` is a stack of keys and each program folds its own (islands: one key and
  call count per island).
  """
  if counts is None:
    counts = tuple(int(c.length.max(initial=0)) for c in packed)
  if config.static_loops is None:
    config = config._replace(static_loops=jax.default_backend() != "cpu")
  if not _placed(tasks, config.dtype, paired):
    tasks = place_tasks(tasks, config.dtype, paired)
  split = _split(packed.size)
  table = jax.device_put(np.concatenate([c.table for c in packed], axis=1), split)
  counts = np.array([*counts, 0 if fold is None else fold], np.int32)
  if row_folds is not None:
    row_folds = jax.device_put(np.asarray(row_folds, np.int32), split)
  return _evaluate_batch(config, table, packed.widths, counts, tasks, key, paired,
                         fold is not None, row_folds)


def pack_population(programs: Sequence[Program], widths=None,
                    population_bucket: int | None = None) -> PackedPopulation:
  """Packs programs padded to bucketed widths and a bucketed population size (empty programs)."""
  if widths is None:
    widths = [bucket(max((len(p.component(n)) for p in programs), default=0)) for n in COMPONENTS]
  return pad_population(pack(programs, widths),
                        population_bucket or bucket(len(programs), minimum=8))


def pad_population(packed: PackedPopulation, size: int) -> PackedPopulation:
  """`packed` with empty programs appended up to `size` rows."""
  return PackedPopulation(*(PackedComponent(zero_padded(c.table, (size, *c.table.shape[1:])),
                                            zero_padded(c.length, (size,))) for c in packed))


def evaluate(programs: Sequence[Program], tasks: Sequence[Task], *, num_scalars: int,
             num_vectors: int, num_matrices: int, dtype: str = "float32", seed: int = 0,
             max_abs_error: float = 100.0, op_sets=None) -> np.ndarray:
  """Per-task fitness of every program, an array of shape [len(programs), len(tasks)].

  Tasks of different shapes are evaluated in separate compiled calls. `op_sets` (Setup, Predict,
  Learn op ids) defaults to the ops the programs use; pass the search's op sets to reuse one
  compiled evaluator across populations.
  """
  if dtype not in DTYPES:
    raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
  for program in programs:
    program.check_addresses(num_scalars, num_vectors, num_matrices)
  if op_sets is None:
    op_sets = [{inst.op for p in programs for inst in p.component(n)} for n in COMPONENTS]
  op_sets = tuple(normalize_op_set(s) for s in op_sets)
  packed = pack_population(programs)
  fitness = np.zeros((len(programs), len(tasks)))
  groups: dict[tuple, list[int]] = {}
  for index, task in enumerate(tasks):
    groups.setdefault(task.group_key, []).append(index)
  key = jax.random.key(seed)
  for (_, eval_type), indices in groups.items():
    batch = stack_bucketed([tasks[i] for i in indices])
    config = Config(num_scalars, num_vectors, num_matrices, op_sets, eval_type=eval_type,
                    dtype=dtype, max_abs_error=float(max_abs_error), ragged=batch.ragged)
    result = run_packed(config, packed, batch, jax.random.fold_in(key, indices[0]))
    fitness[:, indices] = np.asarray(result.fitness, dtype=np.float64)[:len(programs)]
  return fitness


def stack_bucketed(tasks: Sequence[Task]) -> TaskBatch:
  """Stacks tasks padded to bucketed example counts (masked by the evaluator)."""
  return stack_tasks(tasks, num_train=bucket(max(t.num_train_examples for t in tasks)),
                     num_valid=bucket(max(t.num_valid_examples for t in tasks)))
