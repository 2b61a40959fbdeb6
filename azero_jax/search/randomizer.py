"""Random instructions and programs (REFERENCE.md §1.2, §2.3), derived from the op table.

Every function takes an explicit `np.random.Generator`; nothing keeps global random state.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections.abc import Sequence

import numpy as np

from azero_jax import ops
from azero_jax.program import COMPONENTS, Instruction, Program

# Random output addresses start here: s0 (label) and v0 (features) are never written (§1.2).
FIRST_OUT = {ops.SCALAR: 1, ops.VECTOR: 1, ops.MATRIX: 0}
_SIZE_FIELDS = {ops.SCALAR: "num_scalars", ops.VECTOR: "num_vectors", ops.MATRIX: "num_matrices"}


def uniform_index(rng: np.random.Generator, n: int) -> int:
  """A uniform integer in [0, n); one float draw, about 3x faster than `rng.integers`."""
  return int(rng.random() * n)  # random() < 1 - 2**-53, so the product rounds below n


@dataclasses.dataclass(frozen=True)
class Memory:
  """Number of scalar, vector and matrix addresses."""

  num_scalars: int
  num_vectors: int
  num_matrices: int

  def size(self, kind: str) -> int:
    return getattr(self, _SIZE_FIELDS[kind])

  def random_input(self, kind: str, rng: np.random.Generator) -> int:
    """A uniform input address in [0, size)."""
    return uniform_index(rng, self.size(kind))

  def random_output(self, kind: str, rng: np.random.Generator) -> int:
    """A uniform output address in [FIRST_OUT, size): never s0 or v0."""
    first = FIRST_OUT[kind]
    return first + uniform_index(rng, self.size(kind) - first)

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
_RANGES = {Role.INDEX: (0.0, 1.0), Role.VALUE: (-1.0, 1.0), Role.SCALE: (0.0, 1.0)}


def random_field(field: str, role: Role, rng: np.random.Generator) -> float:
  """A fresh value for a data field: float64 for `activation`, float32 (in [lo, hi)) otherwise."""
  low, high = _RANGES[role]
  if field == "activation":
    return low + (high - low) * rng.random()
  draw = rng.random(dtype=np.float32)  # float32 in [0, 1): the result stays below `high`
  return float(np.float32(low) + np.float32(high - low) * draw)


@functools.cache
def _plan(op_id: int, memory: Memory):
  """What a random instruction of the op draws: input sizes, first output address, number of
  output addresses, data fields."""
  spec = ops.OPS[op_id]
  if spec.output is None:
    return None
  first = FIRST_OUT[spec.output]
  return (tuple(memory.size(kind) for kind in spec.inputs), first,
          memory.size(spec.output) - first, DATA_FIELDS[spec.data])


def random_instruction(op_id: int, memory: Memory, rng: np.random.Generator) -> Instruction:
  """A new instruction of op `op_id` with random addresses and data (in1, in2, out, data order).

  Uniform-set bounds are drawn independently and left unsorted, like the original. The draws
  are those of `Memory.random_input`, `Memory.random_output` and `random_field`, in that order.
  """
  plan = _plan(op_id, memory)
  if plan is None:
    return Instruction()
  input_sizes, first, span, data = plan
  inputs = [int(rng.random() * size) for size in input_sizes] + [0] * (2 - len(input_sizes))
  out = first + int(rng.random() * span)
  values = {name: random_field(name, role, rng) for name, role in data}
  return Instruction(op_id, inputs[0], inputs[1], out, **values)


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

  def ops_for(self, component: str) -> tuple[int, ...]:
    return self.op_lists[COMPONENTS.index(component)]

  def instruction(self, component: str, rng: np.random.Generator) -> Instruction:
    """A random instruction with an op drawn uniformly from the function's op list."""
    allowed = self.ops_for(component)
    return random_instruction(allowed[uniform_index(rng, len(allowed))], self.memory, rng)

  def instructions(self, component: str, size: int,
                   rng: np.random.Generator) -> tuple[Instruction, ...]:
    return tuple(self.instruction(component, rng) for _ in range(size))

  def program(self, program: Program, rng: np.random.Generator) -> Program:
    """Replaces every instruction of every function with a non-empty op list; sizes are kept."""
    return program.replace(**{name: self.instructions(name, len(program.component(name)), rng)
                              for name in self.mutable_components})


def check_sizes(sizes: Sequence[int], what: str) -> tuple[int, int, int]:
  """Validates three non-negative function sizes (setup, predict, learn)."""
  sizes = tuple(int(size) for size in sizes)
  if len(sizes) != len(COMPONENTS) or min(sizes) < 0:
    raise ValueError(f"{what}: expected three sizes >= 0 (setup, predict, learn), got {sizes}")
  return sizes
