"""The mutator (REFERENCE.md §7): one random action per child with probability `mutate_prob`."""

from __future__ import annotations

import bisect
import dataclasses
import enum
import itertools
import math
from collections.abc import Sequence

import numpy as np

from azero_jax import ops
from azero_jax.program import COMPONENTS, Instruction, Program, float32
from azero_jax.search.randomizer import (
  DATA_FIELDS,
  Memory,
  Randomizer,
  Role,
  check_sizes,
  random_field,
  uniform_index,
)

SIGN_FLIP_PROB = 0.1  # kSignFlipProb
PAPER_SCALE_RANGE = (0.5, 2.0)  # the paper's constant mutation: x U[0.5, 2] (paper S3)


class MutationType(enum.IntEnum):
  """Mutation actions, numbered as in mutator.proto (REFERENCE.md §7.3)."""

  ALTER_PARAM = 0
  RANDOMIZE_INSTRUCTION = 1
  RANDOMIZE_COMPONENT_FUNCTION = 2
  IDENTITY = 3
  INSERT_INSTRUCTION = 4
  REMOVE_INSTRUCTION = 5
  TRADE_INSTRUCTION = 6
  RANDOMIZE_ALGORITHM = 7

  @classmethod
  def parse(cls, name: str | int) -> MutationType:
    """Accepts an id, a short name (``ALTER_PARAM``) or the proto name (``..._MUTATION_TYPE``)."""
    text = str(name).strip().upper().removesuffix("_MUTATION_TYPE")
    if text.isdigit() and int(text) < len(cls):
      return cls(int(text))
    if text in cls.__members__:
      return cls[text]
    raise ValueError(f"unknown mutation type {name!r}: expected one of "
                     f"{', '.join(cls.__members__)} (optionally with _MUTATION_TYPE) or 0..7")


def scale_magnitude(value: float, rng: np.random.Generator, paper_variant: bool = False) -> float:
  """Multiplies |value| by exp(N(0, 1)) (paper: by U[0.5, 2]) keeping the sign; 0 becomes -0.0."""
  factor = rng.uniform(*PAPER_SCALE_RANGE) if paper_variant else math.exp(rng.standard_normal())
  magnitude = abs(value) * factor
  return magnitude if value > 0 else -magnitude


def flip_or_scale(value: float, rng: np.random.Generator, paper_variant: bool = False) -> float:
  """With probability 0.1 flips the sign, otherwise scales the magnitude."""
  if rng.random() < SIGN_FLIP_PROB:
    return -value
  return scale_magnitude(value, rng, paper_variant)


def alter_field(inst: Instruction, name: str, role: Role, rng: np.random.Generator,
                paper_variant: bool = False) -> Instruction:
  """Alters one data field by its role: index re-drawn, value flipped or scaled, std scaled."""
  if role is Role.INDEX:
    value = random_field(name, role, rng)
  elif role is Role.VALUE:
    value = flip_or_scale(getattr(inst, name), rng, paper_variant)
  else:
    value = scale_magnitude(getattr(inst, name), rng, paper_variant)
  if name != "activation":
    with np.errstate(over="ignore"):  # float32 overflow gives inf, as in the original
      value = float32(value)
  return inst._replace(**{name: value})


def alter_data(inst: Instruction, rng: np.random.Generator,
               paper_variant: bool = False) -> Instruction:
  """AlterData: changes one uniformly chosen data field; uniform bounds are then sorted."""
  fields = DATA_FIELDS[inst.spec.data]
  name, role = fields[uniform_index(rng, len(fields))]
  altered = alter_field(inst, name, role, rng, paper_variant)
  if inst.spec.data is ops.Data.UNIFORM:
    low, high = sorted((altered.f0, altered.f1))
    altered = altered._replace(f0=low, f1=high)
  return altered


def alter_param(inst: Instruction, memory: Memory, rng: np.random.Generator,
                paper_variant: bool = False) -> Instruction:
  """AlterParam: re-draws one input or output address, or alters the data (REFERENCE.md §7.5).

  The choice is uniform over the op's fields: in1 (and in2) for each input, out, and data for ops
  with data. So set-ops pick out/data with 1/2 each, 1-input ops in1/out, 2-input ops in1/in2/out
  with 1/3 each. A NO_OP is returned unchanged.
  """
  spec = inst.spec
  if spec.output is None:
    return inst
  fields = [(f"in{i}", kind) for i, kind in enumerate(spec.inputs, start=1)]
  fields.append(("out", spec.output))
  if spec.data is not ops.Data.NONE:
    fields.append(("data", None))
  field, kind = fields[uniform_index(rng, len(fields))]
  if field == "data":
    return alter_data(inst, rng, paper_variant)
  address = memory.random_output(kind, rng) if field == "out" else memory.random_input(kind, rng)
  return inst._replace(**{field: address})


