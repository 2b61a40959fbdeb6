"""The mutator (REFERENCE.md §7): one random action per child with probability `mutate_prob`.

Children are made in batches, as rows of packed tables (`program.PackedPopulation`), in one array
pass over the whole batch: each child's action, function, positions and parameter change come from
its own row of `CONTROL_DRAWS` uniforms, then the random instructions it needs from `ROW_DRAWS`
uniforms each. The draws come from `randomizer.Streams`, so the children of several islands each
draw from their island's generator in one pass; `Mutator.mutate` runs one Program through the same
code.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence

import numpy as np

from azero_jax.program import (
  COMPONENTS,
  Instruction,
  PackedComponent,
  PackedPopulation,
  Program,
  ProgramBatch,
  instructions_from_rows,
  pack,
  with_slots,
)
from azero_jax.search.randomizer import (
  DATA_COLUMNS,
  DATA_PLAN,
  INDEX,
  ROW_DRAWS,
  VALUE,
  Memory,
  Randomizer,
  Streams,
  address_plan,
  check_sizes,
  fresh_values,
  uniform_indices,
)

SIGN_FLIP_PROB = 0.1  # kSignFlipProb
PAPER_SCALE_RANGE = (0.5, 2.0)  # the paper's constant mutation: x U[0.5, 2] (paper S3)

# Uniforms per altered value: field choice, fresh value, sign flip, two for the scale factor.
DATA_DRAWS = 5
# Uniforms per AlterParam: field choice, new address, then AlterData's.
ALTER_DRAWS = 2 + DATA_DRAWS
# Columns of a child's control uniforms: mutate or not, action, function, position (of the
# instruction to alter or randomize, or of the insertion), removal position, then AlterParam's.
KEEP, ACTION, FUNCTION, POSITION, REMOVAL, ALTER = range(6)
CONTROL_DRAWS = ALTER + ALTER_DRAWS


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


def scaled(values: np.ndarray, uniforms: np.ndarray, paper_variant: bool = False) -> np.ndarray:
  """|value| times exp(N(0, 1)) (paper: U[0.5, 2]) keeping the sign; 0 becomes -0.0. Two
  uniforms [n, 2] per value: the normal by Box-Muller, the paper's factor from the first."""
  if paper_variant:
    low, high = PAPER_SCALE_RANGE
    factor = low + (high - low) * uniforms[:, 0]
  else:
    normal = np.sqrt(-2.0 * np.log1p(-uniforms[:, 0])) * np.cos(2.0 * np.pi * uniforms[:, 1])
    factor = np.exp(normal)
  magnitude = np.abs(values) * factor
  return np.where(values > 0, magnitude, -magnitude)


def flipped_or_scaled(values: np.ndarray, uniforms: np.ndarray,
                      paper_variant: bool = False) -> np.ndarray:
  """Each value: with probability 0.1 its sign flipped (the first of three uniforms [n, 3]),
  otherwise `scaled` (the other two)."""
  flip = uniforms[:, 0] < SIGN_FLIP_PROB
  return np.where(flip, -values, scaled(values, uniforms[:, 1:], paper_variant))


def alter_data_rows(rows: np.ndarray, uniforms: np.ndarray,
                    paper_variant: bool = False) -> np.ndarray:
  """AlterData on each instruction row [n, 8] from uniforms [n, DATA_DRAWS]: one uniformly chosen
  data field changes by its role (index re-drawn, value flipped or scaled, std scaled); uniform
  bounds are then sorted. Rows of ops without data are unchanged."""
  rows = rows.copy()
  op = rows[:, 0].astype(np.int64)
  lanes = np.nonzero(DATA_PLAN.num_fields[op])[0]
  op, uniforms = op[lanes], uniforms[lanes]
  field = uniform_indices(uniforms[:, 0], DATA_PLAN.num_fields[op])
  column, role = DATA_PLAN.column[op, field], DATA_PLAN.role[op, field]
  old = rows[lanes, column]
  new = np.where(role == INDEX, fresh_values(role, column, uniforms[:, 1]),
                 np.where(role == VALUE, flipped_or_scaled(old, uniforms[:, 2:], paper_variant),
                          scaled(old, uniforms[:, 3:], paper_variant)))
  with np.errstate(over="ignore"):  # float32 overflow gives inf, as in the original
    narrow = new.astype(np.float32).astype(np.float64)
  rows[lanes, column] = np.where(column == DATA_COLUMNS["activation"], new, narrow)
  bounds = lanes[DATA_PLAN.uniform_bounds[op]]
  rows[bounds, 5:7] = np.sort(rows[bounds, 5:7], axis=1)
  return rows


