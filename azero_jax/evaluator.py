"""The batched JAX evaluator: a whole population of programs on many tasks in one compiled call.

Layout (see BUILD_NOTES.md for the measurements behind it): `vmap` over tasks, the programs as
an explicit row axis, `lax.scan` over examples, `fori_loop` over instruction slots. A slot runs in
one of two executions (`Config.execution`, picked per call by a cost model): "select" computes
every op of the component's (static) op set for every program and selects the result by op id
with `where`, never a one-hot product; "compact" runs each op family only on the rows whose
instruction is in it, as a list of work items per slot made on the host (SlotPlan).
Programs and row lists are data: new programs never recompile; only shapes and static
configuration do.
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
from azero_jax.executables import DiskJit
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
  # How a slot runs its ops (`EXECUTIONS`): "select" computes every op of the set for every
  # program and keeps one result; "compact" runs each op family only on the programs whose
  # instruction there is in it (row lists made on the host, passed as data); "auto" picks one
  # per call with the cost model `choose_execution`.
  execution: str = "auto"


class Memory(NamedTuple):
  scalars: jax.Array  # [P, S]
  vectors: jax.Array  # [P, V, F]
  matrices: jax.Array  # [P, M, F, F]


class LaneResult(NamedTuple):
  fitness: jax.Array  # best validation fitness over epochs
  train_steps: jax.Array  # training examples processed, counting the failing one
  train_errors: jax.Array | None  # [n_train] |y - s1| of epoch 0 (NaN after an abort)
  valid_errors: jax.Array | None  # [n_valid] epoch-0 validation errors (NaN after a failure)


class SlotPlan(NamedTuple):
  """The compact execution's work at each slot of one component: a list of items, each one op
  family run on up to ROWS_PER_CHUNK rows (programs) whose instruction there is in the family.

  `families` [L, W] and `rows` [L, W, ROWS_PER_CHUNK]: item j of slot s runs family
  `families[s, j]` on `rows[s, j]`, padded with the dummy row R (out of range: its reads are
  clamped, its writes dropped; R is the population size). `counts` [L]: the items of each slot.
  W, the most items a slot can need (ceil(R / ROWS_PER_CHUNK) + number of families), depends only
  on shapes.
  """

  families: jax.Array
  rows: jax.Array
  counts: jax.Array


EXECUTIONS = ("auto", "select", "compact")
# Rows one work item runs: small enough that a rare op wastes little on padding, large enough
# that the per-item overhead stays small (benchmarks/evaluator_throughput.py).
ROWS_PER_CHUNK = 8
# The cost model (`choose_execution`): one work item of compact execution costs about as much as
# ITEM_WORK element operations per task (gathers, the switch, scatters, loop step: ~15 us on the
# 2-core CPU, where select computes ~2 G element operations/s).
ITEM_WORK = 4096
# Ops far costlier than the rest of their family (the F^3 matrix product): a family of their own,
# so that rows holding a cheaper op of the same operand kinds never compute them.
_SOLO_OPS = frozenset({ops.OP_BY_NAME["MATRIX_MATRIX_PRODUCT"].id})
_KIND_INDEX = {kind: position for position, kind in enumerate(ops.KINDS)}


def normalize_op_set(op_ids) -> tuple[int, ...]:
  """Sorted distinct op ids without NO_OP (which never writes)."""
  return tuple(sorted(set(int(i) for i in op_ids) - {ops.NO_OP}))


def op_families(op_set) -> tuple[tuple[int, ...], ...]:
  """The ops of the set in the families that compact execution runs as one work item (which
  gathers its operands and scatters its results once): ops with the same operand and output
  kinds and the same random draw, a solo op on its own, so that an item computes and draws only
  what its ops need. (One family per output kind for the cheap ops measured 2x the cost per item:
  an item's cost grows with the ops it computes.)"""
  families: dict[tuple, list[int]] = {}
  for op_id in normalize_op_set(op_set):
    spec = ops.OPS[op_id]
    key = (spec.inputs, spec.output, spec.data if spec.is_random else None,
           op_id if op_id in _SOLO_OPS else None)
    families.setdefault(key, []).append(op_id)
  return tuple(tuple(family) for family in families.values())


# ---------------------------------------------------------------------------------------------
# One instruction slot.


def _results(op_set, inst: PackedComponent, operand: dict, old: dict, rand: dict, *, dtype):
  """{output kind: (value, written)} of one instruction whose op may be any of `op_set`: each op
  computed on the operands, the instruction's own op selected with `where` (never a one-hot
  product: 0 * NaN = NaN)."""
  data = (inst.activation.astype(dtype), *inst.floats)
  results = {}
  for op_id in op_set:
    spec = ops.OPS[op_id]
    a, b = (operand.get((position, kind)) for position, kind in
            zip((0, 1), spec.inputs + (None,) * (2 - spec.num_inputs)))
    value = spec.apply(jnp, a, b, old[spec.output], data, rand.get(spec.data.value))
    value = jnp.asarray(value, dtype).reshape(old[spec.output].shape)
    is_op = inst.op == op_id
    if spec.output in results:
      result, written = results[spec.output]
      value, is_op = jnp.where(is_op, value, result), is_op | written
    results[spec.output] = (value, is_op)
  return results


def _reads(op_set):
  """kind -> the operand positions of that kind some op of the set reads, and the output kinds
  whose old value some op needs (the const-sets; the others skip reading it)."""
  positions: dict[str, list[int]] = {}
  for position, kind in sorted({(p, k) for i in op_set for p, k in enumerate(ops.OPS[i].inputs)}):
    positions.setdefault(kind, []).append(position)
  return positions, {ops.OPS[i].output for i in op_set if ops.OPS[i].reads_output}


def _draws(op_set, keys, size: int, dtype) -> dict:
  """The slot's [F, F] U(0, 1) and N(0, 1) draws per key ([K] keys -> [K, F, F]) by Data value,
  as far as the op set has random ops. Every program on a task draws the same numbers at a slot."""
  kinds = {ops.OPS[i].data for i in op_set}
  draw = {ops.Data.UNIFORM: jax.random.uniform, ops.Data.GAUSSIAN: jax.random.normal}
  return {data.value: jax.vmap(lambda key, fn=fn: fn(key, (size, size), dtype))(keys)
          for data, fn in draw.items() if data in kinds}


def _select_lane(op_set, inst: PackedComponent, memory: Memory, rand: dict, *, dtype) -> Memory:
  """One slot of one program (memory without its row axis): every op of the set computed."""
  positions, reads_old = _reads(op_set)
  addresses = (inst.in1, inst.in2)
  operand = {}
  for kind, kind_positions in positions.items():
    bank = memory[_KIND_INDEX[kind]]
    both = bank[jnp.stack([addresses[p] for p in kind_positions])]  # one gather per kind
    for j, p in enumerate(kind_positions):
      operand[(p, kind)] = both[j]
  writes = {ops.OPS[i].output for i in op_set}
  old = {kind: memory[_KIND_INDEX[kind]][inst.out] if kind in reads_old else
         jnp.zeros(memory[_KIND_INDEX[kind]].shape[1:], dtype) for kind in writes}
  registers = list(memory)
  for kind, (result, written) in _results(op_set, inst, operand, old, rand, dtype=dtype).items():
    bank = registers[_KIND_INDEX[kind]]
    if kind in reads_old:
      registers[_KIND_INDEX[kind]] = bank.at[inst.out].set(jnp.where(written, result, old[kind]))
    else:
      target = jnp.where(written, inst.out, bank.shape[0])
      registers[_KIND_INDEX[kind]] = bank.at[target].set(result, mode="drop")
  return Memory(*registers)


def _lanes(rand: dict, rows=None):
  """Draws for a vmap over rows: shared (one key for all rows) or each row's own."""
  shared = {data: value[0] for data, value in rand.items()}
  if all(value.shape[0] == 1 for value in rand.values()):
    return shared, None
  return ({data: value if rows is None else value[rows] for data, value in rand.items()}, 0)


def _select_slot(op_set, table, slot, memory: Memory, keys, dtype) -> Memory:
  """One slot of every program: each computes every op of the set (`select` execution)."""
  rand, rand_axis = _lanes(_draws(op_set, keys, memory.vectors.shape[-1], dtype))
  lane = functools.partial(_select_lane, op_set, dtype=dtype)
  return jax.vmap(lane, in_axes=(0, 0, rand_axis))(PackedComponent(table[:, slot], None), memory,
                                                   rand)


def _family_results(family, dtype, table, slot, keys, folds, rows, memory: Memory) -> tuple:
  """One work item of compact execution: the family's ops computed on `rows` only (the
  instruction's op selected with `where`). Returns the new value of the output register for
  each register kind, zeros for the kinds the family does not write, so that every family
  gives arrays of the same shapes and the banks are written outside the `switch` over families
  (a branch that passed a bank through unchanged made XLA copy the whole bank per item)."""
  kind = ops.OPS[family[0]].output
  positions, reads_old = _reads(family)
  inst = PackedComponent(table[rows, slot], None)
  addresses = (inst.in1, inst.in2)
  operand = {(p, k): memory[_KIND_INDEX[k]][rows, addresses[p]]
             for k, kind_positions in positions.items() for p in kind_positions}
  old = {kind: memory[_KIND_INDEX[kind]][rows, inst.out] if kind in reads_old else
         jnp.zeros((rows.shape[0], *memory[_KIND_INDEX[kind]].shape[2:]), dtype)}
  # The rows' keys only (one shared key, or each row's own), folded here: the draws per key are
  # the numbers select execution draws for these rows.
  row_keys = _fold(keys if keys.shape[0] == 1 else keys[rows], *folds, slot)
  rand, rand_axis = _lanes(_draws(family, row_keys, memory.vectors.shape[-1], dtype))
  results = jax.vmap(functools.partial(_results, family, dtype=dtype),
                     in_axes=(0, 0, 0, rand_axis))(inst, operand, old, rand)
  return tuple(results[k][0] if k == kind else jnp.zeros((rows.shape[0], *bank.shape[2:]), dtype)
               for k, bank in zip(ops.KINDS, memory))


def _compact_slot(op_set, table, plan: SlotPlan, slot, memory: Memory, keys, folds,
                  dtype) -> Memory:
  """One slot of every program: each of the slot's work items runs its op family on its rows
  only (`compact` execution); slots and families without rows cost nothing."""
  families = op_families(op_set)
  branches = [functools.partial(_family_results, family, dtype, table, slot, keys, folds)
              for family in families]
  kind_of = jnp.array([_KIND_INDEX[ops.OPS[family[0]].output] for family in families])

  def item(j, memory):
    g, rows = plan.families[slot, j], plan.rows[slot, j]
    values = jax.lax.switch(g, branches, rows, memory)
    out = PackedComponent(table[rows, slot], None).out
    return Memory(*(bank.at[jnp.where(kind_of[g] == k, rows, bank.shape[0]), out].set(
        value, mode="drop") for k, (bank, value) in enumerate(zip(memory, values))))

  return jax.lax.fori_loop(0, plan.counts[slot], item, memory)


def _run_component(config: Config, which: int, table, plan: SlotPlan | None, count,
                   memory: Memory, keys, folds=()) -> Memory:
  """Runs instruction slots [0, count) of one component function of every program. A slot's
  random draws use `keys` folded with `folds` (the example step) and the slot."""
  op_set = config.op_sets[which]
  if not op_set:
    return memory
  dtype = DTYPES[config.dtype]

  if plan is None:  # every row draws: fold once per call of the function
    keys, folds = _fold(keys, *folds), ()

  def body(slot, memory):
    if plan is None:
      return _select_slot(op_set, table, slot, memory, _fold(keys, slot), dtype)
    return _compact_slot(op_set, table, plan, slot, memory, keys, folds, dtype)

  return jax.lax.fori_loop(0, count, body, memory)


# ---------------------------------------------------------------------------------------------
# Rows of programs on tasks.


def _fold(keys, *data):
  """`jax.random.fold_in` of every key [K] with each of `data` in turn."""
  for value in data:
    keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, value)
  return keys


