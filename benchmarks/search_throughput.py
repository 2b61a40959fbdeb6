"""Search throughput on the demo by batch size B, measured in the same run.

  python benchmarks/search_throughput.py [--batch_sizes=1,10,100,1000] [--individuals=30000]

Runs the demo's regularized evolution (REFERENCE.md §11.1: P = 1000, T = 10, FEC, 10 linear tasks
of 100 + 100 examples, random initial programs) on fixed T_search tasks. Each row first fills the
population and evolves one more sweep (warm-up: compilation, FEC cache filling), then times
`--individuals` children: individuals/s and the ratio against B = 1 (the original's one-at-a-time
loop). B changes which parents a child can have, not the work per child.
"""

from __future__ import annotations

import time

import jax
import numpy as np
from absl import app, flags

from azero_jax import device
from azero_jax.search import driver
from azero_jax.search.gc_tuning import relaxed_gc
from azero_jax.tasks.collections import TaskCollections
from experiments import run_search

flags.DEFINE_list("batch_sizes", ["1", "10", "100", "1000"], "Batch sizes B to time.")
flags.DEFINE_integer("individuals", 30000, "Children timed per batch size (after the warm-up).")
flags.DEFINE_integer("seed", 1, "Random seed of the search and its tasks.")
FLAGS = flags.FLAGS
DEMO_FLAGS = "experiments/configs/demo.flags"


def demo_config(batch_size: int, seed: int) -> driver.SearchConfig:
  """The demo's SearchConfig with batch size B."""
  fv = flags.FlagValues()
  run_search.define_flags(fv, run_directory=False)
  fv(["demo", f"--flagfile={DEMO_FLAGS}", f"--batch_size={batch_size}", f"--random_seed={seed}"])
  return run_search.config_from_flags(fv)


@relaxed_gc()
def individuals_per_second(config: driver.SearchConfig, individuals: int) -> tuple[float, float]:
  """Children per second over `individuals` after a warm-up, and the FEC hit rate."""
  rng = np.random.default_rng(config.random_seed)
  tasks = TaskCollections(config.search_tasks, config.select_tasks,
                          config.final_tasks).search_tasks(config.random_seed)
  fitness = driver.search_evaluator(config, tasks, jax.random.key(config.random_seed))
  strategy = driver.make_strategy(config)
  state = strategy.init()

  def advance(count: int):
    nonlocal state
    target = state.num_individuals + count
    while state.num_individuals < target:
      children = strategy.ask(state, rng)
      state = strategy.tell(state, children, fitness.evaluate(children).fitness)

  advance(2 * config.population_size)
  start = time.perf_counter()
  advance(individuals)
  return individuals / (time.perf_counter() - start), fitness.hit_rate


def main(argv):
  del argv
  print(device.describe())
  rows = []
  for batch_size in (int(b) for b in FLAGS.batch_sizes):
    rate, hit_rate = individuals_per_second(demo_config(batch_size, FLAGS.seed), FLAGS.individuals)
    rows.append((batch_size, rate, hit_rate))
  base = rows[0][1]
  print(f"| B | individuals/s | vs B = {rows[0][0]} | FEC hit rate |")
  print("|---:|---:|---:|---:|")
  for batch_size, rate, hit_rate in rows:
    print(f"| {batch_size} | {rate:,.0f} | {rate / base:.1f}x | {hit_rate:.2f} |")


if __name__ == "__main__":
  app.run(main)