def alter_param_rows(rows: np.ndarray, memory: Memory, uniforms: np.ndarray,
                     paper_variant: bool = False) -> np.ndarray:
  """AlterParam on each instruction row [n, 8] from uniforms [n, ALTER_DRAWS] (REFERENCE.md
  §7.5): re-draws one input or output address, or alters the data.

  The choice is uniform over the op's fields: in1 (and in2) for each input, out, and data for ops
  with data. So set-ops pick out/data with 1/2 each, 1-input ops in1/out, 2-input ops in1/in2/out
  with 1/3 each. NO_OP rows are unchanged.
  """
  plan = address_plan(memory)
  rows = rows.copy()
  op = rows[:, 0].astype(np.int64)
  num_inputs = plan.num_inputs[op]
  num_fields = num_inputs + 1 + (DATA_PLAN.num_fields[op] > 0)
  field = np.where(plan.has_output[op], uniform_indices(uniforms[:, 0], num_fields), -1)
  lanes = np.nonzero((field >= 0) & (field < num_inputs))[0]
  slot = field[lanes]
  rows[lanes, 1 + slot] = uniform_indices(uniforms[lanes, 1], plan.input_sizes[op[lanes], slot])
  lanes = np.nonzero(field == num_inputs)[0]
  rows[lanes, 3] = plan.first_out[op[lanes]] + uniform_indices(uniforms[lanes, 1],
                                                               plan.out_span[op[lanes]])
  lanes = np.nonzero(field > num_inputs)[0]
  rows[lanes] = alter_data_rows(rows[lanes], uniforms[lanes, 2:], paper_variant)
  return rows


def _row(inst: Instruction) -> np.ndarray:
  return np.array([inst], dtype=np.float64)


def alter_data(inst: Instruction, rng: np.random.Generator,
               paper_variant: bool = False) -> Instruction:
  """`alter_data_rows` on one instruction."""
  return instructions_from_rows(
      alter_data_rows(_row(inst), rng.random((1, DATA_DRAWS)), paper_variant))[0]


def alter_param(inst: Instruction, memory: Memory, rng: np.random.Generator,
                paper_variant: bool = False) -> Instruction:
  """`alter_param_rows` on one instruction."""
  return instructions_from_rows(
      alter_param_rows(_row(inst), memory, rng.random((1, ALTER_DRAWS)), paper_variant))[0]


# The action ids as plain ints, for array comparisons (an enum member lookup costs microseconds).
(_ALTER_PARAM, _RANDOMIZE_INSTRUCTION, _RANDOMIZE_FUNCTION, _IDENTITY, _INSERT, _REMOVE, _TRADE,
 _RANDOMIZE_ALGORITHM) = map(int, MutationType)


