"""Programs as text and as packed arrays (REFERENCE.md §2.1, §3.1, Appendix A)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from azero_jax import ops
from azero_jax.ops import OPS, Data
from azero_jax.program import (
  COMPONENTS,
  Instruction,
  Program,
  ProgramSyntaxError,
  float32,
  pack,
  pack_component,
  parse_instruction,
  unpack,
  zero_padded,
)

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "cpp_oracle_fixtures.json"


def _constant(rng) -> float:
  """A constant that prints exactly (6 significant digits), sometimes a special value."""
  special = [0.0, -0.0, 1e-05, 100.5, -5.265, 0.01, math.inf, -math.inf, 1234560.0]
  if rng.random() < 0.2:
    return special[rng.integers(len(special))]
  return float("%.6g" % (rng.standard_normal() * 10.0 ** rng.integers(-6, 8)))


def _random_instruction(rng, op_id: int) -> Instruction:
  """Only the fields the op uses are set, as the original's randomizer leaves them."""
  op = OPS[op_id]
  addresses = [int(a) for a in rng.integers(0, 20, size=3)]
  in1 = addresses[0] if op.num_inputs >= 1 else 0
  in2 = addresses[1] if op.num_inputs == 2 else 0
  out = addresses[2] if op.output is not None else 0
  activation = _constant(rng) if op.data is Data.ACTIVATION else 0.0
  used = {Data.NONE: 0, Data.ACTIVATION: 0, Data.VECTOR_CONST: 2, Data.MATRIX_CONST: 3,
          Data.UNIFORM: 2, Data.GAUSSIAN: 2}[op.data]
  floats = [float32(_constant(rng)) if i < used else 0.0 for i in range(3)]
  return Instruction(op_id, in1, in2, out, activation, *floats)


def _random_programs(seed: int, count: int):
  """Random programs; together they use every op at least once."""
  rng = np.random.default_rng(seed)
  pending = list(rng.permutation(ops.NUM_OPS))
  programs = []
  for _ in range(count):
    parts = {}
    for name in COMPONENTS:
      size = int(rng.integers(0, 9))
      ids = [int(pending.pop()) if pending else int(rng.integers(ops.NUM_OPS))
             for _ in range(size)]
      parts[name] = [_random_instruction(rng, i) for i in ids]
    programs.append(Program(**parts))
  assert not pending
  return programs


# ---------------------------------------------------------------------------------------------
# Text form.


def test_text_round_trip_of_random_programs():
  programs = _random_programs(seed=1, count=60)
  assert set().union(*(p.ops_used() for p in programs)) == set(range(ops.NUM_OPS))
  for program in programs:
    text = program.to_text()
    parsed = Program.from_text(text)
    assert parsed == program, text
    assert parsed.to_text() == text


def test_text_layout():
  program = Program(setup=[Instruction(56, out=2, activation=0.01)],
                    learn=[Instruction(2, 0, 1, 3), Instruction()])
  assert program.to_text() == ("def Setup():\n  s2 = 0.01\ndef Predict():\ndef Learn():\n"
                               "  s3 = s0 - s1\n  NoOp()\n")
  assert Program().to_text() == "def Setup():\ndef Predict():\ndef Learn():\n"
  assert Program.from_text(Program().to_text()) == Program()


def test_nan_constant_round_trips_as_text():
  text = ("def Setup():\n  s1 = nan\n  v1 = uniform(nan, -inf, n_features)\ndef Predict():\n"
          "def Learn():\n")
  program = Program.from_text(text)
  assert math.isnan(program.setup[0].activation) and math.isnan(program.setup[1].f0)
  assert program.setup[1].f1 == -math.inf
  assert program.to_text() == text


def test_float_fields_parse_to_float32_and_activation_to_float64():
  setup = Program.from_text("def Setup():\n  s1 = 0.1\n  v1[0.1] = 0.3\ndef Predict():\n"
                            "def Learn():\n").setup
  assert setup[0].activation == 0.1  # float64, not float32(0.1) = 0.10000000149011612
  assert setup[1].f0 == float(np.float32(0.1)) != 0.1
  assert setup[1].f1 == float(np.float32(0.3))


def test_comments_and_blank_lines_are_ignored():
  text = ("# a program\n\ndef Setup():\n  s2 = 0.5  # lr\n\ndef Predict():\n  s1 = dot(v1, v0)\n"
          "def Learn():\n")
  program = Program.from_text(text)
  assert program.setup == (Instruction(56, out=2, activation=0.5),)
  assert program.predict == (Instruction(27, 1, 0, 1),)
  assert program.learn == ()


def test_program_converts_tuples_to_instructions():
  program = Program(setup=[(56, 0, 0, 1, 0.5, 0.0, 0.0, 0.0)], predict=(), learn=[Instruction()])
  assert type(program.setup) is tuple and type(program.setup[0]) is Instruction
  assert program.setup[0].activation == 0.5 and program.sizes == (1, 0, 1)


