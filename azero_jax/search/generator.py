"""Initial programs (REFERENCE.md §3.2, §3.3): no-op, random and the hand-written algorithms."""

from __future__ import annotations

import enum
from collections.abc import Sequence

import numpy as np

from azero_jax.program import COMPONENTS, Instruction, Program
from azero_jax.search.randomizer import Randomizer, check_sizes


class InitModel(enum.Enum):
  """The generator's initial-population models, numbered as in generator.proto."""

  NO_OP = 0
  RANDOM = 1
  LINEAR = 2
  NEURAL_NET = 3
  INTEGRATION_TEST_DAMAGED_NEURAL_NET = 4

  @classmethod
  def parse(cls, name: str | int) -> InitModel:
    """Accepts an id, a short name (``NEURAL_NET``) or the proto name (``..._ALGORITHM``)."""
    text = str(name).strip().upper().removesuffix("_ALGORITHM")
    if text.isdigit() and int(text) < len(cls):
      return cls(int(text))
    if text in cls.__members__:
      return cls[text]
    raise ValueError(f"unknown initial model {name!r}: expected one of "
                     f"{', '.join(cls.__members__)} (optionally with _ALGORITHM) or 0..4")


# LinearModel(learning rate 0.01): weights in v1, starting at 0.
LINEAR = Program.from_text("""
def Setup():
  s2 = 0.01
def Predict():
  s1 = dot(v1, v0)
def Learn():
  s3 = s0 - s1
  s3 = s2 * s3
  v2 = s3 * v0
  v1 = v1 + v2
""")

# NeuralNet(learning rate 0.01, init scales 0.1): a 2-layer ReLU network trained by SGD.
# s2 final bias, s3 learning rate, s4 error; v1 first-layer bias, v2 final weights, v3 pre-ReLU,
# v4 post-ReLU, v5 zeros, v6-v8 gradients; m0 first-layer weights, m1 its gradient.
NEURAL_NET = Program.from_text("""
def Setup():
  v2 = gaussian(0, 0.1, n_features)
  m0 = gaussian(0, 0.1, (n_features, n_features))
  s3 = 0.01
def Predict():
  v3 = dot(m0, v0)
  v3 = v3 + v1
  v4 = maximum(v3, v5)
  s1 = dot(v4, v2)
  s1 = s1 + s2
def Learn():
  s4 = s0 - s1
  s4 = s3 * s4
  s2 = s2 + s4
  v6 = s4 * v4
  v2 = v2 + v6
  v7 = s4 * v2
  v8 = heaviside(v3, 1.0)
  v7 = v8 * v7
  v1 = v1 + v7
  m1 = outer(v7, v0)
  m0 = m0 + m1
""")

# The NeuralNet without its two Gaussian initialisations (the nonlinear integration test).
DAMAGED_NEURAL_NET = NEURAL_NET.replace(setup=NEURAL_NET.setup[2:])

_HAND_WRITTEN = {InitModel.NO_OP: Program(), InitModel.LINEAR: LINEAR,
                 InitModel.NEURAL_NET: NEURAL_NET,
                 InitModel.INTEGRATION_TEST_DAMAGED_NEURAL_NET: DAMAGED_NEURAL_NET}


def pad(program: Program, sizes: Sequence[int]) -> Program:
  """Appends NO_OPs to each function up to `sizes` (setup, predict, learn); never truncates."""
  sizes = check_sizes(sizes, "init sizes")
  return program.replace(**{
      name: program.component(name) + (Instruction(),) * max(0, size - len(program.component(name)))
      for name, size in zip(COMPONENTS, sizes, strict=True)})


def initial_program(model: InitModel, init_sizes: Sequence[int],
                    randomizer: Randomizer | None = None,
                    rng: np.random.Generator | None = None) -> Program:
  """The model's program padded to `init_sizes`; RANDOM also needs a randomizer and an rng.

  RANDOM is the no-op program with every function that has a non-empty op list randomized.
  """
  padded = pad(_HAND_WRITTEN.get(model, Program()), init_sizes)
  if model is not InitModel.RANDOM:
    return padded
  if randomizer is None or rng is None:
    raise ValueError("the RANDOM initial model needs a randomizer and an rng")
  return randomizer.program(padded, rng)