@dataclasses.dataclass(frozen=True)
class Mutator:
  """Mutation configuration; `mutate(parent, rng)` makes one child, `mutate_batch` many.

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
  _cumulative_weights: np.ndarray = dataclasses.field(init=False, repr=False, compare=False)
  _type_ids: np.ndarray = dataclasses.field(init=False, repr=False, compare=False)
  _mutable: np.ndarray = dataclasses.field(init=False, repr=False, compare=False)  # function ids

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
    object.__setattr__(self, "_cumulative_weights", np.cumsum(weights))
    object.__setattr__(self, "_type_ids", np.array(types, np.int64))
    object.__setattr__(self, "_mutable", np.array(
        [COMPONENTS.index(name) for name in self.randomizer.mutable_components]))

  def mutate(self, program: Program, rng: np.random.Generator) -> Program:
    """`mutate_batch` on one program; an unchanged child is the parent itself."""
    child = ProgramBatch(self.mutate_batch(pack([program], program.sizes),
                                           Streams.of(rng, 1)))[0]
    return program if child == program else child

  def draw_actions(self, keep: np.ndarray, choice: np.ndarray) -> np.ndarray:
    """Per child from two uniforms: IDENTITY with probability 1 - mutate_prob (`keep`), else
    `choose_actions` (`choice`)."""
    actions = self.choose_actions(choice)
    if self.mutate_prob < 1.0:
      actions[~(keep.astype(np.float32) < self.mutate_prob)] = _IDENTITY
    return actions

  def choose_actions(self, uniforms: np.ndarray) -> np.ndarray:
    """An action id per uniform, uniform over the listed types (duplicates weight them; paper
    variant: removal x2)."""
    return self._type_ids[np.searchsorted(self._cumulative_weights,
                                          uniforms * self._cumulative_weights[-1], side="right")]

  def mutate_batch(self, parents: PackedPopulation, streams: Streams) -> PackedPopulation:
    """One child per packed parent, parent i drawing from its group's generator in `streams`.

    All children in one pass over the three functions' slots side by side: the chosen function of
    each child is shifted (insert, remove; a trade is both) or altered, the slots that need a new
    random instruction are marked, and then all of them are drawn at once. Each function keeps its
    packed width, widened by one only if an insertion needs it.
    """
    draws = streams.uniforms(CONTROL_DRAWS)
    actions = self.draw_actions(draws[:, KEEP], draws[:, ACTION])
    children = np.arange(parents.size)
    lengths = np.stack([component.length for component in parents], axis=1).astype(np.int64)
    mutable = self._mutable
    target = mutable[uniform_indices(draws[:, FUNCTION], mutable.size)]  # ignores the lengths
    length = lengths[children, target]
    trade = actions == _TRADE
    insert = trade | ((actions == _INSERT) & (length < np.take(self.max_sizes, target) - 1))
    remove = trade | ((actions == _REMOVE) & (length > np.take(self.min_sizes, target)))
    widths = np.array(parents.widths)
    full = insert & ~trade & (length >= widths[target])  # a trade never widens
    widths += np.bincount(target[full], minlength=len(widths)) > 0
    table = np.concatenate([with_slots(component.table, width) if width > component.table.shape[1]
                            else component.table for component, width in zip(parents, widths)],
                           axis=1)
    offsets = np.cumsum(widths) - widths
    function = np.repeat(np.arange(len(widths)), widths)  # of each column of `table`
    slot = np.arange(table.shape[1]) - offsets[function]  # within its function
    # Whole functions randomized: the chosen one, or all with ops for RANDOMIZE_ALGORITHM.
    whole = (((actions == _RANDOMIZE_FUNCTION)[:, None] & (function == target[:, None]))
             | ((actions == _RANDOMIZE_ALGORITHM)[:, None] & (function[:, None] == mutable).any(1)))
    fresh = whole & (slot < lengths[:, function])
    # One instruction randomized or altered at a slot in [0, size); an insertion at [0, size].
    position = uniform_indices(draws[:, POSITION], length + insert)
    column = offsets[target] + position
    one = length > 0
    replaced = np.nonzero(one & (actions == _RANDOMIZE_INSTRUCTION))[0]
    fresh[replaced, column[replaced]] = True
    altered = np.nonzero(one & (actions == _ALTER_PARAM))[0]
    table[altered, column[altered]] = alter_param_rows(
        table[altered, column[altered]], self.randomizer.memory, draws[altered, ALTER:],
        self.paper_variant)
    moved = np.nonzero(insert | remove)[0]
    if moved.size:
      table[moved], fresh[moved] = _shifted(
          table[moved], np.where(function == target[moved, None], slot, -1),
          widths[target[moved]], length[moved], insert[moved], remove[moved], position[moved],
          uniform_indices(draws[moved, REMOVAL], length[moved] + insert[moved]))
      lengths[moved, target[moved]] += insert[moved].astype(np.int64) - remove[moved]
    child, column = np.nonzero(fresh)
    table[child, column] = self.randomizer.rows_of(
        function[column], streams.expand(fresh.sum(axis=1)).uniforms(ROW_DRAWS))
    return PackedPopulation(*(
        PackedComponent(np.ascontiguousarray(table[:, offset:offset + width]),
                        lengths[:, index].astype(np.int32))
        for index, (offset, width) in enumerate(zip(offsets, widths))))


def _shifted(table, slot, width, length, insert, remove, position, removal):
  """Children's tables [n, columns, 8] after an insertion at `position` and then the removal of
  the instruction at `removal` (either or both) in one function: `slot` [n, columns] gives each
  column's slot in it (negative outside it), `width` and `length` [n] its width and size.
  Returns the tables (padded with NO_OP past the new size) and their fresh slots (the inserted
  ones) [n, columns]."""
  insert, remove = insert[:, None], remove[:, None]
  position, removal = position[:, None], removal[:, None]
  inside = slot >= 0
  after = slot + (remove & (slot >= removal))  # its slot in the list after the insertion
  fresh = inside & insert & (after == position)
  before = np.minimum(after - (insert & (after > position)), width[:, None] - 1)  # and before it
  columns = np.arange(table.shape[1])
  table = np.take_along_axis(table, np.where(inside, columns + before - slot, columns)[..., None],
                             axis=1)
  table[inside & (slot >= (length + insert[:, 0] - remove[:, 0])[:, None])] = 0.0
  return table, fresh


def parse_mutation_types(names: Sequence[str | int]) -> tuple[MutationType, ...]:
  """Parses a list of mutation type names or ids (see `MutationType.parse`)."""
  return tuple(MutationType.parse(name) for name in names)
