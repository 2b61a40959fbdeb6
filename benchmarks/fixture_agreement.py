"""Agreement with the original's executor on the fixture corpus (../shared/fixtures), per path.

  python benchmarks/fixture_agreement.py [--paths=interpreter,evaluator] [--dtypes=float64,float32]

For each path (the NumPy interpreter; the batched evaluator, all fixtures in one compiled call per
task shape) and dtype, prints how many of the 3,182 fitness values equal the original's bit for
bit and how many differ by more than --tolerance, then lists those (id, the original's fitness,
ours, the std ops the program uses). XLA_FLAGS applies as usual (e.g. `--xla_cpu_max_isa=AVX2`
lets XLA:CPU fuse multiply-adds again).
"""

from __future__ import annotations

import collections
import json
import time
from pathlib import Path

import jax
import numpy as np
from absl import app, flags

from azero_jax import device
from azero_jax import evaluator as ev
from azero_jax.interpreter import run
from azero_jax.program import COMPONENTS, Program
from azero_jax.tasks.task import Task

flags.DEFINE_list("paths", ["interpreter", "evaluator"], "Which implementations to check.")
flags.DEFINE_list("dtypes", ["float64", "float32"], "Arithmetic of each path.")
flags.DEFINE_float("tolerance", 1e-6, "A fitness further than this from the original's disagrees.")
flags.DEFINE_string("fixtures", str(Path(__file__).resolve().parents[2] / "shared" / "fixtures" /
                                    "cpp_oracle_fixtures.json"), "The fixture file.")
FLAGS = flags.FLAGS
STD_OPS = {53, 54, 55}


def load(path: str):
  data = json.loads(Path(path).read_text())
  tasks = {name: Task.from_arrays(t["train_features"], t["train_labels"], t["valid_features"],
                                  t["valid_labels"],
                                  eval_type="rms" if t["eval_type"] == "RMS_ERROR" else "accuracy",
                                  orders=t["train_epoch_orders"])
           for name, t in data["tasks"].items()}
  return [(f, Program.from_text(f["readable"]), tasks[f["task"]]) for f in data["fixtures"]]


def interpreter_fitness(cases, dtype: str) -> list[float]:
  results = []
  for fixture, program, task in cases:
    scalars, vectors, matrices = fixture["addresses"]
    results.append(run(program, task, num_scalars=scalars, num_vectors=vectors,
                       num_matrices=matrices, dtype=np.dtype(dtype).type).fitness)
  return results


def evaluator_fitness(cases, dtype: str) -> list[float]:
  """Program i on task i; every program fits the largest address configuration (20/20/20)."""
  groups = collections.defaultdict(list)
  for index, (_, _, task) in enumerate(cases):
    groups[task.group_key].append(index)
  op_sets = tuple(ev.normalize_op_set({i.op for _, p, _ in cases for i in p.component(name)})
                  for name in COMPONENTS)
  results = [0.0] * len(cases)
  for (_, eval_type), indices in groups.items():
    size = ev.bucket(len(indices), 8)
    padded = indices + [indices[0]] * (size - len(indices))
    packed = ev.pack_population([cases[i][1] for i in padded], population_bucket=size)
    batch = ev.stack_bucketed([cases[i][2] for i in padded])
    config = ev.Config(20, 20, 20, op_sets, eval_type=eval_type, dtype=dtype, ragged=batch.ragged)
    fitness = np.asarray(ev.run_packed(config, packed, batch, jax.random.key(0),
                                       paired=True).fitness, np.float64)
    for row, index in enumerate(indices):
      results[index] = float(fitness[row])
  return results


def main(argv):
  del argv
  cases = load(FLAGS.fixtures)
  print(device.describe())
  print(f"| path | dtype | bit-equal | differ by > {FLAGS.tolerance:g} | seconds |")
  print("|---|---|---:|---:|---:|")
  listed = []
  for path in FLAGS.paths:
    for dtype in FLAGS.dtypes:
      start = time.perf_counter()
      fitness = (interpreter_fitness if path == "interpreter" else evaluator_fitness)(cases, dtype)
      seconds = time.perf_counter() - start
      expected = [f["fitness"] for f, _, _ in cases]
      equal = sum(a == b for a, b in zip(fitness, expected))
      differ = [(f["id"], f["fitness"], got, sorted(p.ops_used() & STD_OPS))
                for (f, p, _), got in zip(cases, fitness)
                if not abs(got - f["fitness"]) <= FLAGS.tolerance]
      print(f"| {path} | {dtype} | {equal} of {len(cases)} | {len(differ)} | {seconds:.0f} |",
            flush=True)
      listed += [(path, dtype, *row) for row in differ]
  for row in listed:
    print("{} {}: {} original {!r}, ours {!r}, std ops {}".format(*row))


if __name__ == "__main__":
  app.run(main)
