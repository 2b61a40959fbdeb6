"""The train budget (REFERENCE.md §12): programs far costlier than a baseline get no training."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from azero_jax import ops
from azero_jax.program import Instruction, Program
from azero_jax.search.generator import InitModel, initial_program

DEFAULT_THRESHOLD_FACTOR = 2.0


def instructions_cost(instructions: Iterable[Instruction]) -> int:
  """Sum of the ops' compute-cost constants (NO_OPs count too)."""
  return sum(ops.OPS[inst.op].cost for inst in instructions)


def program_cost(program: Program, num_train_examples: int) -> int:
  """C(setup) + N * (C(predict) + C(learn))."""
  per_example = instructions_cost(program.predict) + instructions_cost(program.learn)
  return instructions_cost(program.setup) + num_train_examples * per_example


@dataclasses.dataclass(frozen=True)
class TrainBudget:
  """Gives a program N train examples if its cost is within `threshold_factor` x the baseline's."""

  baseline: Program
  threshold_factor: float = DEFAULT_THRESHOLD_FACTOR

  @classmethod
  def from_init_sizes(cls, init_sizes: Sequence[int],
                      baseline: InitModel = InitModel.NEURAL_NET,
                      threshold_factor: float = DEFAULT_THRESHOLD_FACTOR) -> TrainBudget:
    """The budget of an experiment: the baseline padded to the experiment's init sizes."""
    if baseline is InitModel.RANDOM:
      raise ValueError("the train budget baseline must be a fixed model, not RANDOM")
    return cls(initial_program(baseline, init_sizes), threshold_factor)

  def within(self, program: Program, num_train_examples: int) -> bool:
    """Whether the program's cost is at most threshold_factor x the baseline's."""
    limit = self.threshold_factor * program_cost(self.baseline, num_train_examples)
    return program_cost(program, num_train_examples) <= limit

  def train_examples(self, program: Program, num_train_examples: int) -> int:
    """N if the program is within budget, else 0 (which gives fitness 0)."""
    return num_train_examples if self.within(program, num_train_examples) else 0
