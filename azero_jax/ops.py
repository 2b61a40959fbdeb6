"""The instruction set: one table entry per op, read by everything else.

Each op records its operand kinds, the data fields it uses, its printed form, its compute cost
(REFERENCE.md §2.2, §12) and its semantics. Semantics are small pure functions written against an
array module ``xp`` (``numpy`` or ``jax.numpy``), so the NumPy interpreter and the batched JAX
evaluator execute literally the same definition::

    result = op.apply(xp, a, b, old, data, rand)

``a`` and ``b`` are the input operands (already read from memory, ``None`` when unused), ``old`` is
the current value of the output register (the const-set ops change one element of it), ``data`` is
the tuple ``(activation, f0, f1, f2)`` of the instruction's constants, and ``rand`` is an ``[F, F]``
array of U(0, 1) draws (uniform-set ops) or N(0, 1) draws (Gaussian-set ops), ``None`` otherwise.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable

SCALAR, VECTOR, MATRIX = "s", "v", "m"
KINDS = (SCALAR, VECTOR, MATRIX)

# The original multiplies atan by this literal in FlipAndSquash; reused by fitness code.
NEG_TWO_OVER_PI = -0.63661977236758138243


class Data(enum.Enum):
  """Which instruction constants an op uses (REFERENCE.md §2.1)."""

  NONE = "none"
  ACTIVATION = "activation"  # op 56: s = activation
  VECTOR_CONST = "vector_const"  # op 57: f0 = index fraction, f1 = value
  MATRIX_CONST = "matrix_const"  # op 58: f0 = row fraction, f1 = column fraction, f2 = value
  UNIFORM = "uniform"  # ops 59-61: f0 = low, f1 = high
  GAUSSIAN = "gaussian"  # ops 62-64: f0 = mean, f1 = std


@dataclasses.dataclass(frozen=True)
class Op:
  """One row of the op table."""

  id: int
  name: str
  inputs: tuple[str, ...]  # operand kinds of in1 (and in2), in order
  output: str | None  # kind of `out`, None for NO_OP
  data: Data
  template: str  # printed form; {o} {a} {b} registers, {act} {f0} {f1} {f2} constants
  cost: int  # compute-cost constant of compute_cost.cc
  apply: Callable

  @property
  def num_inputs(self) -> int:
    return len(self.inputs)

  @property
  def reads_output(self) -> bool:
    """Whether the result depends on the output register's current value (not just its shape)."""
    return self.output is None or self.data in (Data.VECTOR_CONST, Data.MATRIX_CONST)

  @property
  def is_random(self) -> bool:
    return self.data in (Data.UNIFORM, Data.GAUSSIAN)


# ---------------------------------------------------------------------------------------------
# Semantics. Every function is "read all inputs, then compute the new output value".


def _feature_index(xp, fraction, size):
  """`floor(F * fraction)` computed in float32 like the original (clamped into range)."""
  index = xp.floor(xp.float32(size) * xp.asarray(fraction, dtype=xp.float32)).astype(xp.int32)
  return xp.clip(index, 0, size - 1)


def _heaviside_ge(xp, x):
  return xp.where(x >= 0, 1.0, 0.0).astype(x.dtype)


def _heaviside_gt(xp, x):
  return xp.where(x > 0, 1.0, 0.0).astype(x.dtype)


# Sums inside ops follow the original's default build (Eigen 3.4, g++ -O2 without -march: SSE2
# packets of two doubles, no fused multiply-add), so that results match it bit for bit and do not
# depend on how XLA batches them (REFERENCE.md Appendix B). Every helper sums along the last axis
# with explicit slices and adds, which XLA neither reorders nor hands to a library kernel.
# Eigen unrolls the sum of n coefficients (each costing `read_cost` to read) completely while
# n * read_cost + (n - 1) stays within this limit, and loops with two accumulators beyond it.
_UNROLL_LIMIT = 220
PLAIN, SQUARE, PRODUCT = 1, 2, 3  # read costs: x, abs2(x) (norms), x * y (dot, std)


