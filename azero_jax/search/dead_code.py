"""Dead-code removal: drop instructions whose results can never reach the prediction.

Backward liveness over registers (kind, address) on the execution graph of REFERENCE.md §1.4, §4:

    Setup -> Predict;  Predict -> Learn;  Learn -> Predict;  Predict -> Predict

(Predict -> Predict covers validation and the next epoch). s1 is read after every Predict (error
check, sigmoid for accuracy tasks, validation). The harness writes v0 and s0 before every Predict
and every Learn, so their values never flow across those edges. A vector or matrix const-set writes
one element and keeps the rest, so it also reads its output register.

Removing dead code never changes the fitness of a program without random ops. With random ops it
changes which draws the live ones get (not their distribution). A train budget must be checked on
the unstripped program, because its cost counts every instruction.

The analysis runs on packed batches (`program.PackedPopulation`), all programs at once: registers
are bits of one uint64 per program (Python ints when a memory has more than 21 addresses of a kind).
"""

from __future__ import annotations

import numpy as np

from azero_jax import ops
from azero_jax.program import (
  COMPONENTS,
  PackedComponent,
  PackedPopulation,
  Program,
  ProgramBatch,
  pack,
)

_KINDS = {kind: index for index, kind in enumerate(ops.KINDS)}
# Per op: kind index of out, in1 and in2 (-1 when absent), and whether out is written in part only.
_OUT_KIND = np.array([_KINDS.get(op.output, -1) for op in ops.OPS])
_IN_KINDS = np.array([[_KINDS[k] for k in op.inputs] + [-1] * (2 - op.num_inputs)
                      for op in ops.OPS])
_PARTIAL = np.array([op.data in (ops.Data.VECTOR_CONST, ops.Data.MATRIX_CONST) for op in ops.OPS])


def _fields(component: PackedComponent) -> np.ndarray:
  """op, in1, in2, out of every slot as [4, W, n] integers (each field slot-major, contiguous)."""
  return np.ascontiguousarray(component.table[..., :4].transpose(2, 1, 0), dtype=np.intp)


