"""Seconds per call of the public `evaluate()` on random programs over all 64 ops.

  python benchmarks/evaluate_all_ops.py [--programs=69] [--tasks=52] [--repeats=3]

69 random programs (every function 1-20 instructions drawn from all ops), 52 linear tasks at F = 16
with 32 train + 16 valid examples, 20/20/20 addresses, float32: the shape of issue 17's
measurement. Uses only the public API, so the same script times any checkout of the project.
Prints the first call (compilation included) and the median of the later calls.
"""

from __future__ import annotations

import time

import numpy as np
from absl import app, flags

from azero_jax import device, ops
from azero_jax.evaluator import evaluate
from azero_jax.program import Program
from azero_jax.search.randomizer import Memory, random_instruction
from azero_jax.tasks.synthetic import linear_task

flags.DEFINE_integer("programs", 69, "Number of random programs.")
flags.DEFINE_integer("tasks", 52, "Number of tasks.")
flags.DEFINE_integer("repeats", 3, "Timed calls after the first (the median is reported).")
flags.DEFINE_enum("dtype", "float32", ["float32", "float64"], "Evaluator dtype.")
FLAGS = flags.FLAGS

MEMORY = Memory(20, 20, 20)
FEATURES = 16


def random_programs(count: int, rng: np.random.Generator) -> list[Program]:
  all_ops = range(1, ops.NUM_OPS)
  return [Program(*([random_instruction(int(rng.choice(all_ops)), MEMORY, rng)
                     for _ in range(int(rng.integers(1, 21)))] for _ in range(3)))
          for _ in range(count)]


def main(argv):
  del argv
  device.configure_host_devices()
  print(device.describe())
  programs = random_programs(FLAGS.programs, np.random.default_rng(0))
  tasks = [linear_task(FEATURES, 32, 16, param_seed=i, data_seed=i) for i in range(FLAGS.tasks)]
  call = lambda: evaluate(programs, tasks, num_scalars=MEMORY.num_scalars,
                          num_vectors=MEMORY.num_vectors, num_matrices=MEMORY.num_matrices,
                          dtype=FLAGS.dtype)
  times, fitness = [], None
  for _ in range(FLAGS.repeats + 1):
    start = time.perf_counter()
    fitness = call()
    times.append(time.perf_counter() - start)
  print(f"{FLAGS.programs} programs x {FLAGS.tasks} tasks, {FLAGS.dtype}: first call "
        f"{times[0]:.1f} s, later calls median {np.median(times[1:]):.2f} s; "
        f"fitness checksum {np.float64(fitness.sum()):.6f}")


if __name__ == "__main__":
  app.run(main)
