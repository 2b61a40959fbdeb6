"""Throughput of the batched evaluator against the NumPy interpreter, measured in the same run.

  python benchmarks/evaluator_throughput.py [--populations=1,32,256,1024,4096] [--repeats=3]
      [--clock=wall|cpu]

Prints one table row per (config, population size): individuals/s of the batched evaluator (each
individual = a full evaluation on every task of the config, no cache), of the NumPy interpreter,
and their ratio. Configs:
  demo      REFERENCE.md §11.1: 6 ops, F=4, sizes 10/2/8, 10 tasks of 100 train + 100 valid.
  baseline  §11.2: F=16, sizes 6/10/22, 10 tasks of 8000 + 1000 examples. Measured on 10 tasks of
            --baseline_scale x (8000 + 1000) examples and reported per full-size individual.
"""

from __future__ import annotations

import time

import jax
import numpy as np
from absl import app, flags

from azero_jax import device
from azero_jax import evaluator as ev
from azero_jax.interpreter import interpret
from azero_jax.search.generator import InitModel, initial_program
from azero_jax.search.randomizer import Memory, Randomizer
from azero_jax.tasks.synthetic import linear_task

flags.DEFINE_list("populations", ["1", "32", "256", "1024", "4096"], "Population sizes.")
flags.DEFINE_integer("repeats", 3, "Timed repetitions per row (the median is reported).")
flags.DEFINE_float("baseline_scale", 0.02, "Fraction of the baseline's 8000+1000 examples used.")
flags.DEFINE_list("configs", ["demo", "baseline"], "Which configs to run.")
flags.DEFINE_enum("dtype", "float32", ["float32", "float64"], "Evaluator dtype.")
flags.DEFINE_enum("clock", "wall", ["wall", "cpu"],
                  "wall: elapsed seconds; cpu: this process's CPU seconds over all its threads "
                  "(steadier than wall time on a machine shared with other work).")
FLAGS = flags.FLAGS

CONFIGS = {
    "demo": dict(memory=(4, 3, 1), op_lists=((56, 27, 2, 3, 18, 23),) * 3, sizes=(10, 2, 8),
                 features=4, train=100, valid=100),
    "baseline": dict(memory=(5, 9, 2),
                     op_lists=((56, 62, 59, 63, 60, 64, 61), (1, 31, 48, 27, 23),
                               (1, 2, 3, 18, 23, 16, 25, 28, 39)),
                     sizes=(6, 10, 22), features=16, train=8000, valid=1000),
}
NUM_TASKS = 10


def _clock() -> float:
  return time.process_time() if FLAGS.clock == "cpu" else time.perf_counter()


def _median_seconds(fn, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    start = _clock()
    fn()
    times.append(_clock() - start)
  return float(np.median(times))


def run_config(name: str, populations: list[int], repeats: int, scale: float):
  spec = CONFIGS[name]
  fraction = scale if name == "baseline" else 1.0
  train, valid = max(10, int(spec["train"] * fraction)), max(1, int(spec["valid"] * fraction))
  tasks = [linear_task(spec["features"], train, valid, param_seed=i, data_seed=i)
           for i in range(NUM_TASKS)]
  randomizer = Randomizer(spec["op_lists"], Memory(*spec["memory"]))
  rng = np.random.default_rng(0)
  programs = [initial_program(InitModel.RANDOM, spec["sizes"], randomizer, rng)
              for _ in range(max(populations))]
  config = ev.Config(*spec["memory"], tuple(ev.normalize_op_set(o) for o in spec["op_lists"]),
                     dtype=FLAGS.dtype)
  batch = ev.stack_tasks(tasks)

  # The interpreter on a few programs: individuals/s at full size.
  sample = programs[:2]
  seconds = _median_seconds(lambda: [interpret(p, t, num_scalars=spec["memory"][0],
                                               num_vectors=spec["memory"][1],
                                               num_matrices=spec["memory"][2])
                                     for p in sample for t in tasks], 1)
  interpreter_rate = len(sample) / seconds * fraction

  rows = []
  for size in populations:
    packed = ev.pack_population(programs[:size], widths=spec["sizes"], population_bucket=size)

    def evaluate(packed=packed):
      ev.run_packed(config, packed, batch, jax.random.key(0)).fitness.block_until_ready()

    start = time.perf_counter()
    evaluate()
    compile_seconds = time.perf_counter() - start
    seconds = _median_seconds(evaluate, repeats)
    rate = size / seconds * fraction
    rows.append((name, size, rate, interpreter_rate, rate / interpreter_rate, compile_seconds))
  return rows


def main(argv):
  del argv
  print(device.describe())
  print(f"dtype {FLAGS.dtype}; {NUM_TASKS} tasks per individual; interpreter = NumPy, one "
        f"program at a time; {FLAGS.clock} clock")
  print("| config | population | batched indiv/s | interpreter indiv/s | ratio | "
        "first call (s) |")
  print("|---|---:|---:|---:|---:|---:|")
  for name in FLAGS.configs:
    for row in run_config(name, [int(p) for p in FLAGS.populations], FLAGS.repeats,
                          FLAGS.baseline_scale):
      print("| {} | {} | {:,.1f} | {:,.2f} | {:,.0f}x | {:.1f} |".format(*row), flush=True)


if __name__ == "__main__":
  app.run(main)
