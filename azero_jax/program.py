"""Programs as data: instructions, the three component functions, text form and packed arrays."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from azero_jax import ops

COMPONENTS = ("setup", "predict", "learn")
_HEADERS = {"setup": "def Setup():", "predict": "def Predict():", "learn": "def Learn():"}


def float32(value: float) -> float:
  """Rounds to the float32 value the original stores in `float_data_*`."""
  return float(np.float32(value))


class Instruction(NamedTuple):
  """One instruction; unused fields stay 0 (REFERENCE.md §2.1).

  `f0`, `f1`, `f2` hold float32 values (stored as Python floats); `activation` is float64.
  """

  op: int = ops.NO_OP
  in1: int = 0
  in2: int = 0
  out: int = 0
  activation: float = 0.0
  f0: float = 0.0
  f1: float = 0.0
  f2: float = 0.0

  @property
  def spec(self) -> ops.Op:
    return ops.OPS[self.op]

  def to_text(self) -> str:
    """The original's printed form, e.g. ``s3 = s0 - s1``."""
    spec = self.spec
    fields = {"act": _format_constant(self.activation), "f0": _format_constant(self.f0),
              "f1": _format_constant(self.f1), "f2": _format_constant(self.f2)}
    for name, kind, address in zip("ab", spec.inputs, (self.in1, self.in2)):
      fields[name] = f"{kind}{address}"
    if spec.output is not None:
      fields["o"] = f"{spec.output}{self.out}"
    return spec.template.format(**fields)

  def registers(self) -> list[tuple[str, int]]:
    """(kind, address) of every register the instruction reads or writes."""
    spec = self.spec
    used = list(zip(spec.inputs, (self.in1, self.in2)))
    if spec.output is not None:
      used.append((spec.output, self.out))
    return used


def _format_constant(value: float) -> str:
  """C++ default stream formatting: 6 significant digits."""
  return "%g" % value


@dataclasses.dataclass(frozen=True)
class Program:
  """An algorithm: the Setup, Predict and Learn instruction lists."""

  setup: tuple[Instruction, ...] = ()
  predict: tuple[Instruction, ...] = ()
  learn: tuple[Instruction, ...] = ()

  def __post_init__(self):
    for name in COMPONENTS:
      instructions = getattr(self, name)
      if type(instructions) is not tuple or {*map(type, instructions)} - {Instruction}:
        object.__setattr__(self, name, tuple(Instruction(*i) for i in instructions))

  def component(self, name: str) -> tuple[Instruction, ...]:
    return getattr(self, name)

  def replace(self, **components) -> Program:
    return dataclasses.replace(self, **components)

  @property
  def sizes(self) -> tuple[int, int, int]:
    return tuple(len(self.component(name)) for name in COMPONENTS)

  def ops_used(self) -> set[int]:
    return {inst.op for name in COMPONENTS for inst in self.component(name)}

  def to_text(self) -> str:
    """The original's readable form: a header per function, two-space indented instructions."""
    lines = []
    for name in COMPONENTS:
      lines.append(_HEADERS[name])
      lines.extend("  " + inst.to_text() for inst in self.component(name))
    return "\n".join(lines) + "\n"

  @classmethod
  def from_text(cls, text: str) -> Program:
    """Parses the readable form; raises `ProgramSyntaxError` naming the offending line."""
    return parse_program(text)

  def check_addresses(self, num_scalars: int, num_vectors: int, num_matrices: int) -> None:
    """Raises ValueError if an instruction uses an address outside the memory sizes."""
    limits = {ops.SCALAR: num_scalars, ops.VECTOR: num_vectors, ops.MATRIX: num_matrices}
    for name in COMPONENTS:
      for position, inst in enumerate(self.component(name)):
        for kind, address in inst.registers():
          if not 0 <= address < limits[kind]:
            raise ValueError(
                f"{name} instruction {position} `{inst.to_text()}` uses {kind}{address}, but "
                f"memory has only {limits[kind]} {_KIND_WORDS[kind]} "
                f"(addresses 0..{limits[kind] - 1})")


_KIND_WORDS = {ops.SCALAR: "scalars", ops.VECTOR: "vectors", ops.MATRIX: "matrices"}


# ---------------------------------------------------------------------------------------------
# Parsing.


class ProgramSyntaxError(ValueError):
  """Program text that cannot be parsed; the message names the line and what was expected."""


_NUMBER = r"([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|inf))"


def _template_regex(op: ops.Op) -> re.Pattern:
  pattern = re.escape(op.template)
  for name, kind in zip("ab", op.inputs):
    pattern = pattern.replace(re.escape("{" + name + "}"), kind + r"(\d+)")
  if op.output is not None:
    pattern = pattern.replace(re.escape("{o}"), op.output + r"(\d+)")
  for name in ("act", "f0", "f1", "f2"):
    pattern = pattern.replace(re.escape("{" + name + "}"), _NUMBER)
  return re.compile(pattern + r"\Z")