BODY = "def Predict():\n  s1 = dot(v1, v0)\ndef Learn():\n"


@pytest.mark.parametrize("text,line,expected", [
    # unknown instruction
    ("def Setup():\n  s1 = foo(s2)\n" + BODY, 2, "`s1 = foo(s2)` is not an instruction: expected"),
    # wrong register kind for the op
    ("def Setup():\n  NoOp()\n" + BODY + "  s1 = dot(s1, v0)\n", 6,
     "`s1 = dot(s1, v0)` is not an instruction: expected"),
    ("def Setup():\n  v1 = s2 + s3\n" + BODY, 2, "`v1 = s2 + s3` is not an instruction"),
    # an address must be a number
    ("def Setup():\n  s1 = sx + s2\n" + BODY, 2, "`s1 = sx + s2` is not an instruction"),
    # blank and comment lines still count
    ("def Setup():\n\n# note\n  s1 = s2 +\n" + BODY, 4, "`s1 = s2 +` is not an instruction"),
    # instruction before a header
    ("  s1 = s2 + s3\ndef Setup():\n" + BODY, 1,
     "`s1 = s2 + s3` before any function header: expected `def Setup():`"),
    ("def setup():\n" + BODY, 1, "before any function header: expected `def Setup():`"),
    # headers out of order or repeated
    ("def Predict():\ndef Setup():\ndef Learn():\n", 1,
     "`def Predict():` out of order: expected def Setup():"),
    ("def Setup():\ndef Learn():\ndef Predict():\n", 2,
     "`def Learn():` out of order: expected def Predict():"),
    ("def Setup():\ndef Setup():\n" + BODY, 2,
     "`def Setup():` out of order: expected def Predict():"),
    ("def Setup():\n" + BODY + "def Learn():\n", 5,
     "`def Learn():` out of order: expected no further function header"),
])
def test_parse_errors_name_line_and_expectation(text, line, expected):
  with pytest.raises(ProgramSyntaxError) as info:
    Program.from_text(text)
  message = str(info.value)
  assert message.startswith(f"line {line}: "), message
  assert expected in message, message


@pytest.mark.parametrize("text,missing", [
    ("def Setup():\ndef Predict():\n", "def Learn():"),
    ("def Setup():\n  NoOp()\n", "def Predict():, def Learn():"),
    ("", "def Setup():, def Predict():, def Learn():"),
    ("# only a comment\n", "def Setup():, def Predict():, def Learn():"),
])
def test_missing_headers(text, missing):
  with pytest.raises(ProgramSyntaxError, match="missing function header") as info:
    Program.from_text(text)
  assert str(info.value).endswith(f"expected {missing}")


def test_syntax_error_is_a_value_error():
  assert issubclass(ProgramSyntaxError, ValueError)
  with pytest.raises(ValueError, match="is not an instruction"):
    parse_instruction("s1 = s2 ** s3")


def test_parse_instruction_strips_indentation():
  assert parse_instruction("    v2 = s1 * v0  ") == Instruction(18, 1, 0, 2)
  assert parse_instruction("m0 = s2 * m0") == Instruction(29, 2, 0, 0)
  assert parse_instruction("v2 = v1 * v0") == Instruction(25, 1, 0, 2)
  assert parse_instruction("m3 = m1 * m0") == Instruction(41, 1, 0, 3)
  assert parse_instruction("s10 = s2 * s19") == Instruction(3, 2, 19, 10)


# ---------------------------------------------------------------------------------------------
# The C++ oracle fixtures: the original's own printed text.


def _fixtures():
  if not FIXTURES.exists():
    pytest.skip(f"fixture file {FIXTURES} not present (it lives in the shared folder next to the "
                "repository)")
  return json.loads(FIXTURES.read_text())["fixtures"]


def test_fixture_readables_round_trip_byte_identical():
  fixtures = _fixtures()
  assert len(fixtures) > 3000
  failures = []
  for fixture in fixtures:
    program = Program.from_text(fixture["readable"])
    if program.to_text() != fixture["readable"]:
      failures.append((fixture["id"], fixture["readable"], program.to_text()))
  assert not failures, failures[:3]


def test_fixture_readables_parse_to_the_instruction_arrays():
  failures = []
  for fixture in _fixtures():
    program = Program.from_text(fixture["readable"])
    for name in COMPONENTS:
      expected = tuple(
          Instruction(int(op), int(in1), int(in2), int(out), float(activation),
                      *(float(np.float32(f)) for f in floats))
          for op, in1, in2, out, activation, *floats in fixture["program"][name])
      if program.component(name) != expected:
        failures.append((fixture["id"], name, program.component(name), expected))
    if sorted(program.ops_used()) != fixture["ops_used"]:
      failures.append((fixture["id"], "ops_used", sorted(program.ops_used()), fixture["ops_used"]))
  assert not failures, failures[:3]


