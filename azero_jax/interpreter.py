"""A plain NumPy interpreter: one program on one task, step by step as REFERENCE.md §4 says.

This is the test oracle for the batched evaluator. It is written for clarity, not speed.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from azero_jax import ops
from azero_jax.program import Instruction, Program
from azero_jax.tasks.task import Task


class Memory:
  """Scalar, vector and matrix registers, all zero at the start."""

  def __init__(self, num_scalars: int, num_vectors: int, num_matrices: int, size: int, dtype):
    self.registers = {
        ops.SCALAR: np.zeros(num_scalars, dtype),
        ops.VECTOR: np.zeros((num_vectors, size), dtype),
        ops.MATRIX: np.zeros((num_matrices, size, size), dtype),
    }

  def read(self, kind: str, address: int):
    return self.registers[kind][address]

  def write(self, kind: str, address: int, value) -> None:
    self.registers[kind][address] = value


def execute(instruction: Instruction, memory: Memory, rng: np.random.Generator) -> None:
  """Reads the inputs, computes the op's result and writes it to the output register."""
  op = instruction.spec
  if op.output is None:
    return
  operands = [memory.read(kind, address)
              for kind, address in zip(op.inputs, (instruction.in1, instruction.in2))]
  a, b = (operands + [None, None])[:2]
  old = np.array(memory.read(op.output, instruction.out))
  size = memory.registers[ops.VECTOR].shape[-1]
  rand = None
  if op.data is ops.Data.UNIFORM:
    rand = rng.uniform(size=(size, size))
  elif op.data is ops.Data.GAUSSIAN:
    rand = rng.standard_normal(size=(size, size))
  data = (instruction.activation, instruction.f0, instruction.f1, instruction.f2)
  memory.write(op.output, instruction.out, op.apply(np, a, b, old, data, rand))


def run_function(instructions, memory: Memory, rng: np.random.Generator) -> None:
  for instruction in instructions:
    execute(instruction, memory, rng)


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def flip_and_squash(x: float) -> float:
  """RMS fitness `1 - (2/pi) atan(x)`; NaN or inf gives 0 (REFERENCE.md §4.4)."""
  if not np.isfinite(x):
    return 0.0
  return 1.0 + ops.NEG_TWO_OVER_PI * np.arctan(x)


class Result(NamedTuple):
  fitness: float
  train_steps: int  # training examples processed, counting the one whose error check failed


def train_epoch(program: Program, memory: Memory, task: Task, order, *, max_abs_error: float,
                rng: np.random.Generator) -> tuple[bool, int]:
  """One training pass; returns (aborted, steps done)."""
  scalars, vectors = memory.registers[ops.SCALAR], memory.registers[ops.VECTOR]
  for step, index in enumerate(order, start=1):
    x, y = task.x_train[index], task.y_train[index]
    vectors[0], scalars[0] = x, 0.0
    run_function(program.predict, memory, rng)
    if task.eval_type == "accuracy":
      scalars[1] = sigmoid(scalars[1])
    error = abs(y - scalars[1])
    if np.isnan(error) or error > max_abs_error:
      return True, step
    vectors[0], scalars[0] = x, y
    run_function(program.learn, memory, rng)
  return False, len(order)


def validate(program: Program, memory: Memory, task: Task, *, max_abs_error: float,
             rng: np.random.Generator) -> float:
  """Predict-only pass over the validation set; 0 as soon as one error is NaN or too large."""
  scalars, vectors = memory.registers[ops.SCALAR], memory.registers[ops.VECTOR]
  loss = 0.0
  for x, y in zip(task.x_valid, task.y_valid):
    vectors[0], scalars[0] = x, 0.0
    run_function(program.predict, memory, rng)
    if task.eval_type == "accuracy":
      correct = (y > 0.5) == (sigmoid(scalars[1]) > 0.5)
      error = 0.0 if correct else 1.0
      loss += error
    else:
      error = y - scalars[1]
      loss += error * error
    if np.isnan(error) or abs(error) > max_abs_error:
      return 0.0
  if task.eval_type == "accuracy":
    return 1.0 - loss / task.num_valid_examples
  return flip_and_squash(np.sqrt(loss / task.num_valid_examples))


def run(program: Program, task: Task, *, num_scalars: int, num_vectors: int, num_matrices: int,
        max_abs_error: float = 100.0, rng: np.random.Generator | None = None,
        dtype=np.float64) -> Result:
  """Evaluates one program on one task: best validation fitness over epochs (§4.2)."""
  rng = np.random.default_rng(0) if rng is None else rng
  memory = Memory(num_scalars, num_vectors, num_matrices, task.features_size, dtype)
  best, steps = 0.0, 0
  with np.errstate(all="ignore"):
    run_function(program.setup, memory, rng)
    for epoch, order in enumerate(task.orders):
      aborted, done = train_epoch(program, memory, task, order, max_abs_error=max_abs_error,
                                  rng=rng)
      steps += done
      if aborted:
        return Result(0.0 if epoch == 0 else best, steps)
      best = max(best, validate(program, memory, task, max_abs_error=max_abs_error, rng=rng))
  return Result(best, steps)


def interpret(program: Program, task: Task, *, num_scalars: int, num_vectors: int,
              num_matrices: int, max_abs_error: float = 100.0,
              rng: np.random.Generator | None = None) -> float:
  """Fitness of one program on one task, in float64."""
  return run(program, task, num_scalars=num_scalars, num_vectors=num_vectors,
             num_matrices=num_matrices, max_abs_error=max_abs_error, rng=rng).fitness