class _Registers:
  """Register bits of a batch (`_fields` of each component): kind k, address a is bit
  k * span + a."""

  def __init__(self, fields: list[np.ndarray]):
    addresses = [f[1:].max() for f in fields if f.size]
    self.span = max(int(max(addresses, default=0)) + 1, 2)  # s1 is used
    self.dtype = np.uint64 if 3 * self.span <= 64 else object
    self.zero = self.dtype(0) if self.dtype is np.uint64 else 0
    # The bit of (kind, address) at [kind, address]; the last row (kind -1: none) is empty.
    shifts = np.arange(3 * self.span).reshape(3, self.span)
    bits = (np.left_shift(np.uint64(1), shifts.astype(np.uint64)) if self.dtype is np.uint64
            else np.frompyfunc(lambda s: 1 << int(s), 1, 1)(shifts))
    self._bits = np.concatenate([bits, np.full((1, self.span), self.zero, self.dtype)]).ravel()
    # Per op, where its out, in1 and in2 kinds start in `_bits` (absent: the empty last row).
    self._out_start = np.where(_OUT_KIND >= 0, _OUT_KIND, 3) * self.span
    self._in_starts = np.where(_IN_KINDS >= 0, _IN_KINDS, 3).T * self.span

  def constant(self, kind: str, address: int, count: int) -> np.ndarray:
    return np.full(count, self._bits[_KINDS[kind] * self.span + address], self.dtype)

  def slots(self, fields: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bit written, bits read) of every slot of a component's `_fields`, [W, n] (slot-major);
    padding (NO_OP) writes and reads nothing. A vector or matrix const-set writes one element
    and keeps the rest, so it reads its output."""
    op, in1, in2, out = fields
    written = self._bits[self._out_start[op] + out]
    read = self._bits[self._in_starts[0, op] + in1] | self._bits[self._in_starts[1, op] + in2]
    return written, read | np.where(_PARTIAL[op], written, self.zero)


def _backward(written: np.ndarray, read: np.ndarray, live: np.ndarray):
  """Registers live at the start of a function given those live at its end, and which slots
  [W, n] write a live register. A slot that writes none leaves `live` as it is (so `live` &
  ~written changes nothing there), one that does replaces what it writes by what it reads."""
  kept = np.zeros(written.shape, dtype=bool)
  live, scratch, unwritten = live.copy(), np.empty_like(live), ~written
  for slot in range(written.shape[0] - 1, -1, -1):
    np.bitwise_and(written[slot], live, out=scratch)
    np.not_equal(scratch, 0, out=kept[slot])
    live &= unwritten[slot]
    np.multiply(read[slot], kept[slot], out=scratch)
    live |= scratch
  return live, kept


def live_slots(packed: PackedPopulation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """[n, W] per function (Setup, Predict, Learn): whether each slot's result can reach the
  prediction."""
  fields = [_fields(component) for component in packed]
  registers = _Registers(fields)
  setup, predict, learn = (registers.slots(component) for component in fields)
  count = packed.size
  harness = registers.constant(ops.SCALAR, 0, count) | registers.constant(ops.VECTOR, 0, count)
  prediction = registers.constant(ops.SCALAR, 1, count)
  # Registers live at the start of Predict / Learn, iterated to the fixed point: Learn's pass
  # uses Predict's result of the same pass. At the fixed point both passes saw their final
  # inputs, so their slots are those of the fixed point. The harness writes v0 and s0 before
  # each function, so those never carry over.
  predict_in = learn_in = np.full(count, registers.zero, registers.dtype)
  while True:
    new_predict_in, predict_live = _backward(*predict,
                                             ((predict_in | learn_in) & ~harness) | prediction)
    new_learn_in, learn_live = _backward(*learn, new_predict_in & ~harness)
    if np.array_equal(new_predict_in, predict_in) and np.array_equal(new_learn_in, learn_in):
      break
    predict_in, learn_in = new_predict_in, new_learn_in
  setup_live = _backward(*setup, predict_in & ~harness)[1]
  return setup_live.T, predict_live.T, learn_live.T


def _compact(component: PackedComponent, kept: np.ndarray, width: int) -> PackedComponent:
  """The kept slots of each row moved to the front, in order, within `width` slots."""
  length = kept.sum(axis=1).astype(np.int32)
  if length.size and length.max() > width:
    raise ValueError(f"{length.max()} live instructions do not fit the packed width {width}")
  count, old_width, fields = component.table.shape
  kept_slots = np.flatnonzero(kept)  # row * old_width + slot: each row's kept slots in order
  places = np.arange(kept_slots.size) - np.repeat(np.cumsum(length) - length, length)
  # Each slot's fields as one opaque element: one copy per slot, not one per field.
  whole = np.dtype((np.void, fields * component.table.itemsize))
  table = np.zeros(count * width, whole)
  table[kept_slots // old_width * width + places] = np.ascontiguousarray(
      component.table).reshape(-1, fields).view(whole).ravel()[kept_slots]
  return PackedComponent(table.view(component.table.dtype).reshape(count, width, fields), length)


def strip_packed(packed: PackedPopulation, widths=None) -> PackedPopulation:
  """The programs without dead instructions (NO_OPs included), packed to `widths` (default: the
  input's); fitness is unchanged."""
  widths = packed.widths if widths is None else widths
  return PackedPopulation(*map(_compact, packed, live_slots(packed), widths))


def live_positions(program: Program) -> dict[str, frozenset[int]]:
  """Positions of the instructions whose results can reach the prediction, per function."""
  kept = live_slots(pack([program], program.sizes))
  return {name: frozenset(np.nonzero(slots[0])[0].tolist())
          for name, slots in zip(COMPONENTS, kept, strict=True)}


def strip_dead_code(program: Program) -> Program:
  """The program without dead instructions (NO_OPs included); fitness is unchanged."""
  return ProgramBatch(strip_packed(pack([program], program.sizes)))[0]
