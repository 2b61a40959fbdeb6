"""Initial programs (REFERENCE.md §3.2, §3.3)."""

import numpy as np
import pytest

from azero_jax.program import Instruction, Program, float32
from azero_jax.search.generator import (
  DAMAGED_NEURAL_NET,
  LINEAR,
  NEURAL_NET,
  InitModel,
  initial_program,
  pad,
)
from azero_jax.search.randomizer import Memory, Randomizer

NO_OP = Instruction()


def test_no_op_program_has_init_sizes_of_no_ops():
  program = initial_program(InitModel.NO_OP, (1, 2, 3))
  assert program == Program((NO_OP,), (NO_OP,) * 2, (NO_OP,) * 3)
  assert initial_program(InitModel.NO_OP, (0, 0, 0)) == Program()


def test_linear_program_is_the_reference_and_is_padded():
  assert LINEAR.to_text() == (
      "def Setup():\n  s2 = 0.01\ndef Predict():\n  s1 = dot(v1, v0)\ndef Learn():\n"
      "  s3 = s0 - s1\n  s3 = s2 * s3\n  v2 = s3 * v0\n  v1 = v1 + v2\n")
  program = initial_program(InitModel.LINEAR, (10, 2, 8))
  assert program.sizes == (10, 2, 8)
  assert program.setup[:1] == LINEAR.setup and set(program.setup[1:]) == {NO_OP}
  assert program.learn[:4] == LINEAR.learn and set(program.learn[4:]) == {NO_OP}
  assert program.setup[0].activation == 0.01


def test_neural_net_program():
  assert NEURAL_NET.sizes == (3, 5, 11)
  v_init, m_init, lr = NEURAL_NET.setup
  assert (v_init.op, v_init.out, v_init.f0, v_init.f1) == (63, 2, 0.0, float32(0.1))
  assert (m_init.op, m_init.out, m_init.f0, m_init.f1) == (64, 0, 0.0, float32(0.1))
  assert (lr.op, lr.out, lr.activation) == (56, 3, 0.01)
  assert NEURAL_NET.setup[0].to_text() == "v2 = gaussian(0, 0.1, n_features)"
  assert NEURAL_NET.setup[1].to_text() == "m0 = gaussian(0, 0.1, (n_features, n_features))"
  assert [inst.op for inst in NEURAL_NET.predict] == [31, 23, 48, 27, 1]
  assert [inst.op for inst in NEURAL_NET.learn] == [2, 3, 1, 18, 23, 18, 16, 25, 23, 28, 39]
  NEURAL_NET.check_addresses(5, 9, 2)


def test_neural_net_is_never_truncated():
  assert initial_program(InitModel.NEURAL_NET, (1, 1, 1)) == NEURAL_NET
  padded = initial_program(InitModel.NEURAL_NET, (4, 5, 12))
  assert padded.sizes == (4, 5, 12) and padded.setup[3] == NO_OP and padded.learn[11] == NO_OP


def test_damaged_neural_net_lacks_the_gaussian_initialisation():
  assert DAMAGED_NEURAL_NET.setup == NEURAL_NET.setup[2:]
  assert DAMAGED_NEURAL_NET.setup[0].to_text() == "s3 = 0.01"
  assert (DAMAGED_NEURAL_NET.predict, DAMAGED_NEURAL_NET.learn) == (
      NEURAL_NET.predict, NEURAL_NET.learn)
  program = initial_program(InitModel.INTEGRATION_TEST_DAMAGED_NEURAL_NET, (2, 1, 4))
  assert program.sizes == (2, 5, 11) and program.setup[1] == NO_OP


def test_random_program_randomizes_only_functions_with_ops():
  randomizer = Randomizer(((56,), (), (2, 3)), Memory(4, 3, 1))
  program = initial_program(InitModel.RANDOM, (4, 2, 6), randomizer, np.random.default_rng(0))
  assert program.sizes == (4, 2, 6)
  assert all(inst.op == 56 for inst in program.setup)
  assert program.predict == (NO_OP, NO_OP)
  assert all(inst.op in (2, 3) for inst in program.learn)
  other = initial_program(InitModel.RANDOM, (4, 2, 6), randomizer, np.random.default_rng(1))
  assert other != program


def test_a_batch_of_random_programs_is_drawn_like_single_programs():
  """`Randomizer.programs` draws each function once for the whole batch: same rules as one
  program (sizes, op lists, untouched functions), independent programs, and a batch of one is
  exactly `program` with the same generator."""
  randomizer = Randomizer(((56,), (), (2, 3, 27)), Memory(4, 3, 1))
  template = LINEAR.replace(setup=(NO_OP,) * 3)
  batch = randomizer.programs(template, 200, np.random.default_rng(2))
  assert len(batch) == 200 and len({p.to_text() for p in batch}) == 200
  for program in batch:
    assert program.sizes == (3, *LINEAR.sizes[1:]) and program.predict == LINEAR.predict
    assert all(inst.op == 56 for inst in program.setup)
    program.check_addresses(4, 3, 1)
  learn_ops = np.array([inst.op for p in batch for inst in p.learn])
  assert {int(op) for op in learn_ops} == {2, 3, 27}
  assert abs((learn_ops == 27).mean() - 1 / 3) < 0.05
  single = randomizer.program(template, np.random.default_rng(5))
  assert randomizer.programs(template, 1, np.random.default_rng(5))[0] == single


def test_random_program_needs_randomizer_and_rng():
  with pytest.raises(ValueError, match="needs a randomizer"):
    initial_program(InitModel.RANDOM, (1, 1, 1))


def test_pad_validates_sizes():
  with pytest.raises(ValueError, match="three sizes"):
    pad(LINEAR, (1, 2))
  with pytest.raises(ValueError, match="three sizes"):
    pad(LINEAR, (1, -1, 2))


def test_init_model_parse():
  assert InitModel.parse("RANDOM_ALGORITHM") is InitModel.RANDOM
  assert InitModel.parse("neural_net") is InitModel.NEURAL_NET
  assert InitModel.parse("4") is InitModel.INTEGRATION_TEST_DAMAGED_NEURAL_NET
  with pytest.raises(ValueError, match="unknown initial model"):
    InitModel.parse("LOGISTIC")
