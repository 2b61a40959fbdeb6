"""Random instructions and programs (REFERENCE.md §1.2, §2.3), derived from the op table.

Instructions are drawn as packed rows (op, in1, in2, out, activation, f0, f1, f2), a whole batch
per call, each row from its own `ROW_DRAWS` uniforms (`Randomizer.rows_of`). Draws come from an
explicit `np.random.Generator`, or from `Streams` when a batch's rows belong to several generators
(islands); nothing keeps global random state.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from azero_jax import ops
from azero_jax.program import (
  COMPONENTS,
  Instruction,
  PackedComponent,
  PackedPopulation,
  Program,
  ProgramBatch,
  instructions_from_rows,
  pack,
)

# Random output addresses start here: s0 (label) and v0 (features) are never written (§1.2).
FIRST_OUT = {ops.SCALAR: 1, ops.VECTOR: 1, ops.MATRIX: 0}
_SIZE_FIELDS = {ops.SCALAR: "num_scalars", ops.VECTOR: "num_vectors", ops.MATRIX: "num_matrices"}


@dataclasses.dataclass(frozen=True)
class Memory:
  """Number of scalar, vector and matrix addresses."""

  num_scalars: int
  num_vectors: int
  num_matrices: int

  def size(self, kind: str) -> int:
    return getattr(self, _SIZE_FIELDS[kind])

  def check_op(self, op_id: int) -> None:
    """Raises ValueError if random instructions of this op cannot be addressed in this memory."""
    spec = ops.OPS[op_id]
    for kind in spec.inputs:
      if self.size(kind) < 1:
        raise ValueError(f"op {spec.name} reads a {kind} register but memory has none")
    if spec.output is not None and self.size(spec.output) <= FIRST_OUT[spec.output]:
      raise ValueError(f"op {spec.name} writes a {spec.output} register, but with "
                       f"{self.size(spec.output)} of them none is writable (outputs start at "
                       f"{spec.output}{FIRST_OUT[spec.output]})")


class Role(enum.Enum):
  """How a data field is re-drawn and altered (REFERENCE.md §2.3, §7.5)."""

  INDEX = "index"  # index fraction: drawn from U[0, 1), altered by a fresh draw
  VALUE = "value"  # constant: drawn from U[-1, 1), altered by sign flip or scaling
  SCALE = "scale"  # Gaussian std: drawn from U[0, 1), altered by scaling only (stays positive)


# Data fields of each op data class, in draw order: (field name, role).
DATA_FIELDS: dict[ops.Data, tuple[tuple[str, Role], ...]] = {
    ops.Data.NONE: (),
    ops.Data.ACTIVATION: (("activation", Role.VALUE),),
    ops.Data.VECTOR_CONST: (("f0", Role.INDEX), ("f1", Role.VALUE)),
    ops.Data.MATRIX_CONST: (("f0", Role.INDEX), ("f1", Role.INDEX), ("f2", Role.VALUE)),
    ops.Data.UNIFORM: (("f0", Role.VALUE), ("f1", Role.VALUE)),
    ops.Data.GAUSSIAN: (("f0", Role.VALUE), ("f1", Role.SCALE)),
}


# Columns of a packed instruction row (program.PackedComponent) holding each data field.
DATA_COLUMNS = {"activation": 4, "f0": 5, "f1": 6, "f2": 7}
NO_ROLE, INDEX, VALUE, SCALE = range(4)  # role codes in `DataPlan.role`
_ROLE_CODES = {Role.INDEX: INDEX, Role.VALUE: VALUE, Role.SCALE: SCALE}
MAX_DATA_FIELDS = max(len(fields) for fields in DATA_FIELDS.values())


class DataPlan(NamedTuple):
  """Per-op arrays (indexed by op id): where each op keeps its data fields and how they vary."""

  num_fields: np.ndarray  # [NUM_OPS]
  column: np.ndarray  # [NUM_OPS, MAX_DATA_FIELDS] row column of each data field
  role: np.ndarray  # [NUM_OPS, MAX_DATA_FIELDS] role code (NO_ROLE past the last field)
  uniform_bounds: np.ndarray  # [NUM_OPS] bool: f0, f1 are the bounds of a uniform draw


def _data_plan() -> DataPlan:
  fields = [DATA_FIELDS[op.data] for op in ops.OPS]
  column = np.zeros((ops.NUM_OPS, MAX_DATA_FIELDS), np.int64)
  role = np.zeros((ops.NUM_OPS, MAX_DATA_FIELDS), np.int64)
  for op_id, op_fields in enumerate(fields):
    for index, (name, field_role) in enumerate(op_fields):
      column[op_id, index], role[op_id, index] = DATA_COLUMNS[name], _ROLE_CODES[field_role]
  return DataPlan(np.array([len(f) for f in fields]), column, role,
                  np.array([op.data is ops.Data.UNIFORM for op in ops.OPS]))


DATA_PLAN = _data_plan()


def read_columns(op_set) -> int:
  """How many leading columns of packed instruction rows instructions of these ops can read: op
  and addresses, then the data columns up to the last one an op of the set has (the rest are
  never read, whatever they hold)."""
  data = [DATA_PLAN.column[op, :DATA_PLAN.num_fields[op]] for op in op_set]
  return int(max((columns.max() + 1 for columns in data if columns.size),
                 default=DATA_COLUMNS["activation"]))


class AddressPlan(NamedTuple):
  """Per-op arrays (indexed by op id) for drawing addresses in one memory."""

  num_inputs: np.ndarray  # [NUM_OPS]
  input_sizes: np.ndarray  # [NUM_OPS, 2] address counts of in1 and in2 (0 when unused)
  has_output: np.ndarray  # [NUM_OPS] bool (False for NO_OP)
  first_out: np.ndarray  # [NUM_OPS] first writable output address
  out_span: np.ndarray  # [NUM_OPS] number of writable output addresses


@functools.cache
def address_plan(memory: Memory) -> AddressPlan:
  """The address draws of every op in `memory`, derived from ops.OPS."""
  input_sizes = np.zeros((ops.NUM_OPS, 2), np.int64)
  first_out, out_span = np.zeros(ops.NUM_OPS, np.int64), np.zeros(ops.NUM_OPS, np.int64)
  for op in ops.OPS:
    input_sizes[op.id, :op.num_inputs] = [memory.size(kind) for kind in op.inputs]
    if op.output is not None:
      first_out[op.id] = FIRST_OUT[op.output]
      out_span[op.id] = max(0, memory.size(op.output) - FIRST_OUT[op.output])
  return AddressPlan(np.array([op.num_inputs for op in ops.OPS]), input_sizes,
                     np.array([op.output is not None for op in ops.OPS]), first_out, out_span)


@dataclasses.dataclass(frozen=True)
class Streams:
  """Where the draws of a batch come from: its items in contiguous groups, group g (the next
  `counts[g]` items) drawing from `rngs[g]`. A group's draws are what it would get alone, so an
  island's children do not depend on the islands beside it."""

  rngs: tuple[np.random.Generator, ...]
  counts: np.ndarray  # [G] items per group

  @classmethod
  def of(cls, rng: np.random.Generator, count: int) -> Streams:
    """`count` items drawing from one generator."""
    return cls((rng,), np.array([count]))

  @property
  def owners(self) -> np.ndarray:
    """The group of each item [sum(counts)]."""
    return np.repeat(np.arange(len(self.rngs)), self.counts)

  def uniforms(self, width: int) -> np.ndarray:
    """[sum(counts), width] uniforms in [0, 1): each group's rows, in order, from its generator."""
    blocks = [rng.random((int(count), width)) for rng, count in zip(self.rngs, self.counts)]
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)

  def expand(self, per_item: np.ndarray) -> Streams:
    """The streams of sub-items: item i has `per_item[i]` of them, in item order."""
    group_ends = np.concatenate([[0], np.cumsum(per_item)])[np.cumsum(self.counts)]
    return Streams(self.rngs, np.diff(group_ends, prepend=0))