def _sigmoid(x):
  return 1.0 / (1.0 + jnp.exp(-x))


def _flip_and_squash(x):
  squashed = 1.0 + ops.NEG_TWO_OVER_PI * jnp.arctan(x)
  return jnp.where(jnp.isfinite(x), squashed, 0.0)


@functools.partial(DiskJit, static_argnums=())
def _squashed(negative_rms):
  """RMS fitness from the best epoch's -rms, in a call of its own: inside the evaluator, XLA:CPU
  fused the arctan differently by batch size, changing last bits with the batch's shape."""
  return _flip_and_squash(-negative_rms)


def _where_rows(condition, new, old):
  """Per row ([P] or [1], broadcast) `new` where `condition` else `old`, for every leaf."""
  return jax.tree.map(
      lambda n, o: jnp.where(condition.reshape(condition.shape + (1,) * (n.ndim - 1)), n, o),
      new, old)


def _with_input(memory: Memory, x, label) -> Memory:
  """The harness's writes before Predict/Learn: v0 = x, s0 = label ([1] or [P] rows)."""
  rows = memory.scalars.shape[0]
  return memory._replace(
      scalars=memory.scalars.at[:, 0].set(jnp.broadcast_to(label, (rows,))),
      vectors=memory.vectors.at[:, 0].set(jnp.broadcast_to(x, (rows, x.shape[-1]))))


