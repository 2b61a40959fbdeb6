"""The op table (REFERENCE.md §2.2, Appendices A and B) against hand-computed values.

Every expected number below was worked out by hand for a tiny input (F = 2 or 4); none is produced
by re-running the op. Each case runs through `op.apply` with NumPy and with jax.numpy, through the
NumPy interpreter's `execute`, and through the batched evaluator's instruction slot in float64 and
float32 (one compiled call per feature size and dtype).
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from azero_jax import evaluator, interpreter, ops
from azero_jax.ops import OPS, Data
from azero_jax.program import Instruction, Program, float32, pack, parse_instruction
from azero_jax.tasks.task import Task

NAN, INF = math.nan, math.inf
SENTINEL = -7.0  # the output register's old value, unless the case says otherwise
# 1 + 2^-52 and 1 + 2^-51: by hand, mean = fl(2 + 3*2^-52)/2 = 1 + 2^-51 (rounds up, tie to even),
# mean^2 = fl(1 + 2^-50 + 2^-102) = 1 + 2^-50, while E[x^2] = fl(1 + 2^-51 + 1 + 2^-50)/2 =
# 1 + 3*2^-52 (also with a fused multiply-add): E[x^2] - mean^2 = -2^-52 < 0, so the unclamped
# population std is NaN in every summation order.
TIE_A, TIE_B = 1 + 2.0**-52, 1 + 2.0**-51


class Case(NamedTuple):
  op: int
  expected: object
  a: object = None
  b: object = None
  old: object = None  # defaults to SENTINEL everywhere
  data: tuple = (0.0, 0.0, 0.0, 0.0)  # (activation, f0, f1, f2)
  rand: object = None  # [F, F] draws handed to apply (random-set ops)
  F: int = 2
  name: str = ""
  f64_only: bool = False  # the hand value needs float64 inputs
  needs_rand: bool = False  # the value depends on the given draws (apply only)
  alias: bool = False  # in the interpreter/evaluator the output register is in1's register


def _c(op, expected, **kw):
  return Case(op, expected, **kw)


def _u(value, F=2):
  """A block of draws that is the same in every row, so any row/entry choice gives `value`."""
  row = np.broadcast_to(np.asarray(value, float), (F,))
  return np.broadcast_to(row, (F, F))


M12 = [[1.0, 2.0], [3.0, 4.0]]
M56 = [[5.0, 6.0], [7.0, 8.0]]

CASES = [
    _c(0, 3.0, old=3.0, name="noop"),
    # scalar arithmetic and IEEE specials
    _c(1, 3.75, a=1.5, b=2.25),
    _c(1, NAN, a=INF, b=-INF, name="inf-inf"),
    _c(2, -0.75, a=1.5, b=2.25),
    _c(3, -3.0, a=1.5, b=-2.0),
    _c(4, -0.75, a=3.0, b=-4.0),
    _c(4, INF, a=1.0, b=0.0, name="1/0"),
    _c(4, -INF, a=-1.0, b=0.0, name="-1/0"),
    _c(4, NAN, a=0.0, b=0.0, name="0/0"),
    _c(5, 2.5, a=-2.5),
    _c(6, 0.25, a=4.0),
    _c(6, INF, a=0.0, name="1/0"),
    _c(6, -INF, a=-0.0, name="1/-0"),
    _c(7, 0.5, a=math.pi / 6),
    _c(7, 1.0, a=math.pi / 2),
    _c(8, 1.0, a=0.0),
    _c(8, 0.5, a=math.pi / 3),
    _c(9, 1.0, a=math.pi / 4),
    _c(10, math.pi / 6, a=0.5),
    _c(10, NAN, a=2.0, name="arcsin(2)"),
    _c(11, math.pi / 3, a=0.5),
    _c(11, math.pi, a=-1.0),
    _c(11, NAN, a=-1.5, name="arccos(-1.5)"),
    _c(12, math.pi / 4, a=1.0),
    _c(12, -math.pi / 2, a=-INF),
    _c(13, 1.0, a=0.0),
    _c(13, 2.718281828459045, a=1.0),
    _c(13, 0.0, a=-INF),
    _c(13, INF, a=1000.0, name="overflow"),
    _c(14, 0.0, a=1.0),
    _c(14, -0.6931471805599453, a=0.5),
    _c(14, -INF, a=0.0, name="log(0)"),
    _c(14, NAN, a=-1.0, name="log(-1)"),
    # heaviside: scalar is x >= 0, vector/matrix x > 0; NaN -> 0
    _c(15, 0.0, a=-0.5),
    _c(15, 1.0, a=0.0, name="0->1"),
    _c(15, 1.0, a=-0.0, name="-0->1"),
    _c(15, 1.0, a=2.0),
    _c(15, 0.0, a=NAN, name="nan->0"),
    _c(15, 1.0, a=INF),
    _c(16, [0.0, 0.0, 1.0, 0.0], a=[-1.0, 0.0, 2.0, NAN], F=4, name="0->0,nan->0"),
    _c(16, [0.0, 1.0], a=[-0.0, 1e-300], f64_only=True, name="tiny"),
    _c(17, [[0.0, 0.0], [1.0, 0.0]], a=[[-1.0, 0.0], [3.0, NAN]], name="0->0,nan->0"),
    # mixed scalar/vector ops: 18 is s_in1 * v_in2
    _c(18, [2.0, -6.0], a=2.0, b=[1.0, -3.0]),
    _c(18, [-1.0, -2.0, 3.0, -0.0], a=-0.5, b=[2.0, 4.0, -6.0, 0.0], F=4),
    _c(19, [1.5, 1.5, 1.5, 1.5], a=1.5, F=4),
    _c(20, [0.5, -0.25, INF, -INF], a=[2.0, -4.0, 0.0, -0.0], F=4),
    _c(21, 5.0, a=[3.0, 4.0]),
    _c(21, 5.0, a=[1.0, -2.0, 2.0, 4.0], F=4),
    _c(21, INF, a=[INF, 1.0], name="inf"),
    _c(22, [1.5, 2.0], a=[-1.5, 2.0]),
    _c(23, [11.0, 22.0], a=[1.0, 2.0], b=[10.0, 20.0]),
    _c(23, [11.0, 22.0], a=[1.0, 2.0], b=[10.0, 20.0], alias=True, name="alias"),
    _c(23, [NAN, NAN], a=[NAN, INF], b=[1.0, -INF], name="nan"),
    _c(24, [-9.0, -28.0], a=[1.0, 2.0], b=[10.0, 30.0]),
    _c(25, [3.0, 8.0], a=[1.0, 2.0], b=[3.0, 4.0]),
    _c(25, [NAN, 6.0], a=[INF, 2.0], b=[0.0, 3.0], name="inf*0"),
    _c(26, [0.25, INF], a=[1.0, 2.0], b=[4.0, 0.0]),
    _c(26, [NAN, -INF], a=[0.0, -1.0], b=[0.0, 0.0], name="0/0"),
    _c(27, 11.0, a=[1.0, 2.0], b=[3.0, 4.0]),
    _c(27, 7.0, a=[1.0, 2.0, 3.0, 4.0], b=[1.0, -1.0, 2.0, 0.5], F=4),
    _c(27, NAN, a=[INF, 1.0], b=[0.0, 1.0], name="inf*0"),
    _c(28, [[3.0, 4.0], [6.0, 8.0]], a=[1.0, 2.0], b=[3.0, 4.0]),
    _c(29, [[3.0, 6.0], [9.0, 12.0]], a=3.0, b=M12),
    _c(30, [[0.5, 0.25], [INF, -2.0]], a=[[2.0, 4.0], [0.0, -0.5]]),
    # 31 is the ordinary m_in1 . v_in2 (m^T v would give [23, 34])
    _c(31, [17.0, 39.0], a=M12, b=[5.0, 6.0]),
    # 32: every column is v (m[i, j] = v[i]); 33: every row is v (m[i, j] = v[j])
    _c(32, [[1.0, 1.0], [2.0, 2.0]], a=[1.0, 2.0]),
    _c(33, [[1.0, 2.0], [1.0, 2.0]], a=[1.0, 2.0]),
    _c(34, 5.0, a=[[1.0, 2.0], [2.0, -4.0]]),
    # 35 column norms, 36 row norms
    _c(35, [4.0, 3.0], a=[[0.0, 3.0], [4.0, 0.0]]),
    _c(36, [3.0, 4.0], a=[[0.0, 3.0], [4.0, 0.0]]),
    _c(37, [[1.0, 3.0], [2.0, 4.0]], a=M12),
    _c(37, [[1.0, 3.0], [2.0, 4.0]], a=M12, alias=True, name="in-place"),
    _c(38, [[1.0, 2.0], [3.0, 4.0]], a=[[-1.0, 2.0], [-3.0, -4.0]]),
    _c(39, [[6.0, 8.0], [10.0, 12.0]], a=M12, b=M56),
    _c(40, [[-4.0, -5.0], [-8.0, -9.0]], a=M12, b=[[5.0, 7.0], [11.0, 13.0]]),
    # 41 is the element-wise (Hadamard) product, 43 the matrix product
    _c(41, [[5.0, 12.0], [21.0, 32.0]], a=M12, b=M56),
    _c(42, [[0.5, 0.25], [INF, NAN]], a=[[1.0, 2.0], [3.0, 0.0]], b=[[2.0, 8.0], [0.0, 0.0]]),
    _c(43, [[19.0, 22.0], [43.0, 50.0]], a=M12, b=M56),
    _c(43, [[19.0, 22.0], [43.0, 50.0]], a=M12, b=M56, alias=True, name="alias"),
    # min/max, Appendix B: scalar/vector min = b if b < a else a, max = b if a < b else a;
    # matrix min = a if a < b else b, max = a if a > b else b
    _c(44, 1.0, a=1.0, b=2.0),
    _c(44, 2.0, a=3.0, b=2.0),
    _c(44, NAN, a=NAN, b=1.0, name="nan-first"),
    _c(44, 1.0, a=1.0, b=NAN, name="nan-second"),
    _c(44, 0.0, a=0.0, b=-0.0, name="+0,-0"),
    _c(44, -0.0, a=-0.0, b=0.0, name="-0,+0"),
    _c(45, [1.0, 2.0, NAN, 1.0], a=[1.0, 3.0, NAN, 1.0], b=[2.0, 2.0, 1.0, NAN], F=4),
    _c(46, [[1.0, 2.0], [1.0, NAN]], a=[[1.0, 3.0], [NAN, 1.0]], b=[[2.0, 2.0], [1.0, NAN]]),
    _c(46, [[-0.0, 0.0], [0.0, 0.0]], a=[[0.0, -0.0], [0.0, 0.0]], b=[[-0.0, 0.0], [0.0, 0.0]],
       name="signed-zero"),
    _c(47, 2.0, a=1.0, b=2.0),
    _c(47, 3.0, a=3.0, b=2.0),
    _c(47, NAN, a=NAN, b=1.0, name="nan-first"),
    _c(47, 1.0, a=1.0, b=NAN, name="nan-second"),
    _c(47, -0.0, a=-0.0, b=0.0, name="-0,+0"),
    _c(48, [2.0, 3.0, NAN, 1.0], a=[1.0, 3.0, NAN, 1.0], b=[2.0, 2.0, 1.0, NAN], F=4),
    _c(48, [0.0, 2.0], a=[-1.0, 2.0], b=[0.0, 0.0], name="relu"),
    _c(49, [[2.0, 3.0], [1.0, NAN]], a=[[1.0, 3.0], [NAN, 1.0]], b=[[2.0, 2.0], [1.0, NAN]]),
    _c(49, [[-0.0, 0.0], [0.0, 0.0]], a=[[0.0, -0.0], [0.0, 0.0]], b=[[-0.0, 0.0], [0.0, 0.0]],
       name="signed-zero"),
    # means and population standard deviations (no clamp)
    _c(50, 1.5, a=[1.0, 2.0]),
    _c(50, 3.0, a=[1.0, 2.0, 3.0, 6.0], F=4),
    _c(51, 3.0, a=[[1.0, 2.0], [3.0, 6.0]]),
    _c(52, [2.0, 4.0], a=[[1.0, 3.0], [2.0, 6.0]], name="rows"),  # column means: [1.5, 4.5]
    _c(53, [1.0, 2.0], a=[[1.0, 3.0], [2.0, 6.0]], name="rows"),  # column stds: [0.5, 1.5]
    _c(53, [NAN, NAN], a=[[TIE_A, TIE_B], [TIE_A, TIE_B]], f64_only=True, name="no-clamp"),
    _c(54, 1.0, a=[0.0, 2.0], name="population"),  # the sample std would be sqrt(2)
    _c(54, 1.8708286933869707, a=[1.0, 2.0, 3.0, 6.0], F=4),  # sqrt(50/4 - 9) = sqrt(3.5)
    _c(54, NAN, a=[TIE_A, TIE_B], f64_only=True, name="no-clamp"),
    _c(55, 1.0, a=[[1.0, 1.0], [3.0, 3.0]]),  # sqrt(20/4 - 4); its row stds are [0, 0]
    # set ops
    _c(56, 0.1, data=(0.1, 0.0, 0.0, 0.0), name="float64-constant"),
    _c(56, -5.265, data=(-5.265, 0.0, 0.0, 0.0)),
    _c(57, [1.0, 2.0, 9.0, 4.0], old=[1.0, 2.0, 3.0, 4.0], data=(0.0, 0.5, 9.0, 0.0), F=4,
       name="f=0.5"),
    _c(57, [1.0, 2.0, 3.0, 9.0], old=[1.0, 2.0, 3.0, 4.0], data=(0.0, 0.999, 9.0, 0.0), F=4,
       name="f=0.999"),
    _c(57, [9.0, 2.0, 3.0, 4.0], old=[1.0, 2.0, 3.0, 4.0], data=(0.0, 0.0, 9.0, 0.0), F=4,
       name="f=0"),
    _c(57, [9.0, 2.0, 3.0, 4.0], old=[1.0, 2.0, 3.0, 4.0], data=(0.0, 0.2499, 9.0, 0.0), F=4,
       name="f=0.2499"),
    _c(57, [1.0, 9.0, 3.0, 4.0], old=[1.0, 2.0, 3.0, 4.0], data=(0.0, 0.25, 9.0, 0.0), F=4,
       name="f=0.25"),
    # 0.4999999999 is 0.5 in float32: index 2, where float64 would truncate 1.9999999996 to 1
    _c(57, [1.0, 2.0, 9.0, 4.0], old=[1.0, 2.0, 3.0, 4.0], data=(0.0, 0.4999999999, 9.0, 0.0),
       F=4, name="float32-fraction"),
    _c(57, [1.0, 9.0], old=[1.0, 2.0], data=(0.0, 0.5, 9.0, 0.0), name="F=2"),
    _c(57, [NAN, -1.0, INF, 4.0], old=[NAN, 2.0, INF, 4.0], data=(0.0, 0.25, -1.0, 0.0), F=4,
       name="keeps-others"),
    # 58: f0 picks the row, f1 the column (row-major); one element changes
    _c(58, [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0], [8.0, -3.0, 10.0, 11.0],
            [12.0, 13.0, 14.0, 15.0]],
       old=np.arange(16.0).reshape(4, 4).tolist(), data=(0.0, 0.5, 0.25, -3.0), F=4),
    _c(58, [[1.0, 2.0], [9.0, 4.0]], old=M12, data=(0.0, 0.999, 0.0, 9.0), name="F=2"),
    # uniform: low + (high - low) * u; low >= high gives low
    _c(59, 0.0, data=(0.0, -1.0, 3.0, 0.0), rand=_u(0.25), needs_rand=True),
    _c(59, -1.0, data=(0.0, -1.0, 3.0, 0.0), rand=_u(0.0), needs_rand=True, name="u=0"),
    _c(59, 0.5, data=(0.0, 0.5, -0.5, 0.0), rand=_u(0.25), name="low>high"),
    _c(59, 0.25, data=(0.0, 0.25, 0.25, 0.0), rand=_u(0.25), name="low==high"),
    _c(60, [2.0, 3.0], data=(0.0, 2.0, 4.0, 0.0), rand=_u([0.0, 0.5]), needs_rand=True),
    _c(60, [1.5, 1.5, 1.5, 1.5], data=(0.0, 1.5, -2.0, 0.0), rand=_u(0.5, 4), F=4,
       name="low>high"),
    _c(61, [[-2.0, 0.0], [1.0, -1.0]], data=(0.0, -2.0, 2.0, 0.0), rand=[[0.0, 0.5], [0.75, 0.25]],
       needs_rand=True),
    _c(61, [[0.75, 0.75], [0.75, 0.75]], data=(0.0, 0.75, 0.75, 0.0), rand=_u(0.5),
       name="low==high"),
    _c(61, [[-0.5, -0.5], [-0.5, -0.5]], data=(0.0, -0.5, -0.625, 0.0), rand=_u(0.5),
       name="low>high"),
    # gaussian: mean + std * z
    _c(62, 3.5, data=(0.0, 0.5, 2.0, 0.0), rand=_u(1.5), needs_rand=True),
    _c(62, 0.5, data=(0.0, 0.5, 0.0, 0.0), rand=_u(1.5), name="std=0"),
    _c(63, [-1.5, 1.0], data=(0.0, 0.5, 2.0, 0.0), rand=_u([-1.0, 0.25]), needs_rand=True),
    _c(63, [-0.25, -0.25, -0.25, -0.25], data=(0.0, -0.25, 0.0, 0.0), rand=_u(0.7, 4), F=4,
       name="std=0"),
    _c(64, [[-1.5, 1.0], [4.5, 0.5]], data=(0.0, 0.5, 2.0, 0.0), rand=[[-1.0, 0.25], [2.0, 0.0]],
       needs_rand=True),
    _c(64, [[2.0, 2.0], [2.0, 2.0]], data=(0.0, 2.0, 0.0, 0.0), rand=_u(-0.3), name="std=0"),
]


def _case_id(case):
  """`op-NAME[-label]`, numbered when an op has several unlabelled cases."""
  base = f"{case.op}-{OPS[case.op].name}" + (f"-{case.name}" if case.name else "")
  same = [c for c in CASES if c.op == case.op and c.name == case.name]
  return base if len(same) == 1 else f"{base}-{same.index(case) + 1}"


def _shape(kind, F):
  return {ops.SCALAR: (), ops.VECTOR: (F,), ops.MATRIX: (F, F), None: ()}[kind]


def _assert_hand(got, expected, *, rtol=1e-12, atol=0.0):
  """Values within tolerance, NaN/inf in the same places, and the same sign on zeros."""
  got = np.asarray(got, dtype=np.float64)
  expected = np.asarray(expected, dtype=np.float64)
  assert got.shape == expected.shape, (got, expected)
  np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, equal_nan=True)
  zeros = expected == 0
  np.testing.assert_array_equal(np.signbit(got[zeros]), np.signbit(expected[zeros]),
                                err_msg=f"sign of zero: got {got}, expected {expected}")


def _apply(xp, case):
  op = OPS[case.op]

  def array(value):
    return None if value is None else xp.asarray(np.asarray(value, dtype=np.float64))

  old = case.old if case.old is not None else np.full(_shape(op.output, case.F), SENTINEL)
  return op.apply(xp, array(case.a), array(case.b), array(old), case.data, array(case.rand))


def test_cases_cover_every_op():
  assert {case.op for case in CASES} == set(range(65))


@pytest.mark.parametrize("xp", [np, jnp], ids=["numpy", "jax"])
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_apply_hand_value(case, xp):
  with np.errstate(all="ignore"):
    got = np.asarray(_apply(xp, case))
  _assert_hand(got, case.expected)


# ---------------------------------------------------------------------------------------------
# The same cases through the interpreter and the evaluator: operands at in1 = address 1 and
# in2 = address 2 of their kinds, the output at address 3 (in1's register for alias cases).

NUM_REGISTERS = 4
FILL = 0.625  # every register not named by a case


def _layout(case):
  """(memory dict kind -> array, instruction, (kind, address) of the result)."""
  op = OPS[case.op]
  F = case.F
  memory = {ops.SCALAR: np.full(NUM_REGISTERS, FILL), ops.VECTOR: np.full((NUM_REGISTERS, F), FILL),
            ops.MATRIX: np.full((NUM_REGISTERS, F, F), FILL)}
  addresses = [0, 0]
  for slot, (kind, value) in enumerate(zip(op.inputs, (case.a, case.b))):
    addresses[slot] = slot + 1
    memory[kind][slot + 1] = value
  out = 0
  if op.output is not None:
    out = 1 if case.alias else 3
    if case.alias:
      assert op.inputs[0] == op.output
    else:
      old = case.old if case.old is not None else SENTINEL
      memory[op.output][out] = old
  activation, f0, f1, f2 = case.data
  instruction = Instruction(case.op, addresses[0], addresses[1], out, activation, float32(f0),
                            float32(f1), float32(f2))
  return memory, instruction, (op.output, out)


DETERMINISTIC = [case for case in CASES if not case.needs_rand]


@pytest.mark.parametrize("case", DETERMINISTIC, ids=_case_id)
def test_interpreter_hand_value(case):
  memory, instruction, (kind, out) = _layout(case)
  before = {k: v.copy() for k, v in memory.items()}
  state = interpreter.Memory(NUM_REGISTERS, NUM_REGISTERS, NUM_REGISTERS, case.F, np.float64)
  state.registers.update(memory)
  with np.errstate(all="ignore"):
    interpreter.execute(instruction, state, np.random.default_rng(0))
  if kind is None:  # NO_OP writes nothing
    for k in before:
      np.testing.assert_array_equal(state.registers[k], before[k])
    return
  _assert_hand(state.registers[kind][out], case.expected)
  for k in before:  # nothing else changes
    mask = np.ones(len(before[k]), bool)
    if k == kind:
      mask[out] = False
    np.testing.assert_array_equal(state.registers[k][mask], before[k][mask])


ALL_OPS = tuple(range(1, 65))


def _evaluator_slot(cases, dtype):
  """Runs each case's instruction as one evaluator slot (all ops in the op set), in one call.

  Uses the evaluator's per-component step `_run_component` directly, so whole output registers
  come back exactly (fitness would only reveal |y - s1| through atan).
  """
  F = cases[0].F
  layouts = [_layout(case) for case in cases]
  config = evaluator.Config(NUM_REGISTERS, NUM_REGISTERS, NUM_REGISTERS, ((), ALL_OPS, ()),
                            dtype=dtype)
  component = pack([Program(predict=[inst]) for _, inst, _ in layouts], (0, 1, 0)).predict
  jdtype = evaluator.DTYPES[dtype]
  memory = evaluator.Memory(*(jnp.asarray(np.stack([m[k] for m, _, _ in layouts]), jdtype)
                              for k in ops.KINDS))
  keys = jax.random.split(jax.random.key(0), len(cases))
  run = jax.jit(lambda table, mem, keys: evaluator._run_component(config, 1, table, None, 1, mem,
                                                                  keys))  # select execution
  assert F == memory.vectors.shape[-1]
  result = run(jnp.asarray(component.table), memory, keys)
  return [np.asarray(r) for r in result], [np.asarray(m) for m in memory]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_evaluator_hand_values(dtype):
  """Every deterministic case, grouped by F: one compiled call per (F, dtype)."""
  failures = []
  for F in sorted({case.F for case in DETERMINISTIC}):
    cases = [c for c in DETERMINISTIC if c.F == F and (dtype == "float64" or not c.f64_only)]
    result, before = _evaluator_slot(cases, dtype)
    for index, case in enumerate(cases):
      kind, out = _layout(case)[2]
      try:
        if kind is None:
          for k in range(3):
            np.testing.assert_array_equal(result[k][index], before[k][index])
          continue
        tol = dict(rtol=1e-12) if dtype == "float64" else dict(rtol=2e-7, atol=1e-7)
        _assert_hand(result[ops.KINDS.index(kind)][index][out], case.expected, **tol)
        others = [(k, a) for k in range(3) for a in range(NUM_REGISTERS)
                  if (ops.KINDS[k], a) != (kind, out)]
        for k, a in others:
          np.testing.assert_array_equal(result[k][index][a], before[k][index][a])
      except AssertionError as error:
        failures.append(f"{_case_id(case)}: {error}")
  assert not failures, "\n".join(failures)


# ---------------------------------------------------------------------------------------------
# Index parameters: floor(F * f) in float32, the same fraction at proportional positions.


@pytest.mark.parametrize("xp", [np, jnp], ids=["numpy", "jax"])
@pytest.mark.parametrize("F", [2, 4, 8, 16, 32])
def test_index_fractions_are_proportional(F, xp):
  # By hand: 0.5 -> F/2, 0.75 -> 3F/4, 0.999 -> F - 1 (0.999 F < F), 0.0 -> 0, (i + 0.5)/F -> i.
  for fraction, index in [(0.5, F // 2), (0.75, 3 * F // 4), (0.999, F - 1), (0.0, 0),
                          (1.5 / F, 1), ((F - 0.5) / F, F - 1)]:
    data = (0.0, fraction, 5.0, 0.0)
    got = np.asarray(OPS[57].apply(xp, None, None, xp.asarray(np.zeros(F)), data, None))
    expected = np.zeros(F)
    expected[index] = 5.0
    np.testing.assert_array_equal(got, expected, err_msg=f"f={fraction}")
    got = np.asarray(OPS[58].apply(xp, None, None, xp.asarray(np.zeros((F, F))),
                                   (0.0, fraction, 0.25, 5.0), None))
    expected = np.zeros((F, F))
    expected[index, F // 4] = 5.0
    np.testing.assert_array_equal(got, expected, err_msg=f"row f={fraction}")


@pytest.mark.parametrize("xp", [np, jnp], ids=["numpy", "jax"])
def test_index_product_is_float32(xp):
  # f = float32(0.7) = 0.699999988079071. With F = 10 the float64 product 6.99999988 truncates to 6,
  # while the float32 product rounds to 7.0 (spacing near 7 is 4.8e-7): the index is 7.
  got = np.asarray(OPS[57].apply(xp, None, None, xp.asarray(np.zeros(10)),
                                 (0.0, float32(0.7), 1.0, 0.0), None))
  assert got.tolist() == [0.0] * 7 + [1.0] + [0.0] * 2


# ---------------------------------------------------------------------------------------------
# The table itself.

COSTS = {  # REFERENCE.md §2.2, the Cost column
    0: 3013921, 1: 4703759, 2: 5102027, 3: 4418347, 4: 3963916, 5: 3684352, 6: 4212086,
    7: 7538523, 8: 7452807, 9: 7583203, 10: 9145616, 11: 7673039, 12: 9273978, 13: 11755929,
    14: 11627725, 15: 4057075, 16: 3965743, 17: 6728311, 18: 3705015, 19: 4165814, 20: 6311851,
    21: 4810562, 22: 3713533, 23: 4701519, 24: 4165747, 25: 4504555, 26: 4556237, 27: 4294617,
    28: 9833707, 29: 5986302, 30: 24336141, 31: 9310002, 32: 10993088, 33: 11087322,
    34: 6422746, 35: 6682187, 36: 13351123, 37: 9394756, 38: 4630926, 39: 5579381, 40: 5429452,
    41: 5475227, 42: 18234378, 43: 14516296, 44: 3677265, 45: 3989956, 46: 5457728,
    47: 4573695, 48: 3974229, 49: 5840952, 50: 4280443, 51: 4595196, 52: 9763956,
    53: 16766477, 54: 5585730, 55: 10640216, 56: 3691108, 57: 3991421, 58: 3693035,
    59: 26610704, 60: 57817372, 61: 208339446, 62: 20775635, 63: 77483018, 64: 277690384,
}

# Operand kinds "in1 in2 > out", REFERENCE.md §2.2.
SIGNATURES = (
    [">"] + ["ss>s"] * 4 + ["s>s"] * 11 + ["v>v", "m>m", "sv>v", "s>v", "v>v", "v>s", "v>v"]
    + ["vv>v"] * 4 + ["vv>s", "vv>m", "sm>m", "m>m", "mv>v", "v>m", "v>m", "m>s", "m>v", "m>v",
                      "m>m", "m>m"]
    + ["mm>m"] * 5 + ["ss>s", "vv>v", "mm>m"] * 2 + ["v>s", "m>s", "m>v", "m>v", "v>s", "m>s"]
    + [">s", ">v", ">m"] * 3)


def test_table_has_65_ops_indexed_by_id():
  assert len(OPS) == ops.NUM_OPS == 65
  assert [op.id for op in OPS] == list(range(65))
  assert len({op.name for op in OPS}) == 65


def test_costs():
  assert {op.id: op.cost for op in OPS} == COSTS


def test_operand_kinds():
  assert len(SIGNATURES) == 65
  got = ["".join(op.inputs) + ">" + (op.output or "") for op in OPS]
  assert got == SIGNATURES


def test_names_and_data_fields():
  names = {0: "NO_OP", 15: "SCALAR_HEAVYSIDE", 31: "MATRIX_VECTOR_PRODUCT",
           32: "VECTOR_COLUMN_BROADCAST", 33: "VECTOR_ROW_BROADCAST", 35: "MATRIX_COLUMN_NORM",
           36: "MATRIX_ROW_NORM", 41: "MATRIX_PRODUCT", 43: "MATRIX_MATRIX_PRODUCT",
           53: "MATRIX_ROW_ST_DEV", 64: "MATRIX_GAUSSIAN_SET"}
  for op_id, name in names.items():
    assert OPS[op_id].name == name
  data = {56: Data.ACTIVATION, 57: Data.VECTOR_CONST, 58: Data.MATRIX_CONST}
  data.update({i: Data.UNIFORM for i in (59, 60, 61)})
  data.update({i: Data.GAUSSIAN for i in (62, 63, 64)})
  assert {op.id: op.data for op in OPS} == {i: data.get(i, Data.NONE) for i in range(65)}
  assert [op.id for op in OPS if op.is_random] == list(range(59, 65))


def test_ops_writing_and_parse_op_list():
  assert ops.ops_writing(ops.MATRIX) == (17, 28, 29, 30, 32, 33, 37, 38, 39, 40, 41, 42, 43, 46,
                                        49, 58, 61, 64)
  assert 0 not in ops.ops_writing(ops.SCALAR)
  assert ops.parse_op_list("56, 27,VECTOR_SUM, scalar_diff_op,") == (56, 27, 23, 2)
  with pytest.raises(ValueError, match="unknown op '65'"):
    ops.parse_op_list("1,65")
  with pytest.raises(ValueError, match="unknown op 'FOO'"):
    ops.parse_op_list("FOO")


# Appendix A: (op, in1, in2, out, activation, f0, f1, f2) -> the original's printed line.
APPENDIX_A = [
    ((0, 0, 0, 0), "NoOp()"),
    ((1, 3, 0, 2), "s2 = s3 + s0"),
    ((2, 3, 1, 3), "s3 = s3 - s1"),
    ((3, 0, 0, 2), "s2 = s0 * s0"),
    ((4, 2, 0, 2), "s2 = s2 / s0"),
    ((5, 2, 0, 2), "s2 = abs(s2)"),
    ((6, 2, 0, 1), "s1 = 1 / s2"),
    ((7, 3, 0, 1), "s1 = sin(s3)"),
    ((8, 0, 0, 1), "s1 = cos(s0)"),
    ((9, 0, 0, 3), "s3 = tan(s0)"),
    ((10, 1, 0, 3), "s3 = arcsin(s1)"),
    ((11, 1, 0, 1), "s1 = arccos(s1)"),
    ((12, 1, 0, 3), "s3 = arctan(s1)"),
    ((13, 1, 0, 1), "s1 = exp(s1)"),
    ((14, 6, 0, 1), "s1 = log(s6)"),
    ((15, 1, 0, 1), "s1 = heaviside(s1, 1.0)"),
    ((16, 0, 0, 1), "v1 = heaviside(v0, 1.0)"),
    ((17, 0, 0, 0), "m0 = heaviside(m0, 1.0)"),
    ((18, 1, 0, 2), "v2 = s1 * v0"),
    ((19, 4, 0, 6), "v6 = bcast(s4)"),
    ((20, 0, 0, 1), "v1 = 1 / v0"),
    ((21, 8, 0, 3), "s3 = norm(v8)"),
    ((22, 2, 0, 4), "v4 = abs(v2)"),
    ((23, 1, 2, 2), "v2 = v1 + v2"),
    ((24, 8, 1, 2), "v2 = v8 - v1"),
    ((25, 5, 0, 6), "v6 = v5 * v0"),
    ((26, 0, 1, 1), "v1 = v0 / v1"),
    ((27, 8, 1, 1), "s1 = dot(v8, v1)"),
    ((28, 0, 1, 0), "m0 = outer(v0, v1)"),
    ((29, 2, 0, 0), "m0 = s2 * m0"),
    ((30, 5, 0, 5), "m5 = 1 / m5"),
    ((31, 4, 5, 2), "v2 = dot(m4, v5)"),
    ((32, 0, 0, 0), "m0 = bcast(v0, axis=0)"),
    ((33, 0, 0, 0), "m0 = bcast(v0, axis=1)"),
    ((34, 4, 0, 5), "s5 = norm(m4)"),
    ((35, 2, 0, 1), "v1 = norm(m2, axis=0)"),
    ((36, 0, 0, 1), "v1 = norm(m0, axis=1)"),
    ((37, 0, 0, 0), "m0 = transpose(m0)"),
    ((38, 0, 0, 0), "m0 = abs(m0)"),
    ((39, 2, 1, 2), "m2 = m2 + m1"),
    ((40, 0, 1, 0), "m0 = m0 - m1"),
    ((41, 0, 1, 0), "m0 = m0 * m1"),
    ((42, 1, 0, 1), "m1 = m1 / m0"),
    ((43, 0, 1, 0), "m0 = matmul(m0, m1)"),
    ((44, 0, 1, 1), "s1 = minimum(s0, s1)"),
    ((45, 0, 2, 1), "v1 = minimum(v0, v2)"),
    ((46, 0, 1, 0), "m0 = minimum(m0, m1)"),
    ((47, 3, 2, 3), "s3 = maximum(s3, s2)"),
    ((48, 0, 2, 2), "v2 = maximum(v0, v2)"),
    ((49, 0, 1, 0), "m0 = maximum(m0, m1)"),
    ((50, 2, 0, 1), "s1 = mean(v2)"),
    ((51, 0, 0, 1), "s1 = mean(m0)"),
    ((52, 0, 0, 2), "v2 = mean(m0, axis=1)"),
    ((53, 0, 0, 2), "v2 = std(m0, axis=1)"),
    ((54, 1, 0, 1), "s1 = std(v1)"),
    ((55, 0, 0, 1), "s1 = std(m0)"),
    ((56, 0, 0, 3, -5.265), "s3 = -5.265"),
    ((57, 0, 0, 1, 0.0, 0.875, -0.246), "v1[0.875] = -0.246"),
    ((58, 0, 0, 0, 0.0, 0.088, 0.063, 6.584), "m0[0.088, 0.063] = 6.584"),
    ((59, 0, 0, 1, 0.0, -0.306, 0.494), "s1 = uniform(-0.306, 0.494)"),
    ((60, 0, 0, 1, 0.0, 0.091, 0.856), "v1 = uniform(0.091, 0.856, n_features)"),
    ((61, 0, 0, 0, 0.0, -0.702, 0.522), "m0 = uniform(-0.702, 0.522, (n_features, n_features))"),
    ((62, 0, 0, 2, 0.0, 0.0, 0.1), "s2 = gaussian(0, 0.1)"),
    ((63, 0, 0, 2, 0.0, 0.0, 0.1), "v2 = gaussian(0, 0.1, n_features)"),
    ((64, 0, 0, 0, 0.0, 0.0, 0.1), "m0 = gaussian(0, 0.1, (n_features, n_features))"),
]


def _appendix_instruction(fields):
  op, in1, in2, out, activation, *floats = fields + (0.0,) * (8 - len(fields))
  return Instruction(op, in1, in2, out, activation, *(float32(f) for f in floats))


@pytest.mark.parametrize("fields,text", APPENDIX_A, ids=[str(f[0]) for f, _ in APPENDIX_A])
def test_printed_form_matches_appendix_a(fields, text):
  instruction = _appendix_instruction(fields)
  assert instruction.to_text() == text
  # ... and it parses back to the same instruction (so no other op's form matches first).
  assert parse_instruction(text) == instruction
  assert parse_instruction(text).to_text() == text


def test_appendix_a_covers_every_op():
  assert [fields[0] for fields, _ in APPENDIX_A] == list(range(65))


def test_templates_are_unambiguous():
  """Printing every op with kind-tagged placeholders gives 65 distinct skeletons."""
  skeletons = set()
  for op in OPS:
    fields = {"act": "#", "f0": "#", "f1": "#", "f2": "#"}
    fields.update({name: kind + "N" for name, kind in zip("ab", op.inputs)})
    if op.output is not None:
      fields["o"] = op.output + "N"
    skeletons.add(op.template.format(**fields))
  assert len(skeletons) == 65


@pytest.mark.parametrize("value,text", [
    (0.01, "0.01"), (-5.265, "-5.265"), (1e-05, "1e-05"), (100.5, "100.5"), (0.0, "0"),
    (-0.0, "-0"), (0.1234567, "0.123457"), (1234567.0, "1.23457e+06"), (123456.0, "123456"),
    (INF, "inf"), (-INF, "-inf"), (2.0, "2")])
def test_constants_print_with_six_significant_digits(value, text):
  assert Instruction(56, out=1, activation=value).to_text() == f"s1 = {text}"


# ---------------------------------------------------------------------------------------------
# Distribution of the random-set ops through the interpreter and the evaluator.

F_RANDOM = 4
NUM_DRAWS = 256
GAUSSIAN = ("gaussian", 0.5, 2.0)
UNIFORM = ("uniform", -1.5, 0.5)  # width 2: low + 2u < high exactly, also in float32


def _set_op(kind, dist):
  name, p0, p1 = dist
  op = {("gaussian", "s"): 62, ("gaussian", "v"): 63, ("gaussian", "m"): 64,
        ("uniform", "s"): 59, ("uniform", "v"): 60, ("uniform", "m"): 61}[name, kind]
  out = {"s": 1, "v": 1, "m": 0}[kind]
  return Instruction(op, out=out, f0=float32(p0), f1=float32(p1))


def _frac(i):
  return (i + 0.5) / F_RANDOM


def _sampling_programs(dist):
  """Programs whose prediction s1 is one element of a freshly drawn register.

  Scalar: s1 itself. Vector element k: `v2 = e_k`, `s1 = dot(v1, v2)`. Matrix element (i, j):
  `v2 = e_i`, `v3 = e_j`, `v4 = dot(m0, v3)` (column j), `s1 = dot(v4, v2)`.
  """
  programs = [("s", None, Program(setup=[_set_op("s", dist)]))]
  for k in range(F_RANDOM):
    programs.append(("v", k, Program(
        setup=[Instruction(57, out=2, f0=_frac(k), f1=1.0), _set_op("v", dist)],
        predict=[Instruction(27, 1, 2, 1)])))
  for i in range(F_RANDOM):
    for j in range(F_RANDOM):
      programs.append(("m", (i, j), Program(
          setup=[Instruction(57, out=2, f0=_frac(i), f1=1.0),
                 Instruction(57, out=3, f0=_frac(j), f1=1.0), _set_op("m", dist)],
          predict=[Instruction(31, 0, 3, 4), Instruction(27, 4, 2, 1)])))
  return programs


def _check_samples(samples, dist, dtype_name):
  """`samples`: dict kind -> [elements, draws]; elements of one draw in the same column."""
  name, p0, p1 = dist
  for kind, x in samples.items():
    where = f"{dtype_name} {name} {kind}"
    n = x.size
    if name == "gaussian":
      mean, std = p0, p1
    else:
      assert x.min() >= p0 and x.max() < p1, where
      assert x.min() < p0 + 0.1 and x.max() > p1 - 0.1, where
      mean, std = (p0 + p1) / 2, (p1 - p0) / math.sqrt(12)
    assert abs(x.mean() - mean) < 5 * std / math.sqrt(n), (where, x.mean())
    assert abs(x.std() - std) < 5 * std / math.sqrt(n / 2), (where, x.std())
    if x.shape[0] > 1:  # elements of one register are independent draws
      corr = np.corrcoef(x)
      off = corr[~np.eye(len(corr), dtype=bool)]
      assert np.all(np.abs(off) < 0.35), (where, off)
  pooled = np.concatenate([x.ravel() for x in samples.values()])
  if name == "gaussian":  # P(|x - mean| < std) is 0.6827 for a normal, 1/sqrt(3) for a uniform
    inside, expected = np.mean(np.abs(pooled - p0) < p1), 0.6827
  else:
    inside, expected = np.mean(np.abs(pooled - (p0 + p1) / 2) < (p1 - p0) / 4), 0.5
  assert abs(inside - expected) < 5 * math.sqrt(0.25 / pooled.size), (dtype_name, name, inside)


@pytest.mark.parametrize("dist", [GAUSSIAN, UNIFORM], ids=["gaussian", "uniform"])
def test_random_ops_distribution_interpreter(dist):
  rng = np.random.default_rng(123)
  programs = {kind: p for kind, _, p in _sampling_programs(dist)}  # one per kind suffices
  samples = {"s": [], "v": [], "m": []}
  for _ in range(NUM_DRAWS):
    for kind, program in programs.items():
      memory = interpreter.Memory(2, 5, 1, F_RANDOM, np.float64)
      interpreter.run_function(program.setup, memory, rng)
      register = {"s": memory.registers["s"][1], "v": memory.registers["v"][1],
                  "m": memory.registers["m"][0]}[kind]
      samples[kind].append(np.ravel(register))
  _check_samples({k: np.array(v).T for k, v in samples.items()}, dist, "interpreter")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_random_ops_distribution_evaluator(dtype):
  """Each task draws afresh; s1 (one register element per program) read back exactly."""
  rng = np.random.default_rng(7)
  tasks = [Task.from_arrays(rng.normal(size=(1, F_RANDOM)), [0.0], rng.normal(size=(1, F_RANDOM)),
                            [0.0]) for _ in range(NUM_DRAWS)]
  entries = [(dist, kind, where, program) for dist in (GAUSSIAN, UNIFORM)
             for kind, where, program in _sampling_programs(dist)]
  programs = [program for *_, program in entries]
  op_sets = (evaluator.normalize_op_set(range(56, 65)), (27, 31), ())
  config = evaluator.Config(2, 5, 1, op_sets, dtype=dtype, record_errors=True)
  result = evaluator.run_packed(config, evaluator.pack_population(programs),
                                evaluator.stack_bucketed(tasks), jax.random.key(3))
  predictions = -np.asarray(result.valid_errors, np.float64)[:len(programs), :, 0]  # 0 - s1
  for dist in (GAUSSIAN, UNIFORM):
    rows = {kind: [i for i, e in enumerate(entries) if e[0] == dist and e[1] == kind]
            for kind in "svm"}
    _check_samples({kind: predictions[index] for kind, index in rows.items()}, dist, dtype)
