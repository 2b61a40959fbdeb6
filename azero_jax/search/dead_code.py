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
"""

from __future__ import annotations

from azero_jax import ops
from azero_jax.program import COMPONENTS, Instruction, Program

# Registers are bits of an int: scalar a is bit a, vector a bit 64 + a, matrix a bit 128 + a.
_OFFSET = {ops.SCALAR: 0, ops.VECTOR: 64, ops.MATRIX: 128}
HARNESS_WRITES = (1 << _OFFSET[ops.SCALAR]) | (1 << _OFFSET[ops.VECTOR])  # s0, v0
PREDICTION = 1 << (_OFFSET[ops.SCALAR] + 1)  # s1
# Per op: (output offset or None, input offsets, whether it writes only part of its output).
_OP_REGISTERS = tuple(
    (None if op.output is None else _OFFSET[op.output], tuple(_OFFSET[k] for k in op.inputs),
     op.data in (ops.Data.VECTOR_CONST, ops.Data.MATRIX_CONST))
    for op in ops.OPS)


_MASK_CACHE: dict[tuple[int, int, int, int], tuple[int, int]] = {}
_MASK_CACHE_SIZE = 1 << 16


def _masks(inst: Instruction) -> tuple[int, int]:
  """(bit written, bits read) of an instruction, memoised by op and addresses (constants play no
  part, so the entries recur across children)."""
  registers = inst[:4]  # op, in1, in2, out
  masks = _MASK_CACHE.get(registers)
  if masks is None:
    if len(_MASK_CACHE) >= _MASK_CACHE_SIZE:
      _MASK_CACHE.clear()
    masks = _MASK_CACHE[registers] = _compute_masks(inst)
  return masks


def _compute_masks(inst: Instruction) -> tuple[int, int]:
  """(bit written, bits read); (0, 0) for NO_OP. A vector or matrix const-set writes one element
  and keeps the rest, so it also reads its output."""
  output, inputs, partial = _OP_REGISTERS[inst.op]
  if output is None:
    return 0, 0
  written = 1 << (output + inst.out)
  read = 0
  for offset, address in zip(inputs, (inst.in1, inst.in2)):
    read |= 1 << (offset + address)
  return written, read | (written if partial else 0)


def _backward(masks: list[tuple[int, int]], live: int) -> tuple[int, list[int]]:
  """The registers live at the start of a function, given those live at its end, and the
  positions (descending) of its instructions whose results are live."""
  positions = []
  for position in range(len(masks) - 1, -1, -1):
    written, read = masks[position]
    if written & live:
      positions.append(position)
      live = (live & ~written) | read
  return live, positions


def _live_lists(program: Program) -> tuple[list[int], list[int], list[int]]:
  """Live positions (descending) of Setup, Predict and Learn."""
  cached = _MASK_CACHE.get  # inlined lookup: this runs for every instruction of every child
  setup, predict, learn = ([cached(inst[:4]) or _masks(inst) for inst in instructions]
                           for instructions in (program.setup, program.predict, program.learn))
  # Registers live at the start of Predict / Learn, iterated to the fixed point (the positions
  # of the last pass are then those of the fixed point). The harness writes v0 and s0 before
  # each, so those never carry over.
  predict_in = learn_in = 0
  while True:
    predict_out = ((predict_in | learn_in) & ~HARNESS_WRITES) | PREDICTION
    (new_predict_in, predict_live), (new_learn_in, learn_live) = (
        _backward(predict, predict_out), _backward(learn, predict_in & ~HARNESS_WRITES))
    if (new_predict_in, new_learn_in) == (predict_in, learn_in):
      break
    predict_in, learn_in = new_predict_in, new_learn_in
  return _backward(setup, predict_in & ~HARNESS_WRITES)[1], predict_live, learn_live


def live_positions(program: Program) -> dict[str, frozenset[int]]:
  """Positions of the instructions whose results can reach the prediction, per function."""
  return {name: frozenset(positions)
          for name, positions in zip(COMPONENTS, _live_lists(program), strict=True)}


def strip_dead_code(program: Program) -> Program:
  """The program without dead instructions (NO_OPs included); fitness is unchanged."""
  parts = (program.setup, program.predict, program.learn)
  live = _live_lists(program)
  if all(len(kept) == len(instructions) for kept, instructions in zip(live, parts)):
    return program
  return Program(*(tuple(instructions[position] for position in reversed(kept))
                   for instructions, kept in zip(parts, live)))