def _pairwise(x):
  """Halving tree: (x0 + x1) + (x2 + x3) for 4 terms (Eigen's unrolled scalar sum)."""
  if x.shape[-1] == 1:
    return x[..., 0]
  half = x.shape[-1] // 2
  return _pairwise(x[..., :half]) + _pairwise(x[..., half:])


def _in_order(x):
  """((x0 + x1) + x2) + ... ."""
  total = x[..., 0]
  for i in range(1, x.shape[-1]):
    total = total + x[..., i]
  return total


def _packet_tree(x):
  """Eigen's unrolled SSE2 sum: a halving tree over packets (x0, x1), (x2, x3), ..., added
  lane-wise, then lane 0 + lane 1; for 4 terms (x0 + x2) + (x1 + x3). An odd last term comes
  after."""
  even = x.shape[-1] // 2 * 2
  if even == 0:
    return x[..., 0]
  total = _pairwise(x[..., 0:even:2]) + _pairwise(x[..., 1:even:2])
  return total + x[..., -1] if even < x.shape[-1] else total


def _two_accumulators(xp, x):
  """Eigen's looped SSE2 sum: packets 0, 2, 4, ... go into one accumulator and 1, 3, 5, ... into
  another, each in order; then the accumulators lane-wise (plus an odd last packet), lane 0 +
  lane 1, and an odd last term."""
  n = x.shape[-1]
  body = n // 4 * 4
  # lanes[..., k]: entries k, k + 4, k + 8, ... in order (lane k % 2 of accumulator k // 2).
  lanes = _in_order(xp.swapaxes(x[..., :body].reshape(*x.shape[:-1], body // 4, 4), -1, -2))
  low, high = lanes[..., 0] + lanes[..., 2], lanes[..., 1] + lanes[..., 3]
  if n - body >= 2:
    low, high = low + x[..., body], high + x[..., body + 1]
  total = low + high
  return total + x[..., -1] if n % 2 else total


def _eigen_sum(xp, x, read_cost=PLAIN):
  """x summed along its last axis (a contiguous run in the original's row-major storage) as
  Eigen sums it: a packet tree when unrolled, two accumulators otherwise."""
  n = x.shape[-1]
  if n * read_cost + (n - 1) <= _UNROLL_LIMIT:
    return _packet_tree(x)
  return _two_accumulators(xp, x)


def _entries(m):
  """The F * F entries of a matrix in row-major order."""
  return m.reshape(*m.shape[:-2], m.shape[-2] * m.shape[-1])


def _plus_zero(xp, x):
  """0.0 + x: a -0.0 sum becomes +0.0, as in Eigen's products that add into a zeroed destination
  (written as a select: XLA simplifies `0.0 + x` to x)."""
  return xp.where(x == 0, xp.zeros_like(x), x)


# Eigen hands products with a dimension of at least this size to its GEMV/GEMM kernels and
# computes smaller ones coefficient by coefficient.
_KERNEL_MIN_SIZE = 8


def _vector_mean(xp, v):
  return _eigen_sum(xp, v) / v.shape[-1]


def _vector_std(xp, v):
  """sqrt(dot(v, v) / F - mean^2), unclamped: NaN when rounding makes it negative."""
  mean = _vector_mean(xp, v)
  return xp.sqrt(_eigen_sum(xp, v * v, PRODUCT) / v.shape[-1] - mean * mean)


def _matrix_mean(xp, m):
  return _eigen_sum(xp, _entries(m)) / (m.shape[-1] * m.shape[-2])


def _matrix_std(xp, m):
  mean = _matrix_mean(xp, m)
  return xp.sqrt(_eigen_sum(xp, _entries(m * m), PRODUCT) / (m.shape[-1] * m.shape[-2])
                 - mean * mean)


def _matrix_vector_product(xp, m, v):
  products = m * v[..., None, :]
  if m.shape[-1] < _KERNEL_MIN_SIZE:
    return _eigen_sum(xp, products, PRODUCT)
  # GEMV: even and odd columns in two lanes, each in order.
  return _plus_zero(xp, _in_order(products[..., 0::2]) + _in_order(products[..., 1::2]))


def _matrix_product(xp, a, b):
  products = a[..., :, None, :] * xp.swapaxes(b, -1, -2)[..., None, :, :]  # [i, j, k]
  if a.shape[-1] < _KERNEL_MIN_SIZE:
    return _pairwise(products)
  return _plus_zero(xp, _in_order(products))  # GEMM: in order over k


def _uniform(xp, low, high, rand, old):
  low = xp.asarray(low, dtype=old.dtype)
  high = xp.asarray(high, dtype=old.dtype)
  draw = low + (high - low) * rand
  # absl::Uniform returns `low` for an empty interval (low >= high).
  return xp.where(low >= high, low, draw).astype(old.dtype)


def _gaussian(xp, mean, std, rand, old):
  mean = xp.asarray(mean, dtype=old.dtype)
  std = xp.asarray(std, dtype=old.dtype)
  return (mean + std * rand).astype(old.dtype)


def _as_kind(rand, old):
  """Cuts an [F, F] block of draws down to the shape of the output register."""
  if old.ndim == 0:
    return rand[0, 0]
  if old.ndim == 1:
    return rand[0]
  return rand


def _vector_const_set(xp, old, data):
  index = _feature_index(xp, data[1], old.shape[-1])
  value = xp.asarray(data[2], dtype=old.dtype)
  return xp.where(xp.arange(old.shape[-1]) == index, value, old)


def _matrix_const_set(xp, old, data):
  size = old.shape[-1]
  row = _feature_index(xp, data[1], size)
  col = _feature_index(xp, data[2], size)
  value = xp.asarray(data[3], dtype=old.dtype)
  hit = (xp.arange(size)[:, None] == row) & (xp.arange(size)[None, :] == col)
  return xp.where(hit, value, old)


def _unary(fn):
  return lambda xp, a, b, old, data, rand: fn(xp, a)


def _binary(fn):
  return lambda xp, a, b, old, data, rand: fn(xp, a, b)


S, V, M = SCALAR, VECTOR, MATRIX
_NO = Data.NONE

# (id, name, inputs, output, data, template, cost, apply)
_TABLE = [
    (0, "NO_OP", (), None, _NO, "NoOp()", 3013921, lambda xp, a, b, old, data, rand: old),
    (1, "SCALAR_SUM", (S, S), S, _NO, "{o} = {a} + {b}", 4703759, _binary(lambda xp, a, b: a + b)),
    (2, "SCALAR_DIFF", (S, S), S, _NO, "{o} = {a} - {b}", 5102027, _binary(lambda xp, a, b: a - b)),
    (3, "SCALAR_PRODUCT", (S, S), S, _NO, "{o} = {a} * {b}", 4418347,
     _binary(lambda xp, a, b: a * b)),
    (4, "SCALAR_DIVISION", (S, S), S, _NO, "{o} = {a} / {b}", 3963916,
     _binary(lambda xp, a, b: a / b)),
    (5, "SCALAR_ABS", (S,), S, _NO, "{o} = abs({a})", 3684352, _unary(lambda xp, a: xp.abs(a))),
    (6, "SCALAR_RECIPROCAL", (S,), S, _NO, "{o} = 1 / {a}", 4212086, _unary(lambda xp, a: 1 / a)),
    (7, "SCALAR_SIN", (S,), S, _NO, "{o} = sin({a})", 7538523, _unary(lambda xp, a: xp.sin(a))),
    (8, "SCALAR_COS", (S,), S, _NO, "{o} = cos({a})", 7452807, _unary(lambda xp, a: xp.cos(a))),
    (9, "SCALAR_TAN", (S,), S, _NO, "{o} = tan({a})", 7583203, _unary(lambda xp, a: xp.tan(a))),
    (10, "SCALAR_ARCSIN", (S,), S, _NO, "{o} = arcsin({a})", 9145616,
     _unary(lambda xp, a: xp.arcsin(a))),
    (11, "SCALAR_ARCCOS", (S,), S, _NO, "{o} = arccos({a})", 7673039,
     _unary(lambda xp, a: xp.arccos(a))),
    (12, "SCALAR_ARCTAN", (S,), S, _NO, "{o} = arctan({a})", 9273978,
     _unary(lambda xp, a: xp.arctan(a))),
    (13, "SCALAR_EXP", (S,), S, _NO, "{o} = exp({a})", 11755929, _unary(lambda xp, a: xp.exp(a))),
    (14, "SCALAR_LOG", (S,), S, _NO, "{o} = log({a})", 11627725, _unary(lambda xp, a: xp.log(a))),
    (15, "SCALAR_HEAVYSIDE", (S,), S, _NO, "{o} = heaviside({a}, 1.0)", 4057075,
     _unary(_heaviside_ge)),
    (16, "VECTOR_HEAVYSIDE", (V,), V, _NO, "{o} = heaviside({a}, 1.0)", 3965743,
     _unary(_heaviside_gt)),
    (17, "MATRIX_HEAVYSIDE", (M,), M, _NO, "{o} = heaviside({a}, 1.0)", 6728311,
     _unary(_heaviside_gt)),
    (18, "SCALAR_VECTOR_PRODUCT", (S, V), V, _NO, "{o} = {a} * {b}", 3705015,
     _binary(lambda xp, a, b: a * b)),
    (19, "SCALAR_BROADCAST", (S,), V, _NO, "{o} = bcast({a})", 4165814,
     lambda xp, a, b, old, data, rand: xp.zeros_like(old) + a),
    (20, "VECTOR_RECIPROCAL", (V,), V, _NO, "{o} = 1 / {a}", 6311851, _unary(lambda xp, a: 1 / a)),
    (21, "VECTOR_NORM", (V,), S, _NO, "{o} = norm({a})", 4810562,
     _unary(lambda xp, a: xp.sqrt(_eigen_sum(xp, a * a, SQUARE)))),
    (22, "VECTOR_ABS", (V,), V, _NO, "{o} = abs({a})", 3713533, _unary(lambda xp, a: xp.abs(a))),
    (23, "VECTOR_SUM", (V, V), V, _NO, "{o} = {a} + {b}", 4701519, _binary(lambda xp, a, b: a + b)),
    (24, "VECTOR_DIFF", (V, V), V, _NO, "{o} = {a} - {b}", 4165747,
     _binary(lambda xp, a, b: a - b)),
    (25, "VECTOR_PRODUCT", (V, V), V, _NO, "{o} = {a} * {b}", 4504555,
     _binary(lambda xp, a, b: a * b)),
    (26, "VECTOR_DIVISION", (V, V), V, _NO, "{o} = {a} / {b}", 4556237,
     _binary(lambda xp, a, b: a / b)),
    (27, "VECTOR_INNER_PRODUCT", (V, V), S, _NO, "{o} = dot({a}, {b})", 4294617,
     _binary(lambda xp, a, b: _eigen_sum(xp, a * b, PRODUCT))),
    (28, "VECTOR_OUTER_PRODUCT", (V, V), M, _NO, "{o} = outer({a}, {b})", 9833707,
     _binary(lambda xp, a, b: a[:, None] * b[None, :])),
    (29, "SCALAR_MATRIX_PRODUCT", (S, M), M, _NO, "{o} = {a} * {b}", 5986302,
     _binary(lambda xp, a, b: a * b)),
    (30, "MATRIX_RECIPROCAL", (M,), M, _NO, "{o} = 1 / {a}", 24336141,
     _unary(lambda xp, a: 1 / a)),
    (31, "MATRIX_VECTOR_PRODUCT", (M, V), V, _NO, "{o} = dot({a}, {b})", 9310002,
     _binary(_matrix_vector_product)),
    (32, "VECTOR_COLUMN_BROADCAST", (V,), M, _NO, "{o} = bcast({a}, axis=0)", 10993088,
     lambda xp, a, b, old, data, rand: xp.zeros_like(old) + a[:, None]),
    (33, "VECTOR_ROW_BROADCAST", (V,), M, _NO, "{o} = bcast({a}, axis=1)", 11087322,
     lambda xp, a, b, old, data, rand: xp.zeros_like(old) + a[None, :]),
    (34, "MATRIX_NORM", (M,), S, _NO, "{o} = norm({a})", 6422746,
     _unary(lambda xp, a: xp.sqrt(_eigen_sum(xp, _entries(a * a), SQUARE)))),
    (35, "MATRIX_COLUMN_NORM", (M,), V, _NO, "{o} = norm({a}, axis=0)", 6682187,
     _unary(lambda xp, a: xp.sqrt(_pairwise(xp.swapaxes(a * a, -1, -2))))),
    (36, "MATRIX_ROW_NORM", (M,), V, _NO, "{o} = norm({a}, axis=1)", 13351123,
     _unary(lambda xp, a: xp.sqrt(_eigen_sum(xp, a * a, SQUARE)))),
    (37, "MATRIX_TRANSPOSE", (M,), M, _NO, "{o} = transpose({a})", 9394756,
     _unary(lambda xp, a: a.T)),
    (38, "MATRIX_ABS", (M,), M, _NO, "{o} = abs({a})", 4630926, _unary(lambda xp, a: xp.abs(a))),
    (39, "MATRIX_SUM", (M, M), M, _NO, "{o} = {a} + {b}", 5579381, _binary(lambda xp, a, b: a + b)),
    (40, "MATRIX_DIFF", (M, M), M, _NO, "{o} = {a} - {b}", 5429452,
     _binary(lambda xp, a, b: a - b)),
    (41, "MATRIX_PRODUCT", (M, M), M, _NO, "{o} = {a} * {b}", 5475227,
     _binary(lambda xp, a, b: a * b)),
    (42, "MATRIX_DIVISION", (M, M), M, _NO, "{o} = {a} / {b}", 18234378,
     _binary(lambda xp, a, b: a / b)),
    (43, "MATRIX_MATRIX_PRODUCT", (M, M), M, _NO, "{o} = matmul({a}, {b})", 14516296,
     _binary(_matrix_product)),
    # min/max keep the NaN behaviour of std::min/std::max (scalar, vector) and of Eigen's
    # cwiseMin/cwiseMax (matrix): REFERENCE.md Appendix B.
    (44, "SCALAR_MIN", (S, S), S, _NO, "{o} = minimum({a}, {b})", 3677265,
     _binary(lambda xp, a, b: xp.where(b < a, b, a))),
    (45, "VECTOR_MIN", (V, V), V, _NO, "{o} = minimum({a}, {b})", 3989956,
     _binary(lambda xp, a, b: xp.where(b < a, b, a))),
    (46, "MATRIX_MIN", (M, M), M, _NO, "{o} = minimum({a}, {b})", 5457728,
     _binary(lambda xp, a, b: xp.where(a < b, a, b))),
    (47, "SCALAR_MAX", (S, S), S, _NO, "{o} = maximum({a}, {b})", 4573695,
     _binary(lambda xp, a, b: xp.where(a < b, b, a))),
    (48, "VECTOR_MAX", (V, V), V, _NO, "{o} = maximum({a}, {b})", 3974229,
     _binary(lambda xp, a, b: xp.where(a < b, b, a))),
    (49, "MATRIX_MAX", (M, M), M, _NO, "{o} = maximum({a}, {b})", 5840952,
     _binary(lambda xp, a, b: xp.where(a > b, a, b))),
    (50, "VECTOR_MEAN", (V,), S, _NO, "{o} = mean({a})", 4280443, _unary(_vector_mean)),
    (51, "MATRIX_MEAN", (M,), S, _NO, "{o} = mean({a})", 4595196, _unary(_matrix_mean)),
    (52, "MATRIX_ROW_MEAN", (M,), V, _NO, "{o} = mean({a}, axis=1)", 9763956,
     _unary(_vector_mean)),
    (53, "MATRIX_ROW_ST_DEV", (M,), V, _NO, "{o} = std({a}, axis=1)", 16766477,
     _unary(_vector_std)),  # row by row
    (54, "VECTOR_ST_DEV", (V,), S, _NO, "{o} = std({a})", 5585730, _unary(_vector_std)),
    (55, "MATRIX_ST_DEV", (M,), S, _NO, "{o} = std({a})", 10640216, _unary(_matrix_std)),
    (56, "SCALAR_CONST_SET", (), S, Data.ACTIVATION, "{o} = {act}", 3691108,
     lambda xp, a, b, old, data, rand: xp.asarray(data[0], dtype=old.dtype)),
    (57, "VECTOR_CONST_SET", (), V, Data.VECTOR_CONST, "{o}[{f0}] = {f1}", 3991421,
     lambda xp, a, b, old, data, rand: _vector_const_set(xp, old, data)),
    (58, "MATRIX_CONST_SET", (), M, Data.MATRIX_CONST, "{o}[{f0}, {f1}] = {f2}", 3693035,
     lambda xp, a, b, old, data, rand: _matrix_const_set(xp, old, data)),
    (59, "SCALAR_UNIFORM_SET", (), S, Data.UNIFORM, "{o} = uniform({f0}, {f1})", 26610704,
     lambda xp, a, b, old, data, rand: _uniform(xp, data[1], data[2], _as_kind(rand, old), old)),
    (60, "VECTOR_UNIFORM_SET", (), V, Data.UNIFORM, "{o} = uniform({f0}, {f1}, n_features)",
     57817372,
     lambda xp, a, b, old, data, rand: _uniform(xp, data[1], data[2], _as_kind(rand, old), old)),
    (61, "MATRIX_UNIFORM_SET", (), M, Data.UNIFORM,
     "{o} = uniform({f0}, {f1}, (n_features, n_features))", 208339446,
     lambda xp, a, b, old, data, rand: _uniform(xp, data[1], data[2], _as_kind(rand, old), old)),
    (62, "SCALAR_GAUSSIAN_SET", (), S, Data.GAUSSIAN, "{o} = gaussian({f0}, {f1})", 20775635,
     lambda xp, a, b, old, data, rand: _gaussian(xp, data[1], data[2], _as_kind(rand, old), old)),
    (63, "VECTOR_GAUSSIAN_SET", (), V, Data.GAUSSIAN, "{o} = gaussian({f0}, {f1}, n_features)",
     77483018,
     lambda xp, a, b, old, data, rand: _gaussian(xp, data[1], data[2], _as_kind(rand, old), old)),
    (64, "MATRIX_GAUSSIAN_SET", (), M, Data.GAUSSIAN,
     "{o} = gaussian({f0}, {f1}, (n_features, n_features))", 277690384,
     lambda xp, a, b, old, data, rand: _gaussian(xp, data[1], data[2], _as_kind(rand, old), old)),
]

OPS: tuple[Op, ...] = tuple(Op(*row) for row in _TABLE)
NUM_OPS = len(OPS)
NO_OP = 0
OP_BY_NAME = {op.name: op for op in OPS}
assert all(op.id == i for i, op in enumerate(OPS)), "op table must be indexed by id"

# Index of each data field in the `data` tuple passed to `apply`: (activation, f0, f1, f2).
ACTIVATION, F0, F1, F2 = 0, 1, 2, 3


def ops_writing(kind: str) -> tuple[int, ...]:
  """Ids of the ops whose output is of the given kind."""
  return tuple(op.id for op in OPS if op.output == kind)


def parse_op_list(text: str) -> tuple[int, ...]:
  """Parses a comma-separated op list of ids or names (e.g. ``"56,27,VECTOR_SUM"``)."""
  ids = []
  for item in (part.strip() for part in text.split(",")):
    if not item:
      continue
    name = item.upper().removesuffix("_OP")
    if item.isdigit() and int(item) < NUM_OPS:
      ids.append(int(item))
    elif name in OP_BY_NAME:
      ids.append(OP_BY_NAME[name].id)
    else:
      raise ValueError(f"unknown op {item!r}: expected an id in 0..{NUM_OPS - 1} or an op name "
                       f"such as SCALAR_SUM")
  return tuple(ids)
