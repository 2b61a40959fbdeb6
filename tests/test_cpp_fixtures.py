"""Ground truth: fitness computed by the original C++ executor (../shared/fixtures).

Every fixture, no exception, in float64: the same fitness (to 1e-9) and the same number of
training steps. The std of a vector of equal entries is NaN or not depending on the last bit of
E[x^2] - mean^2, so this needs the original's summation orders (REFERENCE.md Appendix B) and no
fused multiply-adds (azero_jax.device).
"""

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


def check(fixture, fitness, train_steps) -> None:
  """Asserts one result against the original's: fitness and training steps done."""
  assert fitness == pytest.approx(fixture["fitness"], abs=1e-9), fixture["id"]
  assert train_steps == fixture["train_steps"], fixture["id"]


def test_interpreter_matches_original(fixtures):
  for fixture, program, task in fixtures:
    scalars, vectors, matrices = fixture["addresses"]
    result = run(program, task, num_scalars=scalars, num_vectors=vectors, num_matrices=matrices)
    check(fixture, result.fitness, result.train_steps)


def test_batched_evaluator_matches_original_in_float64(fixtures):
  """All fixtures in 6 compiled calls: program i on task i, tasks padded to common sizes."""
  groups = collections.defaultdict(list)
  for case in fixtures:
    groups[case[2].group_key].append(case)
  # Every program fits the largest address configuration (20/20/20); extra registers stay unused.
  op_sets = tuple(ev.normalize_op_set({i.op for _, p, _ in fixtures for i in p.component(name)})
                  for name in COMPONENTS)
  checked = 0
  for (_, eval_type), cases in groups.items():
    size = ev.bucket(len(cases), 8)
    cases = cases + [cases[0]] * (size - len(cases))
    packed = ev.pack_population([p for _, p, _ in cases], population_bucket=size)
    batch = ev.stack_bucketed([t for _, _, t in cases])
    config = ev.Config(20, 20, 20, op_sets, eval_type=eval_type, dtype="float64",
                       ragged=batch.ragged)
    result = ev.run_packed(config, packed, batch, jax.random.key(0), paired=True)
    fitness, steps = np.asarray(result.fitness), np.asarray(result.train_steps)
    for i, (fixture, _, _) in enumerate(cases):
      checked += 1
      check(fixture, fitness[i], steps[i])
  assert checked >= 3182