def _evaluate_rows(config: Config, tables, plans, counts, task: TaskBatch, keys) -> LaneResult:
  """Evaluates P programs (REFERENCE.md §4), each on its task: `task` fields and `keys` lead with
  an axis of 1 (one task for every program) or P (task i for program i). Results are [P]."""
  dtype = DTYPES[config.dtype]
  accuracy = config.eval_type == "accuracy"
  num_rows = tables[0].shape[0]
  if config.static_loops:
    counts = tuple(table.shape[1] for table in tables)
  num_tasks, num_train = task.y_train.shape
  num_valid = task.y_valid.shape[1]
  num_epochs = task.orders.shape[1]
  size = task.x_train.shape[-1]
  lanes = jnp.arange(num_tasks)
  phase_keys = [_fold(keys, phase) for phase in range(4)]
  run = lambda which, memory, keys, *folds: _run_component(
      config, which, tables[which], plans[which], counts[which], memory, keys, folds)

  memory = Memory(jnp.zeros((num_rows, config.num_scalars), dtype),
                  jnp.zeros((num_rows, config.num_vectors, size), dtype),
                  jnp.zeros((num_rows, config.num_matrices, size, size), dtype))
  memory = run(0, memory, phase_keys[_SETUP])

  def train_step(carry, inputs):
    memory, alive, steps = carry
    step, index, active = inputs  # index, active: [tasks]
    x, y = task.x_train[lanes, index], task.y_train[lanes, index]
    updated = _with_input(memory, x, jnp.zeros((), dtype))
    updated = run(1, updated, phase_keys[_TRAIN_PREDICT], step)
    if accuracy:
      updated = updated._replace(
          scalars=updated.scalars.at[:, 1].set(_sigmoid(updated.scalars[:, 1])))
    error = jnp.abs(y - updated.scalars[:, 1])
    bad = (jnp.isnan(error) | (error > config.max_abs_error)) & active
    steps = steps + (alive & active)
    recorded = jnp.where(alive & active & ~bad, error, jnp.nan)
    alive = alive & ~bad
    updated = _with_input(updated, x, y)
    updated = run(2, updated, phase_keys[_TRAIN_LEARN], step)
    if config.ragged:  # keeps the memory of padded examples and epochs
      updated = _where_rows(active, updated, memory)
    return (updated, alive, steps), recorded if config.record_errors else None

  def valid_step(carry, inputs):
    memory, ok, loss = carry
    step, x, y, active = inputs
    updated = run(1, _with_input(memory, x, jnp.zeros((), dtype)), phase_keys[_VALID_PREDICT],
                  step)
    logit = updated.scalars[:, 1]
    if accuracy:
      error = jnp.where((y > 0.5) == (_sigmoid(logit) > 0.5), 0.0, 1.0).astype(dtype)
      term = error
    else:
      error = y - logit
      term = error * error
    bad = (jnp.isnan(error) | (jnp.abs(error) > config.max_abs_error)) & active
    # After a failed example the original stops validating: later examples leave memory alone
    # (only the next epoch sees it: with one epoch, the failed lanes' results are all masked).
    memory = updated if num_epochs == 1 else _where_rows(ok & active, updated, memory)
    recorded = jnp.where(ok & active & ~bad, error, jnp.nan)
    loss = loss + jnp.where(active, term, 0.0)
    return (memory, ok & ~bad, loss), recorded if config.record_errors else None

  def epoch(carry, inputs):
    memory, alive, steps, best = carry
    epoch_index, order = inputs  # order: [tasks, n_train]
    epoch_active = epoch_index < task.num_epochs
    train_ids = epoch_index * num_train + jnp.arange(num_train)
    train_active = (jnp.arange(num_train)[:, None] < task.num_train) & epoch_active
    (memory, alive_after, steps), train_errors = jax.lax.scan(
        train_step, (memory, alive, steps), (train_ids, order.T, train_active))
    valid_ids = epoch_index * num_valid + jnp.arange(num_valid)
    valid_active = (jnp.arange(num_valid)[:, None] < task.num_valid) & epoch_active
    (memory, ok, loss), valid_errors = jax.lax.scan(
        valid_step, (memory, jnp.ones(num_rows, bool), jnp.zeros(num_rows, dtype)),
        (valid_ids, jnp.swapaxes(task.x_valid, 0, 1), task.y_valid.T, valid_active))
    count = task.num_valid.astype(dtype)
    # RMS tasks keep -rms: flip-and-squash is decreasing, so the best epoch's fitness is that of
    # the smallest rms, squashed after the call (`_squashed`).
    fitness = 1.0 - loss / count if accuracy else -jnp.sqrt(loss / count)
    fitness = jnp.where(ok, fitness, 0.0 if accuracy else -jnp.inf)
    best = jnp.where(alive_after & epoch_active, jnp.maximum(best, fitness), best)
    return (memory, alive_after, steps, best), (train_errors, valid_errors)

  init = (memory, jnp.ones(num_rows, bool), jnp.zeros(num_rows, jnp.int32),
          jnp.full(num_rows, 0.0 if accuracy else -jnp.inf, dtype))
  (_, _, steps, best), errors = jax.lax.scan(
      epoch, init, (jnp.arange(num_epochs), jnp.swapaxes(task.orders, 0, 1)))
  if config.record_errors:
    train_errors, valid_errors = errors[0][0].T, errors[1][0].T
    # Validation after an aborted first epoch never ran.
    valid_errors = jnp.where(jnp.isnan(train_errors).any(-1, keepdims=True), jnp.nan,
                             valid_errors)
    return LaneResult(best, steps, train_errors, valid_errors)
  return LaneResult(best, steps, None, None)


