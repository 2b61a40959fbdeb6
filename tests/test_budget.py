"""Train budget and compute cost (REFERENCE.md §12)."""

import pytest

from azero_jax.program import Instruction, Program
from azero_jax.search.budget import TrainBudget, instructions_cost, program_cost
from azero_jax.search.generator import NEURAL_NET, InitModel, initial_program

NO_OP_COST = 3013921


def test_neural_net_costs_match_reference():
  assert instructions_cost(NEURAL_NET.setup) == 358_864_510
  assert instructions_cost(NEURAL_NET.predict) == 26_984_126
  assert instructions_cost(NEURAL_NET.learn) == 54_920_587
  assert program_cost(NEURAL_NET, 8000) == 358_864_510 + 8000 * 81_904_713
  assert program_cost(NEURAL_NET, 8000) == pytest.approx(6.556e11, rel=1e-3)


def test_no_op_costs_count():
  assert instructions_cost([Instruction()] * 3) == 3 * NO_OP_COST
  assert program_cost(Program(), 100) == 0


def test_baseline_is_padded_with_the_experiment_init_sizes():
  plain = TrainBudget.from_init_sizes((1, 1, 1))
  assert plain.baseline == NEURAL_NET
  padded = TrainBudget.from_init_sizes((3, 6, 11))
  assert program_cost(padded.baseline, 10) == program_cost(NEURAL_NET, 10) + 10 * NO_OP_COST
  assert TrainBudget.from_init_sizes((1, 1, 1), InitModel.LINEAR).baseline.sizes == (1, 1, 4)


def test_random_baseline_rejected():
  with pytest.raises(ValueError, match="fixed model"):
    TrainBudget.from_init_sizes((1, 1, 1), InitModel.RANDOM)


def test_programs_within_twice_the_baseline_get_all_examples():
  budget = TrainBudget.from_init_sizes((1, 1, 1))
  assert budget.threshold_factor == 2.0
  assert budget.train_examples(NEURAL_NET, 8000) == 8000
  # The NN with its per-example work doubled is still within budget (Setup counts once).
  doubled = NEURAL_NET.replace(predict=NEURAL_NET.predict * 2, learn=NEURAL_NET.learn * 2)
  assert program_cost(doubled, 8000) < 2 * program_cost(NEURAL_NET, 8000)
  assert budget.train_examples(doubled, 8000) == 8000
  tripled = NEURAL_NET.replace(learn=NEURAL_NET.learn * 3)
  assert budget.train_examples(tripled, 8000) == 0


def test_threshold_is_inclusive_and_configurable():
  budget = TrainBudget(Program(learn=(Instruction(),)), threshold_factor=2.0)
  assert budget.train_examples(Program(learn=(Instruction(),) * 2), 50) == 50
  assert budget.train_examples(Program(learn=(Instruction(),) * 3), 50) == 0
  loose = TrainBudget(Program(learn=(Instruction(),)), threshold_factor=3.0)
  assert loose.train_examples(Program(learn=(Instruction(),) * 3), 50) == 50


def test_expensive_setup_matters_only_at_few_examples():
  heavy_setup = initial_program(InitModel.NO_OP, (0, 1, 1)).replace(
      setup=(Instruction(op=64, out=0),) * 5)
  budget = TrainBudget.from_init_sizes((1, 1, 1))
  assert budget.within(heavy_setup, 8000)
  assert not budget.within(heavy_setup, 1)
