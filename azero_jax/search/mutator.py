"""The mutator (REFERENCE.md §7): one random action per child with probability `mutate_prob`.

Children are made in batches, as rows of packed tables (`program.PackedPopulation`), with every
draw of a batch taken at once; `Mutator.mutate` runs one Program through the same code.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
from collections.abc import Sequence

import numpy as np

from azero_jax.program import (
  COMPONENTS,
  Instruction,
  PackedComponent,
  PackedPopulation,
  Program,
  instructions_from_rows,
  pack,
  unpack,
  with_slots,
)
from azero_jax.search.randomizer import (
  DATA_COLUMNS,
  DATA_PLAN,
  INDEX,
  VALUE,
  Memory,
  Randomizer,
  address_plan,
  check_sizes,
  fresh_values,
  uniform_indices,
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


def scaled(values: np.ndarray, rng: np.random.Generator,
           paper_variant: bool = False) -> np.ndarray:
  """|value| times exp(N(0, 1)) (paper: U[0.5, 2]) keeping the sign; 0 becomes -0.0."""
  factor = (rng.uniform(*PAPER_SCALE_RANGE, values.shape) if paper_variant
            else np.exp(rng.standard_normal(values.shape)))
  magnitude = np.abs(values) * factor
  return np.where(values > 0, magnitude, -magnitude)


def flipped_or_scaled(values: np.ndarray, rng: np.random.Generator,
                      paper_variant: bool = False) -> np.ndarray:
  """Each value: with probability 0.1 its sign flipped, otherwise `scaled`."""
  flip = rng.random(values.shape) < SIGN_FLIP_PROB
  return np.where(flip, -values, scaled(values, rng, paper_variant))


def alter_data_rows(rows: np.ndarray, rng: np.random.Generator,
                    paper_variant: bool = False) -> np.ndarray:
  """AlterData on each instruction row [n, 8]: one uniformly chosen data field changes by its
  role (index re-drawn, value flipped or scaled, std scaled); uniform bounds are then sorted.
  Rows of ops without data are unchanged."""
  rows = rows.copy()
  op = rows[:, 0].astype(np.int64)
  lanes = np.nonzero(DATA_PLAN.num_fields[op])[0]
  op = op[lanes]
  field = uniform_indices(rng, DATA_PLAN.num_fields[op])
  column, role = DATA_PLAN.column[op, field], DATA_PLAN.role[op, field]
  old = rows[lanes, column]
  new = np.where(role == INDEX, fresh_values(role, column, rng),
                 np.where(role == VALUE, flipped_or_scaled(old, rng, paper_variant),
                          scaled(old, rng, paper_variant)))
  with np.errstate(over="ignore"):  # float32 overflow gives inf, as in the original
    narrow = new.astype(np.float32).astype(np.float64)
  rows[lanes, column] = np.where(column == DATA_COLUMNS["activation"], new, narrow)
  bounds = lanes[DATA_PLAN.uniform_bounds[op]]
  rows[bounds, 5:7] = np.sort(rows[bounds, 5:7], axis=1)
  return rows


def alter_param_rows(rows: np.ndarray, memory: Memory, rng: np.random.Generator,
                     paper_variant: bool = False) -> np.ndarray:
  """AlterParam on each instruction row [n, 8] (REFERENCE.md §7.5): re-draws one input or output
  address, or alters the data.

  The choice is uniform over the op's fields: in1 (and in2) for each input, out, and data for ops
  with data. So set-ops pick out/data with 1/2 each, 1-input ops in1/out, 2-input ops in1/in2/out
  with 1/3 each. NO_OP rows are unchanged.
  """
  plan = address_plan(memory)
  rows = rows.copy()
  op = rows[:, 0].astype(np.int64)
  num_inputs = plan.num_inputs[op]
  num_fields = num_inputs + 1 + (DATA_PLAN.num_fields[op] > 0)
  field = np.where(plan.has_output[op], uniform_indices(rng, num_fields), -1)
  for slot in range(2):
    lanes = np.nonzero((field == slot) & (slot < num_inputs))[0]
    rows[lanes, 1 + slot] = uniform_indices(rng, plan.input_sizes[op[lanes], slot])
  lanes = np.nonzero(field == num_inputs)[0]
  rows[lanes, 3] = plan.first_out[op[lanes]] + uniform_indices(rng, plan.out_span[op[lanes]])
  lanes = np.nonzero(field > num_inputs)[0]
  rows[lanes] = alter_data_rows(rows[lanes], rng, paper_variant)
  return rows


def _row(inst: Instruction) -> np.ndarray:
  return np.array([inst], dtype=np.float64)


def alter_data(inst: Instruction, rng: np.random.Generator,
               paper_variant: bool = False) -> Instruction:
  """`alter_data_rows` on one instruction."""
  return instructions_from_rows(alter_data_rows(_row(inst), rng, paper_variant))[0]


def alter_param(inst: Instruction, memory: Memory, rng: np.random.Generator,
                paper_variant: bool = False) -> Instruction:
  """`alter_param_rows` on one instruction."""
  return instructions_from_rows(alter_param_rows(_row(inst), memory, rng, paper_variant))[0]


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
    return self.apply(self.draw_actions(1, rng)[0], program, rng)

  def mutate_batch(self, parents: PackedPopulation, rng: np.random.Generator) -> PackedPopulation:
    """One child per packed parent, all drawn at once (`mutate` row by row, in distribution)."""
    return self.apply_batch(self.draw_actions(parents.size, rng), parents, rng)

  def draw_actions(self, count: int, rng: np.random.Generator) -> np.ndarray:
    """Per child: IDENTITY with probability 1 - mutate_prob, else `choose_actions`."""
    actions = self.choose_actions(count, rng)
    if self.mutate_prob < 1.0:
      kept = ~(rng.random(count).astype(np.float32) < self.mutate_prob)
      actions[kept] = MutationType.IDENTITY
    return actions

  def choose_actions(self, count: int, rng: np.random.Generator) -> np.ndarray:
    """An action per child, uniform over the listed types (duplicates weight them; paper
    variant: removal x2)."""
    draws = rng.random(count) * self._cumulative_weights[-1]
    return np.asarray(self.mutation_types)[
        np.searchsorted(self._cumulative_weights, draws, side="right")]

  def apply(self, action: MutationType, program: Program, rng: np.random.Generator) -> Program:
    """Applies one mutation action (REFERENCE.md §7.3); IDENTITY returns the parent itself."""
    if action == MutationType.IDENTITY:
      return program
    packed = pack([program], [size + 1 for size in program.sizes])
    return unpack(self.apply_batch(np.array([action]), packed, rng))[0]

  def apply_batch(self, actions: np.ndarray, parents: PackedPopulation,
                  rng: np.random.Generator) -> PackedPopulation:
    """Applies `actions[i]` to parent i. Each function keeps its packed width, widened by one
    only if an insertion needs it."""
    tables = [component.table.copy() for component in parents]
    lengths = [component.length.copy() for component in parents]
    names = self.randomizer.mutable_components  # the function choice ignores their lengths
    whole = np.nonzero(actions == MutationType.RANDOMIZE_ALGORITHM)[0]
    for name in names:
      index = COMPONENTS.index(name)
      tables[index][whole] = self._randomize_slots(name, tables[index][whole],
                                                   lengths[index][whole], rng)
    lanes = np.nonzero(np.isin(actions, list(_EDITS)))[0]
    chosen = uniform_indices(rng, np.full(lanes.size, len(names)))
    for position, name in enumerate(names):
      index, group = COMPONENTS.index(name), lanes[chosen == position]
      if _needs_room(actions[group], lengths[index][group], tables[index].shape[1]):
        tables[index] = with_slots(tables[index], tables[index].shape[1] + 1)
      for action, edit in _EDITS.items():
        rows = group[actions[group] == action]
        if rows.size:
          tables[index][rows], lengths[index][rows] = edit(
              self, name, tables[index][rows], lengths[index][rows], rng)
    return PackedPopulation(*map(PackedComponent, tables, lengths))

  # Edits of one function of k children: (name, table [k, W, 8], lengths [k], rng) -> both.

  def _alter_param(self, name, table, length, rng):
    rows = np.nonzero(length)[0]
    slots = uniform_indices(rng, length[rows])
    table[rows, slots] = alter_param_rows(table[rows, slots], self.randomizer.memory, rng,
                                          self.paper_variant)
    return table, length

  def _randomize_instruction(self, name, table, length, rng):
    rows = np.nonzero(length)[0]
    table[rows, uniform_indices(rng, length[rows])] = self.randomizer.rows(name, rows.size, rng)
    return table, length

  def _randomize_component(self, name, table, length, rng):
    return self._randomize_slots(name, table, length, rng), length

  def _insert(self, name, table, length, rng):
    rows = np.nonzero(length < self.max_sizes[COMPONENTS.index(name)] - 1)[0]
    table[rows], length[rows] = self._insert_random(name, table[rows], length[rows], rng)
    return table, length

  def _remove(self, name, table, length, rng):
    rows = np.nonzero(length > self.min_sizes[COMPONENTS.index(name)])[0]
    table[rows], length[rows] = _remove_random(table[rows], length[rows], rng)
    return table, length

  def _trade(self, name, table, length, rng):
    wider = with_slots(table, table.shape[1] + 1)
    wider, grown = self._insert_random(name, wider, length, rng)
    wider, length = _remove_random(wider, grown, rng)
    return wider[:, :-1], length

  def _randomize_slots(self, name, table, length, rng):
    """Every instruction replaced by a random one; lengths kept."""
    used = np.arange(table.shape[1]) < length[:, None]
    table[used] = self.randomizer.rows(name, int(used.sum()), rng)
    return table

  def _insert_random(self, name, table, length, rng):
    """A random instruction at a uniform position in [0, size] (appending included); needs a
    free slot in every row."""
    position = uniform_indices(rng, length + 1)[:, None]
    slots = np.arange(table.shape[1])[None]
    table = np.take_along_axis(table, (slots - (slots > position))[..., None], axis=1)
    table[np.arange(len(table)), position[:, 0]] = self.randomizer.rows(name, len(table), rng)
    return table, length + 1


def _remove_random(table, length, rng):
  """Removes the instruction at a uniform position of every row (each has at least one)."""
  position = uniform_indices(rng, length)[:, None]
  slots = np.arange(table.shape[1])[None]
  source = np.minimum(slots + (slots >= position), table.shape[1] - 1)
  table = np.take_along_axis(table, source[..., None], axis=1)
  table[slots >= (length - 1)[:, None]] = 0.0  # NO_OP padding
  return table, length - 1


def _needs_room(actions, length, width) -> bool:
  """Whether an insertion among these children fills its function's packed width."""
  return bool(np.any((actions == MutationType.INSERT_INSTRUCTION) & (length >= width)))


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
