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

Register = tuple[str, int]
HARNESS_WRITES: frozenset[Register] = frozenset({(ops.SCALAR, 0), (ops.VECTOR, 0)})
PREDICTION: Register = (ops.SCALAR, 1)
# Data classes of the ops that write only part of their output register.
_PARTIAL_WRITES = (ops.Data.VECTOR_CONST, ops.Data.MATRIX_CONST)


def _reads(inst: Instruction) -> set[Register]:
  spec = inst.spec
  reads = set(zip(spec.inputs, (inst.in1, inst.in2), strict=False))
  if spec.data in _PARTIAL_WRITES:
    reads.add((spec.output, inst.out))
  return reads


def _backward(instructions, live_out: frozenset[Register]):
  """Liveness through one function: (live-in set, positions of live instructions)."""
  live = set(live_out)
  positions = set()
  for position in range(len(instructions) - 1, -1, -1):
    inst = instructions[position]
    output = inst.spec.output
    if output is None or (output, inst.out) not in live:
      continue
    positions.add(position)
    live.discard((output, inst.out))
    live |= _reads(inst)
  return frozenset(live), frozenset(positions)


def live_positions(program: Program) -> dict[str, frozenset[int]]:
  """Positions of the instructions whose results can reach the prediction, per function."""
  predict_in = learn_in = frozenset()
  while True:
    # Registers live at the start of Predict / Learn once the harness has written v0 and s0.
    after_harness = (predict_in - HARNESS_WRITES, learn_in - HARNESS_WRITES)
    predict_out = after_harness[0] | after_harness[1] | {PREDICTION}
    new_predict_in, predict_live = _backward(program.predict, predict_out)
    new_learn_in, learn_live = _backward(program.learn, after_harness[0])
    if (new_predict_in, new_learn_in) == (predict_in, learn_in):
      break
    predict_in, learn_in = new_predict_in, new_learn_in
  _, setup_live = _backward(program.setup, predict_in - HARNESS_WRITES)
  return dict(zip(COMPONENTS, (setup_live, predict_live, learn_live), strict=True))


def strip_dead_code(program: Program) -> Program:
  """The program without dead instructions (NO_OPs included); fitness is unchanged."""
  live = live_positions(program)
  return program.replace(**{
      name: tuple(inst for position, inst in enumerate(program.component(name))
                  if position in live[name])
      for name in COMPONENTS})