def _template_fields(op: ops.Op) -> list[str]:
  """The template's placeholders in the order they appear."""
  return re.findall(r"\{(\w+)\}", op.template)


_PARSERS = [(op, _template_regex(op), _template_fields(op)) for op in ops.OPS]


def parse_instruction(line: str) -> Instruction:
  """Parses one printed instruction (without indentation)."""
  text = line.strip()
  for op, regex, names in _PARSERS:
    match = regex.match(text)
    if match is None:
      continue
    fields = dict(zip(names, match.groups()))
    return Instruction(
        op=op.id,
        in1=int(fields.get("a", 0)),
        in2=int(fields.get("b", 0)),
        out=int(fields.get("o", 0)),
        activation=float(fields.get("act", 0.0)),
        f0=float32(float(fields.get("f0", 0.0))),
        f1=float32(float(fields.get("f1", 0.0))),
        f2=float32(float(fields.get("f2", 0.0))))
  raise ValueError(f"`{text}` is not an instruction: expected one of the printed forms such as "
                   "`s3 = s0 - s1`, `s1 = dot(v1, v0)`, `v2 = s3 * v0` or `NoOp()`")


def parse_program(text: str) -> Program:
  """Parses text in the form of `Program.to_text`; blank lines and `#` comments are ignored."""
  components: dict[str, list[Instruction]] = {}
  current = None
  headers = {header: name for name, header in _HEADERS.items()}
  for number, raw in enumerate(text.splitlines(), start=1):
    line = raw.split("#", 1)[0].strip()
    if not line:
      continue
    if line in headers:
      name = headers[line]
      expected = COMPONENTS[len(components)] if len(components) < 3 else None
      if name != expected:
        raise ProgramSyntaxError(
            f"line {number}: `{line}` out of order: expected "
            f"{_HEADERS[expected] if expected else 'no further function header'} "
            "(functions come in the order Setup, Predict, Learn, each once)")
      current = components.setdefault(name, [])
      continue
    if current is None:
      raise ProgramSyntaxError(
          f"line {number}: `{line}` before any function header: expected `def Setup():`")
    try:
      current.append(parse_instruction(line))
    except ValueError as error:
      raise ProgramSyntaxError(f"line {number}: {error}") from None
  missing = [_HEADERS[name] for name in COMPONENTS if name not in components]
  if missing:
    raise ProgramSyntaxError(f"missing function header(s): expected {', '.join(missing)}")
  return Program(**components)


# ---------------------------------------------------------------------------------------------
# Packed arrays for a population.


def _table_field(column, dtype) -> property:
  """A named field of a PackedComponent: column(s) of its table as `dtype`."""
  return property(lambda self: self.table[..., column].astype(dtype))


class PackedComponent(NamedTuple):
  """One component function of a population as one padded table (padding is NO_OP).

  `table` [P, L, 8] float64 holds op, in1, in2, out, activation, f0, f1, f2 per slot (one array,
  so a population reaches the device in few transfers); `length` [P] int32 the unpadded lengths.
  The named fields below read the table, for NumPy and traced arrays alike.
  """

  table: np.ndarray
  length: np.ndarray | None

  op = _table_field(0, np.int32)
  in1 = _table_field(1, np.int32)
  in2 = _table_field(2, np.int32)
  out = _table_field(3, np.int32)
  activation = _table_field(4, np.float64)
  floats = _table_field(slice(5, 8), np.float32)  # f0, f1, f2


class PackedPopulation(NamedTuple):
  setup: PackedComponent
  predict: PackedComponent
  learn: PackedComponent

  @property
  def size(self) -> int:
    return self.setup.table.shape[0]

  @property
  def widths(self) -> tuple[int, int, int]:
    return tuple(component.table.shape[1] for component in self)

  def take(self, rows) -> PackedPopulation:
    """The programs at `rows` (integer indices or a slice)."""
    if isinstance(rows, slice):
      return PackedPopulation(*(PackedComponent(c.table[rows], c.length[rows]) for c in self))
    rows = np.asarray(rows)
    if rows.dtype == bool:
      raise TypeError("take: rows must be integer indices or a slice, not a mask")
    return PackedPopulation(*(PackedComponent(c.table.take(rows, axis=0), c.length.take(rows))
                              for c in self))

  def padded(self, widths: Sequence[int]) -> PackedPopulation:
    """The same programs with each function padded (NO_OP) to at least `widths`."""
    if all(c.table.shape[1] >= w for c, w in zip(self, widths)):
      return self
    return PackedPopulation(*(PackedComponent(with_slots(c.table, max(w, c.table.shape[1])),
                                              c.length) for c, w in zip(self, widths)))