@functools.partial(DiskJit, static_argnums=(0, 2, 7, 8, 9))
def _evaluate_batch(config: Config, table, widths: tuple[int, ...], plans, counts,
                    tasks: TaskBatch, key, paired: bool = False, fold: bool = False,
                    num_shards: int = 1, row_folds=None) -> LaneResult:
  """Lanes [P programs] x [T tasks], or [P] pairs (program i on task i) when `paired`.

  `table` holds the Setup, Predict and Learn tables of a PackedPopulation side by side (`widths`
  slots each: one transfer instead of three), `plans` their SlotPlans with a leading shard axis
  (None: select execution), `counts` their loop bounds (and, when `fold`, a number to fold into
  the key first). With `row_folds` [P, 2], `key` is a stack of keys and program i uses
  `fold_in(key[row_folds[i, 0]], row_folds[i, 1])` (one key per island). The task index is
  folded into the key, so identical programs with one key get identical random draws. The
  programs are split into `num_shards` equal parts, one per device.
  """
  starts = np.cumsum((0, *widths))
  if fold:
    key = jax.random.fold_in(key, counts[3])
  counts = counts[:3]
  task_ids = jnp.arange(tasks.y_train.shape[0])
  if row_folds is None:
    task_keys = jax.vmap(lambda t: jax.random.fold_in(key, t))(task_ids)  # [T]
  else:
    program_keys = jax.vmap(lambda row: jax.random.fold_in(key[row[0]], row[1]))(row_folds)
    task_keys = jax.vmap(lambda t: jax.vmap(lambda k: jax.random.fold_in(k, t))(
        program_keys))(task_ids)  # [T, P]

  def shard(table, plans, tasks, task_keys, counts):
    tables = tuple(table[:, start:stop] for start, stop in zip(starts[:-1], starts[1:]))
    plans = tuple(None if plan is None else SlotPlan(*(field[0] for field in plan))
                  for plan in plans)
    if paired:
      return _evaluate_rows(config, tables, plans, counts, tasks, task_keys)
    one_task = lambda task, task_key: _evaluate_rows(
        config, tables, plans, counts, jax.tree.map(lambda leaf: leaf[None], task),
        task_key if task_key.ndim else task_key[None])  # the rows' keys [P], or one
    return jax.vmap(one_task, out_axes=1)(tasks, task_keys)

  if num_shards == 1:
    return shard(table, plans, tasks, task_keys, counts)
  split, whole = PartitionSpec("lanes"), PartitionSpec()
  per_task = split if paired else whole
  keys_spec = per_task if row_folds is None else PartitionSpec(None, "lanes")
  return jax.shard_map(shard, mesh=_mesh(num_shards),
                       in_specs=(split, split, per_task, keys_spec, whole), out_specs=split,
                       check_vma=False)(table, plans, tasks, task_keys, counts)