def uniform_indices(uniforms: np.ndarray, sizes) -> np.ndarray:
  """Uniform integers in [0, sizes) elementwise from uniforms in [0, 1) (0 where a size is 0)."""
  return (uniforms * sizes).astype(np.int64)


def narrow_uniforms(uniforms: np.ndarray) -> np.ndarray:
  """float32 uniforms in [0, 1) from float64 ones: their top 24 bits, as a float32 draw has."""
  return (np.floor(uniforms * 2.0**24) * 2.0**-24).astype(np.float32)


def fresh_values(roles: np.ndarray, columns: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
  """New data values by role from one uniform each: INDEX and SCALE from U[0, 1), VALUE from
  U[-1, 1). float32 values, except in the activation column (float64), as the original stores
  them."""
  narrow = narrow_uniforms(uniforms)
  values = np.where(roles == VALUE, np.float32(-1.0) + np.float32(2.0) * narrow, narrow)
  return np.where(columns == DATA_COLUMNS["activation"],
                  np.where(roles == VALUE, -1.0 + 2.0 * uniforms, uniforms),
                  values.astype(np.float64))


# Uniforms per random instruction: in1, in2, out and the data fields for a given op; the op first.
INSTRUCTION_DRAWS = 3 + MAX_DATA_FIELDS
ROW_DRAWS = 1 + INSTRUCTION_DRAWS


def random_rows(op_ids, memory: Memory, uniforms: np.ndarray) -> np.ndarray:
  """New instruction rows [n, 8] of the given ops from uniforms [n, INSTRUCTION_DRAWS] (in1,
  in2, out, data fields): uniform addresses (outputs never s0 or v0) and data drawn by role
  (REFERENCE.md §2.3). Uniform-set bounds are left unsorted, like the original."""
  plan = address_plan(memory)
  op_ids = np.asarray(op_ids, dtype=np.int64)
  rows = np.zeros((op_ids.size, 8))
  rows[:, 0] = op_ids
  rows[:, 1:3] = uniform_indices(uniforms[:, 0:2], plan.input_sizes[op_ids])
  rows[:, 3] = plan.first_out[op_ids] + uniform_indices(uniforms[:, 2], plan.out_span[op_ids])
  roles, columns = DATA_PLAN.role[op_ids], DATA_PLAN.column[op_ids]
  values = fresh_values(roles, columns, uniforms[:, 3:])
  lanes, fields = np.nonzero(roles)
  rows[lanes, columns[lanes, fields]] = values[lanes, fields]
  return rows


def random_instruction(op_id: int, memory: Memory, rng: np.random.Generator) -> Instruction:
  """A new instruction of op `op_id` with random addresses and data (see `random_rows`)."""
  return instructions_from_rows(random_rows([op_id], memory, rng.random((1, INSTRUCTION_DRAWS))))[0]


@dataclasses.dataclass(frozen=True)
class Randomizer:
  """Draws random instructions for each component function from its allowed-op list.

  `op_lists` holds the Setup, Predict and Learn op lists in that order; duplicates weight an op.
  A function with an empty list is never randomized (it keeps its content).
  """

  op_lists: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]
  memory: Memory
  # Names of the functions with a non-empty op list, in Setup, Predict, Learn order.
  mutable_components: tuple[str, ...] = dataclasses.field(init=False)
  # The op lists as one table [3, longest list] (padded with NO_OP) and their lengths [3].
  _op_table: np.ndarray = dataclasses.field(init=False, repr=False, compare=False)
  _op_counts: np.ndarray = dataclasses.field(init=False, repr=False, compare=False)

  def __post_init__(self):
    lists = tuple(tuple(int(op) for op in ops_) for ops_ in self.op_lists)
    if len(lists) != len(COMPONENTS):
      raise ValueError(f"expected {len(COMPONENTS)} op lists (setup, predict, learn), got "
                       f"{len(lists)}")
    for op_id in {op for ops_ in lists for op in ops_}:
      if not 0 <= op_id < ops.NUM_OPS:
        raise ValueError(f"unknown op id {op_id}: expected 0..{ops.NUM_OPS - 1}")
      self.memory.check_op(op_id)
    object.__setattr__(self, "op_lists", lists)
    object.__setattr__(self, "mutable_components",
                       tuple(name for name, ops_ in zip(COMPONENTS, lists, strict=True) if ops_))
    table = np.zeros((len(lists), max(map(len, lists))), np.int64)
    for index, ops_ in enumerate(lists):
      table[index, :len(ops_)] = ops_
    object.__setattr__(self, "_op_table", table)
    object.__setattr__(self, "_op_counts", np.array([len(ops_) for ops_ in lists]))

  def ops_for(self, component: str) -> tuple[int, ...]:
    return self.op_lists[COMPONENTS.index(component)]

  def rows_of(self, functions: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Random instruction rows [n, 8] for the functions `functions` [n] (indices into
    COMPONENTS), from uniforms [n, ROW_DRAWS]: the op uniform over the function's list, then
    `random_rows`."""
    op_ids = self._op_table[functions, uniform_indices(uniforms[:, 0], self._op_counts[functions])]
    return random_rows(op_ids, self.memory, uniforms[:, 1:])

  def rows(self, component: str, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` random instruction rows [count, 8], ops drawn uniformly from the function's list."""
    return self.rows_of(np.full(count, COMPONENTS.index(component)),
                        rng.random((count, ROW_DRAWS)))

  def programs(self, template: Program, count: int, rng: np.random.Generator) -> ProgramBatch:
    """`count` copies of `template` with every instruction of every function that has a
    non-empty op list redrawn; sizes are kept. One draw per function for the whole batch."""
    components = []
    for name, size, component in zip(COMPONENTS, template.sizes, pack([template], template.sizes)):
      if name in self.mutable_components:
        table = self.rows(name, count * size, rng).reshape(count, size, component.table.shape[2])
      else:
        table = np.repeat(component.table, count, axis=0)
      components.append(PackedComponent(table, np.full(count, size, dtype=np.int32)))
    return ProgramBatch(PackedPopulation(*components))

  def program(self, template: Program, rng: np.random.Generator) -> Program:
    """`template` with every instruction of every function with a non-empty op list redrawn."""
    return self.programs(template, 1, rng)[0]


def check_sizes(sizes: Sequence[int], what: str) -> tuple[int, int, int]:
  """Validates three non-negative function sizes (setup, predict, learn)."""
  sizes = tuple(int(size) for size in sizes)
  if len(sizes) != len(COMPONENTS) or min(sizes) < 0:
    raise ValueError(f"{what}: expected three sizes >= 0 (setup, predict, learn), got {sizes}")
  return sizes
