"""Numerical robustness: extreme programs never crash the evaluator, and bad predictions score 0."""

import jax
import numpy as np
import pytest

from azero_jax import evaluator as ev
from azero_jax import ops
from azero_jax.interpreter import run
from azero_jax.program import Instruction, Program
from azero_jax.search.randomizer import Memory, random_instruction
from azero_jax.tasks.synthetic import linear_task
from azero_jax.tasks.task import Task

MEMORY = (6, 4, 2)
EXTREMES = (0.0, -0.0, 1e-30, -1e-30, 1e30, -1e30, 3e38, np.inf, -np.inf, np.nan, 1.0, -1.0)
ALL_OPS = tuple(range(1, ops.NUM_OPS))
COUNT = 5_000  # each op appears in 600 or more of them


def extreme(inst: Instruction, rng: np.random.Generator) -> Instruction:
  """Replaces the instruction's constants by extreme values (index fractions stay in [0, 1))."""
  pick = lambda: float(EXTREMES[rng.integers(len(EXTREMES))])
  data = ops.OPS[inst.op].data
  if data is ops.Data.ACTIVATION:
    return inst._replace(activation=pick())
  if data in (ops.Data.UNIFORM, ops.Data.GAUSSIAN):
    return inst._replace(f0=float(np.float32(pick())), f1=float(np.float32(pick())))
  if data is ops.Data.VECTOR_CONST:
    return inst._replace(f1=float(np.float32(pick())))
  if data is ops.Data.MATRIX_CONST:
    return inst._replace(f2=float(np.float32(pick())))
  return inst


def fuzz_program(rng: np.random.Generator) -> Program:
  memory = Memory(*MEMORY)
  parts = [[extreme(random_instruction(int(rng.choice(ALL_OPS)), memory, rng), rng)
            for _ in range(int(rng.integers(0, 7)))] for _ in range(3)]
  scalar_ops = [i for i in ALL_OPS if ops.OPS[i].output == ops.SCALAR]
  parts[1].append(random_instruction(int(rng.choice(scalar_ops)), memory, rng)._replace(out=1))
  return Program(*parts)


@pytest.fixture(scope="module")
def fuzz_programs():
  rng = np.random.default_rng(7)
  return [fuzz_program(rng) for _ in range(COUNT)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_extreme_programs_evaluate_and_bad_predictions_score_zero(fuzz_programs, dtype):
  tasks = [linear_task(4, 12, 6, param_seed=i, data_seed=i) for i in range(2)]
  config = ev.Config(*MEMORY, tuple(ev.normalize_op_set(ALL_OPS) for _ in range(3)),
                     dtype=dtype, record_errors=True)
  packed = ev.pack_population(fuzz_programs, widths=(8, 8, 8), population_bucket=COUNT)
  result = ev.run_packed(config, packed, ev.stack_tasks(tasks), jax.random.key(0))
  fitness = np.asarray(result.fitness)
  train_errors = np.asarray(result.train_errors)  # NaN from the failing step on
  valid_errors = np.asarray(result.valid_errors)
  assert fitness.shape == (COUNT, 2)
  assert np.isfinite(fitness).all() and (fitness >= 0).all() and (fitness <= 1).all()
  # A prediction that is NaN, inf or more than 100 off aborts training or fails validation: both
  # leave NaN in the recorded errors and must give fitness exactly 0.
  failed = np.isnan(train_errors).any(axis=-1) | np.isnan(valid_errors).any(axis=-1)
  assert failed.mean() > 0.2, "the fuzz programs should produce many non-finite predictions"
  np.testing.assert_array_equal(fitness[failed], 0.0)
  assert (fitness[~failed] > 0).all()


def test_fuzz_sample_agrees_with_the_interpreter(fuzz_programs):
  """Deterministic fuzz programs: same fitness and same aborts as the interpreter (float64)."""
  sample = [p for p in fuzz_programs[:600]
            if not any(ops.OPS[i].is_random for i in p.ops_used())][:300]
  task = linear_task(4, 12, 6, param_seed=0, data_seed=0)
  fitness = ev.evaluate(sample, [task], num_scalars=MEMORY[0], num_vectors=MEMORY[1],
                        num_matrices=MEMORY[2], dtype="float64")[:, 0]
  expected = [run(p, task, num_scalars=MEMORY[0], num_vectors=MEMORY[1],
                  num_matrices=MEMORY[2]).fitness for p in sample]
  np.testing.assert_allclose(fitness, expected, atol=1e-9)
  assert (np.asarray(expected) == 0).sum() > 30  # the sample exercises aborts


@pytest.mark.parametrize("component", ["setup", "predict", "learn"])
@pytest.mark.parametrize("value", ["1 / s0", "log(s0)", "s4 / s4"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_non_finite_prediction_from_any_function_gives_zero(component, value, dtype):
  """As the original's StopsEarlyIf*In{Setup,Predict,Learn} tests: inf or NaN reaching s1."""
  text = {"setup": "", "predict": "", "learn": ""}
  text[component] = f"  s1 = {value}\n"
  program = Program.from_text(f"def Setup():\n{text['setup']}def Predict():\n{text['predict']}"
                              f"def Learn():\n{text['learn']}")
  x = np.ones((20, 4))
  task = Task.from_arrays(x[:12], np.zeros(12), x[12:], np.zeros(8))  # s0 = 0 in Learn too
  fitness = ev.evaluate([program], [task], num_scalars=5, num_vectors=2, num_matrices=1,
                        dtype=dtype)
  assert fitness[0, 0] == 0.0


def test_huge_but_finite_error_aborts():
  program = Program.from_text("def Setup():\n  s2 = 100.5\ndef Predict():\n  s1 = s2 + s0\n"
                              "def Learn():\n")
  x = np.ones((20, 4))
  within = Program.from_text("def Setup():\n  s2 = 99\ndef Predict():\n  s1 = s2 + s0\n"
                             "def Learn():\n")
  task = Task.from_arrays(x[:12], np.zeros(12), x[12:], np.zeros(8))
  fitness = ev.evaluate([program, within], [task], num_scalars=4, num_vectors=1, num_matrices=1)
  assert fitness[0, 0] == 0.0 and fitness[1, 0] > 0.0