@dataclasses.dataclass(frozen=True)
class Mutator:
  """Mutation configuration; `mutate(parent, rng)` makes one child.

  `min_sizes` / `max_sizes` bound Setup, Predict, Learn for insert and remove: sizes stay in
  [min, max - 1] (the original's max is effectively exclusive). `paper_variant` switches to the
  paper's rules: constants scaled by U[0.5, 2] and removal twice as likely as insertion.
  """

  randomizer: Randomizer
  mutation_types: tuple[MutationType, ...]
  mutate_prob: float = 0.9
  min_sizes: tuple[int, int, int] = (0, 0, 0)
  max_sizes: tuple[int, int, int] = (0, 0, 0)
  paper_variant: bool = False
  _cumulative_weights: tuple[float, ...] = dataclasses.field(init=False, repr=False,
                                                             compare=False)

  def __post_init__(self):
    types = tuple(MutationType.parse(t) if isinstance(t, str) else MutationType(t)
                  for t in self.mutation_types)
    if not types:
      raise ValueError("mutation_types must list at least one mutation type")
    if not self.randomizer.mutable_components:
      raise ValueError("at least one component function needs a non-empty op list to mutate")
    if not 0.0 <= self.mutate_prob:
      raise ValueError(f"mutate_prob must be >= 0, got {self.mutate_prob}")
    object.__setattr__(self, "mutation_types", types)
    object.__setattr__(self, "min_sizes", check_sizes(self.min_sizes, "min_sizes"))
    object.__setattr__(self, "max_sizes", check_sizes(self.max_sizes, "max_sizes"))
    weights = [2.0 if self.paper_variant and t == MutationType.REMOVE_INSTRUCTION else 1.0
               for t in types]
    object.__setattr__(self, "_cumulative_weights", tuple(itertools.accumulate(weights)))

  def mutate(self, program: Program, rng: np.random.Generator) -> Program:
    """With probability mutate_prob applies one random action; otherwise returns the parent."""
    if self.mutate_prob < 1.0 and not np.float32(rng.random()) < self.mutate_prob:
      return program
    return self.apply(self.choose_action(rng), program, rng)

  def choose_action(self, rng: np.random.Generator) -> MutationType:
    """Uniform over the listed types (duplicates weight them; paper variant: removal x2)."""
    draw = rng.random() * self._cumulative_weights[-1]
    return self.mutation_types[bisect.bisect_right(self._cumulative_weights, draw)]

  def apply(self, action: MutationType, program: Program, rng: np.random.Generator) -> Program:
    """Applies one mutation action (REFERENCE.md §7.3)."""
    if action == MutationType.IDENTITY:
      return program
    if action == MutationType.RANDOMIZE_ALGORITHM:
      return self.randomizer.program(program, rng)
    name = self.choose_component(rng)
    parts = {"setup": program.setup, "predict": program.predict, "learn": program.learn}
    parts[name] = tuple(_EDITS[action](self, name, list(parts[name]), rng))
    return Program(**parts)

  def choose_component(self, rng: np.random.Generator) -> str:
    """Uniform among the functions with a non-empty op list, whatever their length."""
    names = self.randomizer.mutable_components
    return names[uniform_index(rng, len(names))]

  # Edits of one function's instruction list: (function name, list, rng) -> list.

  def _alter_param(self, name, insts, rng):
    if insts:
      index = uniform_index(rng, len(insts))
      insts[index] = alter_param(insts[index], self.randomizer.memory, rng, self.paper_variant)
    return insts

  def _randomize_instruction(self, name, insts, rng):
    if insts:
      insts[uniform_index(rng, len(insts))] = self.randomizer.instruction(name, rng)
    return insts

  def _randomize_component(self, name, insts, rng):
    return self.randomizer.instructions(name, len(insts), rng)

  def _insert(self, name, insts, rng):
    if len(insts) >= self.max_sizes[COMPONENTS.index(name)] - 1:
      return insts
    return self._insert_random(name, insts, rng)

  def _remove(self, name, insts, rng):
    if len(insts) <= self.min_sizes[COMPONENTS.index(name)]:
      return insts
    return self._remove_random(insts, rng)

  def _trade(self, name, insts, rng):
    return self._remove_random(self._insert_random(name, insts, rng), rng)

  def _insert_random(self, name, insts, rng):
    """Inserts a random instruction at a uniform position in [0, size] (appending included)."""
    insts.insert(uniform_index(rng, len(insts) + 1), self.randomizer.instruction(name, rng))
    return insts

  @staticmethod
  def _remove_random(insts, rng):
    del insts[uniform_index(rng, len(insts))]
    return insts


_EDITS = {
    MutationType.ALTER_PARAM: Mutator._alter_param,
    MutationType.RANDOMIZE_INSTRUCTION: Mutator._randomize_instruction,
    MutationType.RANDOMIZE_COMPONENT_FUNCTION: Mutator._randomize_component,
    MutationType.INSERT_INSTRUCTION: Mutator._insert,
    MutationType.REMOVE_INSTRUCTION: Mutator._remove,
    MutationType.TRADE_INSTRUCTION: Mutator._trade,
}


def parse_mutation_types(names: Sequence[str | int]) -> tuple[MutationType, ...]:
  """Parses a list of mutation type names or ids (see `MutationType.parse`)."""
  return tuple(MutationType.parse(name) for name in names)