# ---------------------------------------------------------------------------------------------
# Host side: buckets, packing and the public API.


def bucket(n: int, minimum: int = 1) -> int:
  """Rounds up to a power of two so that few distinct shapes get compiled."""
  return max(minimum, 1 << max(0, int(n - 1).bit_length()))


@functools.cache
def _mesh(num_devices: int) -> Mesh:
  """The first `num_devices` devices of the default backend along one axis, "lanes"."""
  return Mesh(np.array(jax.devices()[:num_devices]), ("lanes",))


@functools.cache
def _shardings(num_devices: int):
  """(split along the first axis, replicated) over all devices of the default backend."""
  mesh = _mesh(num_devices)
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
  if config.execution not in EXECUTIONS:
    raise ValueError(f"execution must be one of {EXECUTIONS}, got {config.execution!r}")
  if counts is None:
    counts = tuple(int(c.length.max(initial=0)) for c in packed)
  if config.static_loops is None:
    config = config._replace(static_loops=jax.default_backend() != "cpu")
  if not _placed(tasks, config.dtype, paired):
    tasks = place_tasks(tasks, config.dtype, paired)
  split = _split(packed.size)
  num_shards = 1 if split is None else jax.device_count()
  features = tasks.x_train.shape[-1]
  if config.execution == "auto" and choose_execution(config, features) == "select":
    config = config._replace(execution="select")  # whatever the programs: no row lists needed
  plans = (None,) * 3
  if config.execution != "select":
    plans = slot_plans(packed, config.op_sets, num_shards)
  if config.execution == "auto":
    config = config._replace(
        execution=choose_execution(config, features, packed, plans, counts))
  # Host arrays go to the compiled call as they are: it places them as its shard_map splits
  # them, at about half the cost of a `device_put` to the split first.
  plans = (None,) * 3 if config.execution == "select" else plans
  table = np.concatenate([c.table for c in packed], axis=1)
  if row_folds is not None:
    row_folds = np.asarray(row_folds, np.int32)
  counts = (_replicated_counts(tuple(int(c) for c in counts)) if fold is None and num_shards > 1
            else np.array([*counts, 0 if fold is None else fold], np.int32))
  result = _evaluate_batch(config, table, packed.widths, plans, counts, tasks, key, paired,
                           fold is not None, num_shards, row_folds)
  if config.eval_type == "accuracy":
    return result
  return result._replace(fitness=_squashed(result.fitness))