def zero_padded(array: np.ndarray, shape: Sequence[int]) -> np.ndarray:
  """A copy of `array` extended with zeros at the end of each axis to `shape` (NO_OP rows and
  empty programs in packed tables). Like `np.pad`, without its ~40 us of overhead per call."""
  padded = np.zeros(tuple(shape), dtype=array.dtype)
  padded[tuple(slice(0, size) for size in array.shape)] = array
  return padded


def empty_population(count: int, widths: Sequence[int]) -> PackedPopulation:
  """`count` empty programs packed to `widths` (slots to be written over)."""
  return PackedPopulation(*(PackedComponent(np.zeros((count, width, 8)),
                                            np.zeros(count, np.int32)) for width in widths))


def with_slots(table: np.ndarray, width: int) -> np.ndarray:
  """A copy of a packed table [P, W, 8] with NO_OP slots appended up to `width` (>= W)."""
  count, _, fields = table.shape
  return zero_padded(table, (count, width, fields))


def pack_component(instruction_lists: Sequence[Sequence[Instruction]],
                   width: int) -> PackedComponent:
  """Packs instruction lists into [P, width] arrays, padding with NO_OP."""
  length = np.fromiter(map(len, instruction_lists), dtype=np.int32, count=len(instruction_lists))
  if length.size and length.max() > width:
    raise ValueError(f"a component has {length.max()} instructions, more than the packed "
                     f"width {width}")
  table = np.zeros((length.size, width, 8), dtype=np.float64)
  flat = [inst for instructions in instruction_lists for inst in instructions]
  if flat:
    rows = np.repeat(np.arange(length.size), length)
    slots = np.arange(rows.size) - np.repeat(np.cumsum(length) - length, length)
    table[rows, slots] = np.array(flat, dtype=np.float64)
  return PackedComponent(table, length)


def pack(programs: Sequence[Program], widths: Sequence[int]) -> PackedPopulation:
  """Packs a population; `widths` gives the padded length of Setup, Predict and Learn."""
  return PackedPopulation(*(pack_component([p.component(name) for p in programs], width)
                            for name, width in zip(COMPONENTS, widths)))


def instructions_from_rows(rows: np.ndarray) -> tuple[Instruction, ...]:
  """Instructions from packed rows [n, 8] (op, in1, in2, out, activation, f0, f1, f2)."""
  return tuple(Instruction(int(op), int(in1), int(in2), int(out), *data)
               for op, in1, in2, out, *data in rows.tolist())


def concatenate(populations: Sequence[PackedPopulation]) -> PackedPopulation:
  """Packed populations one after another, padded to their widest functions."""
  widths = np.max([p.widths for p in populations], axis=0)
  padded = [p.padded(widths) for p in populations]
  return PackedPopulation(*(PackedComponent(np.concatenate([p[i].table for p in padded]),
                                            np.concatenate([p[i].length for p in padded]))
                            for i in range(len(COMPONENTS))))


class ProgramBatch(Sequence):
  """Programs held packed (one table per function): the form the search works on.

  A read-only sequence of Programs (a slice gives a tuple); `packed` keeps the arrays.
  """

  __slots__ = ("packed",)

  def __init__(self, packed: PackedPopulation):
    self.packed = packed

  @classmethod
  def of(cls, programs: Sequence[Program], widths: Sequence[int] | None = None) -> ProgramBatch:
    """`programs` as a batch (as is if already one), padded to at least `widths`."""
    if isinstance(programs, ProgramBatch):
      return programs if widths is None else cls(programs.packed.padded(widths))
    longest = [max((len(p.component(name)) for p in programs), default=0) for name in COMPONENTS]
    return cls(pack(programs, longest if widths is None else np.maximum(longest, widths)))

  def __len__(self) -> int:
    return self.packed.size

  def __getitem__(self, index):
    if isinstance(index, slice):
      return tuple(self[i] for i in range(*index.indices(len(self))))
    index = range(len(self))[index]
    return Program(*(instructions_from_rows(c.table[index, :c.length[index]])
                     for c in self.packed))

  def __eq__(self, other) -> bool:
    """Same programs packed the same way."""
    return isinstance(other, ProgramBatch) and self.packed.widths == other.packed.widths and all(
        np.array_equal(a.table, b.table, equal_nan=True) and np.array_equal(a.length, b.length)
        for a, b in zip(self.packed, other.packed))

  __hash__ = None

  def __repr__(self) -> str:
    return f"ProgramBatch({len(self)} programs, widths {self.packed.widths})"


def unpack(packed: PackedPopulation) -> list[Program]:
  """Inverse of `pack` (padding is dropped by length)."""
  return list(ProgramBatch(packed))
