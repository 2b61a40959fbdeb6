"""Ground truth: fitness computed by the original C++ executor (../shared/fixtures)."""

import collections
import json
from pathlib import Path

import jax
import numpy as np
import pytest

from azero_jax import evaluator as ev
from azero_jax.interpreter import run
from azero_jax.program import COMPONENTS, Program
from azero_jax.tasks.task import Task

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "cpp_oracle_fixtures.json"
# Constant-vector std: E[x^2] - mean^2 rounds to a tiny negative number in the original's (Eigen)
# summation order and to >= 0 in ours, so the original aborts one step earlier (REFERENCE.md
# Appendix B). Fitness agrees; only the step count differs.
STEP_COUNT_EXCEPTIONS = {"f01837"}
# The same cancellation depends on the summation order: how XLA compiles the reductions (fusion,
# FMA contraction, the device layout) and, for the NumPy interpreter, NumPy's SIMD paths (NumPy 2.5
# on an AVX-512 machine flips f01954). So a few std-of-constant programs may flip between NaN and
# 0. Tolerated only for programs that use a std op, and only this many.
STD_OPS = {53, 54, 55}
MAX_STD_FLIPS = 5

pytestmark = pytest.mark.skipif(not FIXTURES.exists(), reason=f"{FIXTURES} not found")


@pytest.fixture(scope="module")
def fixtures():
  data = json.loads(FIXTURES.read_text())
  tasks = {
      name: Task.from_arrays(t["train_features"], t["train_labels"], t["valid_features"],
                             t["valid_labels"],
                             eval_type="rms" if t["eval_type"] == "RMS_ERROR" else "accuracy",
                             orders=t["train_epoch_orders"])
      for name, t in data["tasks"].items()}
  cases = [(f, Program.from_text(f["readable"]), tasks[f["task"]]) for f in data["fixtures"]]
  assert len(cases) == 3182
  return cases


def check(fixture, program, fitness, train_steps, std_flips: list) -> None:
  """Asserts one result against the original's; a tolerated std flip is appended instead."""
  if abs(fitness - fixture["fitness"]) > 1e-9 and program.ops_used() & STD_OPS:
    std_flips.append(fixture["id"])
    return
  assert fitness == pytest.approx(fixture["fitness"], abs=1e-9), fixture["id"]
  if fixture["id"] not in STEP_COUNT_EXCEPTIONS:
    assert train_steps == fixture["train_steps"], fixture["id"]


def test_interpreter_matches_original(fixtures):
  std_flips = []
  for fixture, program, task in fixtures:
    scalars, vectors, matrices = fixture["addresses"]
    result = run(program, task, num_scalars=scalars, num_vectors=vectors, num_matrices=matrices)
    check(fixture, program, result.fitness, result.train_steps, std_flips)
  assert len(std_flips) <= MAX_STD_FLIPS, std_flips


@pytest.mark.parametrize("execution", ["select", "compact"])
def test_batched_evaluator_matches_original_in_float64(fixtures, execution):
  """All fixtures in 6 compiled calls: program i on task i, tasks padded to common sizes."""
  groups = collections.defaultdict(list)
  for case in fixtures:
    groups[case[2].group_key].append(case)
  # Every program fits the largest address configuration (20/20/20); extra registers stay unused.
  op_sets = tuple(ev.normalize_op_set({i.op for _, p, _ in fixtures for i in p.component(name)})
                  for name in COMPONENTS)
  checked, std_flips = 0, []
  for (_, eval_type), cases in groups.items():
    size = ev.bucket(len(cases), 8)
    cases = cases + [cases[0]] * (size - len(cases))
    packed = ev.pack_population([p for _, p, _ in cases], population_bucket=size)
    batch = ev.stack_bucketed([t for _, _, t in cases])
    config = ev.Config(20, 20, 20, op_sets, eval_type=eval_type, dtype="float64",
                       ragged=batch.ragged, execution=execution)
    result = ev.run_packed(config, packed, batch, jax.random.key(0), paired=True)
    fitness, steps = np.asarray(result.fitness), np.asarray(result.train_steps)
    for i, (fixture, program, _) in enumerate(cases):
      checked += 1
      check(fixture, program, fitness[i], steps[i], std_flips)
  assert checked >= 3182
  assert len(set(std_flips)) <= MAX_STD_FLIPS, std_flips
