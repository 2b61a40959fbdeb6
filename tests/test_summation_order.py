"""Sums inside ops follow the original's summation order (REFERENCE.md Appendix B), bit for bit.

The expected values come from a scalar Python transcription of Appendix B's words (packets as
pairs of floats, F-based rules as listed there), not from the op code. Inputs span 16 orders of
magnitude with both signs, so that any other order (index order, plain pairwise, a fused
multiply-add) changes last bits; the test checks that they do. Through NumPy (the interpreter's
arithmetic) and through jax.numpy compiled and vmapped over two batch sizes (the evaluator's).
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from azero_jax.ops import OPS

SIZES = (4, 8, 16)  # the original's default build behaves differently at each
NUM_SAMPLES = 24


def _tree(xs):
  """Appendix B's tree(xs): halve the list of 2-element packets, adding lane-wise; lane0 + lane1."""
  def halve(packets):
    if len(packets) == 1:
      return packets[0]
    first, second = halve(packets[:len(packets) // 2]), halve(packets[len(packets) // 2:])
    return first[0] + second[0], first[1] + second[1]
  lane0, lane1 = halve([(xs[i], xs[i + 1]) for i in range(0, len(xs), 2)])
  return lane0 + lane1


def _two_accumulators(xs):
  """acc0 takes packets 0, 2, 4, ..., acc1 packets 1, 3, 5, ..., in order; then lane-wise."""
  packets = [(xs[i], xs[i + 1]) for i in range(0, len(xs), 2)]
  acc = [list(packets[0]), list(packets[1])]
  for index, (x0, x1) in enumerate(packets[2:]):
    acc[index % 2][0] += x0
    acc[index % 2][1] += x1
  return (acc[0][0] + acc[1][0]) + (acc[0][1] + acc[1][1])


def _plain_tree(xs):
  """(x0 + x1) + (x2 + x3) for four terms."""
  if len(xs) == 1:
    return xs[0]
  return _plain_tree(xs[:len(xs) // 2]) + _plain_tree(xs[len(xs) // 2:])


def _gemm(xs):
  """In order from 0.0."""
  total = 0.0
  for x in xs:
    total += x
  return total


def _gemv(xs):
  """Two lanes (even and odd terms), each in order from 0.0; then 0.0 + (lane0 + lane1)."""
  return 0.0 + (_gemm(xs[0::2]) + _gemm(xs[1::2]))


def _left_to_right(xs):
  total = xs[0]
  for x in xs[1:]:
    total += x
  return total


class Orders(NamedTuple):
  tree: Callable
  two_accumulators: Callable
  plain_tree: Callable
  gemv: Callable  # matrix-vector product, F >= 8
  gemm: Callable  # matrix product, F >= 8


ORIGINAL = Orders(_tree, _two_accumulators, _plain_tree, _gemv, _gemm)
INDEX_ORDER = Orders(*(_left_to_right,) * 5)  # what the inputs must tell apart from ORIGINAL


def _std(xs, squares_sum, mean_sum):
  mean = mean_sum(xs) / len(xs)
  variance = squares_sum([x * x for x in xs]) / len(xs) - mean * mean
  return math.sqrt(variance) if variance >= 0 else math.nan


def _expected(op, a, b, orders=ORIGINAL):
  """The result of one op on one input, summing in `orders` (Appendix B's words)."""
  F = a.shape[-1]
  tree, two_accumulators, plain_tree, gemv, gemm = orders
  big = tree if F <= 8 else two_accumulators  # 34 and 51 over the F * F entries
  a_list = a.tolist()
  b_list = None if b is None else b.tolist()
  if op == 21:
    return math.sqrt(tree([x * x for x in a_list]))
  if op == 27:
    return tree([x * y for x, y in zip(a_list, b_list)])
  if op == 50:
    return tree(a_list) / F
  if op == 54:
    return _std(a_list, tree, tree)
  entries = [x for row in a_list for x in row]
  if op == 31:
    rows = [[x * y for x, y in zip(row, b_list)] for row in a_list]
    if F == 4:
      return [tree(r) for r in rows]
    return [gemv(r) for r in rows]
  if op == 34:
    return math.sqrt(big([x * x for x in entries]))
  if op == 35:
    return [math.sqrt(plain_tree([row[j] * row[j] for row in a_list])) for j in range(F)]
  if op == 36:
    return [math.sqrt(tree([x * x for x in row])) for row in a_list]
  if op == 43:
    total = plain_tree if F == 4 else gemm
    return [[total([x * y for x, y in zip(row, col)]) for col in zip(*b_list)]
            for row in a_list]
  if op == 51:
    return big(entries) / (F * F)
  if op == 52:
    return [tree(row) / F for row in a_list]
  if op == 53:
    return [_std(row, tree, tree) for row in a_list]
  if op == 55:
    return _std(entries, tree if F == 4 else two_accumulators, big)
  raise AssertionError(op)


SUMMING_OPS = (21, 27, 31, 34, 35, 36, 43, 50, 51, 52, 53, 54, 55)


def _inputs(F, op):
  """NUM_SAMPLES inputs of op's kinds; magnitudes 1e-8..1e8, both signs; some near-constant
  operands (a std of nearly equal entries rounds to a tiny variance of either sign)."""
  rng = np.random.default_rng(1000 * F + op)
  def draw(kind):
    shape = {"v": (F,), "m": (F, F)}[kind]
    x = rng.standard_normal((NUM_SAMPLES, *shape)) * 10.0 ** rng.uniform(-8, 8, (NUM_SAMPLES,
                                                                                  *shape))
    near = rng.uniform(1, 100, NUM_SAMPLES).reshape(-1, *(1,) * len(shape))
    x[NUM_SAMPLES // 2:] = (near * (1 + 1e-15 * rng.integers(-2, 3, x.shape)))[NUM_SAMPLES // 2:]
    return x
  kinds = OPS[op].inputs
  return draw(kinds[0]), (draw(kinds[1]) if len(kinds) == 2 else None)


@pytest.mark.parametrize("F", SIZES)
def test_ops_sum_in_the_originals_order(F):
  failures, distinguishing = [], set()
  for op in SUMMING_OPS:
    a, b = _inputs(F, op)
    expected = np.array([_expected(op, a[i], None if b is None else b[i])
                         for i in range(NUM_SAMPLES)])
    index_order = np.array([_expected(op, a[i], None if b is None else b[i], INDEX_ORDER)
                            for i in range(NUM_SAMPLES)])
    if not np.array_equal(index_order, expected, equal_nan=True):
      distinguishing.add(op)
    apply = OPS[op].apply
    with np.errstate(all="ignore"):
      got = {"numpy": np.array([apply(np, a[i], None if b is None else b[i], None, None, None)
                                for i in range(NUM_SAMPLES)])}
    batched = jax.jit(jax.vmap(lambda x, y, apply=apply: apply(jnp, x, y, None, None, None)))
    got["jax, batch of 24"] = np.asarray(batched(a, b))
    got["jax, batch of 1"] = np.concatenate(
        [np.asarray(batched(a[i:i + 1], None if b is None else b[i:i + 1]))
         for i in range(NUM_SAMPLES)])
    for where, value in got.items():
      if not np.array_equal(value, expected, equal_nan=True):
        bad = np.flatnonzero((value != expected).reshape(NUM_SAMPLES, -1).any(-1))
        failures.append(f"op {op} ({where}): samples {bad.tolist()} differ")
  assert not failures, failures
  # The inputs tell the original's order from index order, which is GEMM's (F >= 8).
  assert distinguishing == set(SUMMING_OPS) - ({43} if F >= 8 else set()), distinguishing
