"""Hand-designed reference programs and the fixed forward pass of the learning-only searches.

The paper's §4.1 difficulty study (REFERENCE.md §13.2) searches either the full algorithm or only
Learn, with Setup and Predict fixed to the correct forward pass. That forward pass is the
reference's Setup (its learning rate) and Predict; random draws then fill Learn.
"""

from __future__ import annotations

from collections.abc import Sequence

from azero_jax.program import Program
from azero_jax.search.generator import LINEAR, NEURAL_NET, pad

# Affine regression by SGD: weights in v1, bias in s3, learning rate 0.01 in s2, error in s4.
AFFINE = Program.from_text("""
def Setup():
  s2 = 0.01
def Predict():
  s1 = dot(v1, v0)
  s1 = s1 + s3
def Learn():
  s4 = s0 - s1
  s4 = s2 * s4
  v2 = s4 * v0
  v1 = v1 + v2
  s3 = s3 + s4
""")

REFERENCES = {"linear": LINEAR, "affine": AFFINE, "neural_net": NEURAL_NET}


def reference(name: str) -> Program:
  """The hand-designed program called `name` (linear, affine, neural_net)."""
  if name not in REFERENCES:
    raise ValueError(f"unknown reference {name!r}: expected one of {', '.join(REFERENCES)}")
  return REFERENCES[name]


def forward_pass(program: Program, sizes: Sequence[int]) -> Program:
  """`program` with Learn emptied, padded with NO_OPs to `sizes`; refuses to truncate."""
  for name, have, size in zip(("setup", "predict"), program.sizes, sizes):
    if have > size:
      raise ValueError(f"the reference's {name} has {have} instructions, more than the fixed "
                       f"size {size}")
  return pad(program.replace(learn=()), sizes)