# ---------------------------------------------------------------------------------------------
# Packed arrays.


def test_pack_unpack_round_trip_with_no_op_padding():
  programs = _random_programs(seed=2, count=7) + [Program()]
  widths = (8, 10, 9)
  packed = pack(programs, widths)
  assert packed.size == len(programs)
  for name, component, width in zip(COMPONENTS, packed, widths):
    for field in ("op", "in1", "in2", "out"):
      assert getattr(component, field).shape == (len(programs), width)
      assert getattr(component, field).dtype == np.int32
    assert component.activation.shape == (len(programs), width)
    assert component.activation.dtype == np.float64
    assert component.floats.shape == (len(programs), width, 3)
    assert component.floats.dtype == np.float32
    lengths = [len(p.component(name)) for p in programs]
    np.testing.assert_array_equal(component.length, lengths)
    for row, program in enumerate(programs):
      instructions = program.component(name)
      for j, inst in enumerate(instructions):
        assert (component.op[row, j], component.in1[row, j], component.in2[row, j],
                component.out[row, j]) == inst[:4]
        assert component.activation[row, j] == inst.activation
        assert component.floats[row, j].tolist() == [inst.f0, inst.f1, inst.f2]
      padding = slice(len(instructions), width)
      for field in ("op", "in1", "in2", "out"):
        assert (getattr(component, field)[row, padding] == ops.NO_OP).all()
      assert (component.activation[row, padding] == 0).all()
      assert (component.floats[row, padding] == 0).all()
  assert unpack(packed) == programs


def test_pack_keeps_float64_activation():
  component = pack_component([[Instruction(56, out=1, activation=0.1)]], 2)
  assert component.activation[0, 0] == 0.1
  assert component.length.tolist() == [1]


def test_pack_rejects_components_wider_than_the_width():
  program = Program(predict=[Instruction(1, 1, 2, 3)] * 3)
  with pytest.raises(ValueError, match="has 3 instructions, more than the packed width 2"):
    pack([program], (1, 2, 1))


def test_pack_zero_width():
  packed = pack([Program(), Program()], (0, 0, 0))
  assert packed.setup.op.shape == (2, 0)
  assert unpack(packed) == [Program(), Program()]


# ---------------------------------------------------------------------------------------------
# Address checks.


def test_check_addresses_accepts_programs_in_range():
  program = Program(setup=[Instruction(64, out=0, f0=0.0, f1=0.1)],
                    predict=[Instruction(31, 0, 2, 2), Instruction(27, 2, 1, 1)],
                    learn=[Instruction(18, 3, 0, 1), Instruction()])
  assert program.check_addresses(4, 3, 1) is None
  # Fields the op does not use are ignored.
  assert Program(predict=[Instruction(5, 1, 99, 2, f0=0.5)]).check_addresses(3, 1, 1) is None


@pytest.mark.parametrize("program,sizes,message", [
    (Program(predict=[Instruction(1, 1, 2, 4)]), (4, 3, 1),
     "predict instruction 0 `s4 = s1 + s2` uses s4, but memory has only 4 scalars "
     "(addresses 0..3)"),
    (Program(learn=[Instruction(), Instruction(18, 7, 3, 1)]), (4, 3, 1),
     "learn instruction 1 `v1 = s7 * v3` uses s7, but memory has only 4 scalars (addresses 0..3)"),
    (Program(learn=[Instruction(18, 1, 3, 1)]), (4, 3, 1),
     "learn instruction 0 `v1 = s1 * v3` uses v3, but memory has only 3 vectors (addresses 0..2)"),
    (Program(setup=[Instruction(64, out=2, f0=0.0, f1=0.1)]), (4, 3, 2),
     "setup instruction 0 `m2 = gaussian(0, 0.1, (n_features, n_features))` uses m2, but memory "
     "has only 2 matrices (addresses 0..1)"),
    (Program(predict=[Instruction(43, 0, 1, 0)]), (4, 3, 1),
     "predict instruction 0 `m0 = matmul(m0, m1)` uses m1, but memory has only 1 matrices "
     "(addresses 0..0)"),
])
def test_check_addresses_messages(program, sizes, message):
  with pytest.raises(ValueError) as info:
    program.check_addresses(*sizes)
  assert str(info.value) == message


def test_zero_padded_copies_and_extends_with_zeros():
  table = np.arange(2 * 3 * 8, dtype=np.float64).reshape(2, 3, 8) + 1
  padded = zero_padded(table, (4, 5, 8))
  np.testing.assert_array_equal(padded[:2, :3], table)
  assert padded.shape == (4, 5, 8) and not padded[2:].any() and not padded[:, 3:].any()
  padded[0, 0, 0] = -1.0
  assert table[0, 0, 0] == 1.0  # a copy, also when no axis grows
  same = zero_padded(table, table.shape)
  same[0, 0, 0] = -1.0
  assert table[0, 0, 0] == 1.0