@functools.lru_cache(maxsize=4096)
def _replicated_counts(counts: tuple[int, int, int]) -> jax.Array:
  """Loop bounds (Setup, Predict, Learn; no fold) on all devices, one copy per value: a host
  array costs a sharded call ~50 us more to place (2 host devices)."""
  return replicated(np.array([*counts, 0], np.int32))


def slot_plans(packed: PackedPopulation, op_sets, num_shards: int = 1) -> tuple[SlotPlan, ...]:
  """The compact execution's work items of each component, per shard of the population
  (SlotPlan fields with a leading shard axis; rows numbered within their shard). Items list a
  slot's families in order, each family's rows in order, ROWS_PER_CHUNK rows at most."""
  plans = []
  for component, op_set in zip(packed, op_sets):
    families = op_families(op_set)
    family_of = np.full(ops.NUM_OPS, len(families))  # NO_OP and ops outside the set: none
    for g, family in enumerate(families):
      family_of[list(family)] = g
    num_rows, width = component.table.shape[:2]
    local = num_rows // num_shards
    capacity = -(-local // ROWS_PER_CHUNK) + len(families)
    family = family_of[component.table[..., 0].astype(np.int64)].reshape(num_shards, local, width)
    item_families = np.zeros((num_shards, width, capacity), np.int32)
    item_rows = np.full((num_shards, width, capacity, ROWS_PER_CHUNK), local, np.int32)
    counts = np.zeros((num_shards, width), np.int32)
    for shard in range(num_shards):
      for slot in range(width):
        rows = np.argsort(family[shard, :, slot], kind="stable")  # by family, then row
        member = family[shard, rows, slot]
        rows, member = rows[member < len(families)], member[member < len(families)]
        within = np.arange(rows.size) - np.searchsorted(member, member)  # place in its family
        item = np.cumsum(within % ROWS_PER_CHUNK == 0) - 1
        item_families[shard, slot, item] = member
        item_rows[shard, slot, item, within % ROWS_PER_CHUNK] = rows
        counts[shard, slot] = item[-1] + 1 if rows.size else 0
    plans.append(SlotPlan(item_families, item_rows, counts))
  return tuple(plans)


def choose_execution(config: Config, features: int, packed: PackedPopulation | None = None,
                     plans=None, counts=None) -> str:
  """The execution the cost model expects to be faster. Select when a chunk of rows computing
  the widest op set costs less than one work item (then compact cannot win); otherwise, given a
  call's population, plans and loop counts, the cheaper of select (every op of the set for every
  program at every slot up to `counts`) and compact (the plans' items, each ITEM_WORK plus its
  family's ops on its rows), compact on a tie (benchmarks/evaluator_throughput.py)."""
  widest = max(sum(op_work(i, features) for i in op_set) for op_set in config.op_sets)
  if ROWS_PER_CHUNK * widest <= ITEM_WORK:
    return "select"
  if plans is None:
    return "compact"
  select = compact = 0
  for component, op_set, plan, count in zip(packed, config.op_sets, plans, counts):
    families = op_families(op_set)
    select += count * component.table.shape[0] * sum(op_work(i, features) for i in op_set)
    family_work = np.array([ITEM_WORK + ROWS_PER_CHUNK * sum(op_work(i, features) for i in f)
                            for f in families] + [0])
    listed = np.arange(plan.families.shape[-1]) < plan.counts[..., None]  # [shards, L, W]
    compact += family_work[np.where(listed, plan.families, len(families))][:, :count].sum()
  return "compact" if compact <= select else "select"


def op_work(op_id: int, features: int) -> int:
  """Element operations of one op at feature size F: the largest of its operands and result,
  F^3 for the matrix product."""
  if op_id in _SOLO_OPS:
    return features ** 3
  spec = ops.OPS[op_id]
  elements = {ops.SCALAR: 1, ops.VECTOR: features, ops.MATRIX: features * features}
  return max(elements[kind] for kind in (*spec.inputs, spec.output))


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
