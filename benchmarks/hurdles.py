"""Search throughput with hurdles on vs off, in the same run.

  python benchmarks/hurdles.py [--config=experiments/configs/demo.flags] [--hurdle_tasks=0,3]
      [--hurdle_percentile=75] [--individuals=20000] [--repeats=3] [--warmup_sweeps=4] [--seed=1]

Runs the regularized evolution of a shipped configuration (default the demo: P = 1000, B = 250,
FEC, 10 linear tasks of 100 + 100 examples, random initial programs; or e.g. baseline.flags: P =
100, no FEC, 10 binary_digits tasks) on fixed T_search tasks with each `--hurdle_tasks` value
(0 = hurdles off). Each row fills the population and evolves a few more sweeps (warm-up: FEC
cache filling, a rolling hurdle), runs a throwaway evaluator on batches of each compacted size
(compilation), then times `--individuals` children through `driver.step`, the search's own step.
The rows are timed in turn `--repeats` times and each row shows its fastest (the machine is
noisy, and a compacted size the warm-up missed compiles in the first repeat). Columns:
individuals/s and the ratio against the first row; train steps per child (REFERENCE.md §4.6); the
fraction of children stopped at the hurdle; the FEC hit rate; the best search fitness in the
population at the end.
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

flags.DEFINE_string("config", "experiments/configs/demo.flags", "The flag file of the search.")
flags.DEFINE_list("hurdle_tasks", ["0", "3"], "Hurdle task counts H to time (0 = off).")
flags.DEFINE_float("hurdle_percentile", 75.0, "The hurdle percentile.")
flags.DEFINE_integer("individuals", 20000, "Children timed per row and repeat (after warm-up).")
flags.DEFINE_integer("repeats", 3, "Times each row is timed, in turn with the other rows.")
flags.DEFINE_integer("warmup_sweeps", 4, "Sweeps of P individuals before timing (compilation "
                     "of the compacted shapes: each hurdle round has its own).")
flags.DEFINE_integer("seed", 1, "Random seed of the search and its tasks.")
FLAGS = flags.FLAGS


def search_config(path: str, hurdle_tasks: int, percentile: float,
                  seed: int) -> driver.SearchConfig:
  """The SearchConfig of flag file `path`, hurdles on the first `hurdle_tasks` tasks (0: off)."""
  fv = flags.FlagValues()
  run_search.define_flags(fv, run_directory=False)
  fv(["benchmark", f"--flagfile={path}", f"--random_seed={seed}",
      f"--hurdle_tasks={hurdle_tasks}", f"--hurdle_percentile={percentile}"])
  return run_search.config_from_flags(fv)


class Search:
  """One island of a search, advanced through `driver.step`."""

  def __init__(self, config: driver.SearchConfig):
    self.config = config
    self.tasks = TaskCollections(config.search_tasks, config.select_tasks,
                                 config.final_tasks).search_tasks(config.random_seed)
    self.rngs = [np.random.default_rng(config.random_seed)]
    self.fitness = driver.search_evaluator(config, self.tasks,
                                           [jax.random.key(config.random_seed)])
    self.strategy = driver.make_strategy(config)
    self.state = self.strategy.init(1)
    self.train_steps = 0

  def compile_shapes(self) -> None:
    """Evaluates the population with a throwaway evaluator in batches of each compacted size
    (all past the hurdle), so that the timed steps compile little (FEC may shrink a batch)."""
    throwaway = driver.search_evaluator(self.config, self.tasks, [jax.random.key(0)])
    programs = self.state.programs
    size = throwaway.bucket
    while size >= 16:
      count = min(size // 2 + 1, len(programs))
      throwaway.evaluate(programs[:count])
      size //= 2

  def advance(self, count: int) -> None:
    target = int(self.state.num_individuals[0]) + count
    while self.state.num_individuals[0] < target:
      self.state, used = driver.step(self.strategy, self.fitness, self.state, self.rngs,
                                     np.arange(1))
      self.train_steps += int(used.sum())


@relaxed_gc()
def time_once(search: Search, individuals: int) -> dict:
  """Individuals/s, train steps per child and stopped fraction over `individuals` children."""
  start_count, start_steps = int(search.state.num_individuals[0]), search.train_steps
  start_stopped = search.fitness.stopped_at_hurdle
  wall = time.perf_counter()
  search.advance(individuals)
  wall = time.perf_counter() - wall
  done = int(search.state.num_individuals[0]) - start_count
  return {"rate": done / wall, "steps": (search.train_steps - start_steps) / done,
          "stopped": (search.fitness.stopped_at_hurdle - start_stopped) / done}


def main(argv):
  del argv
  print(device.describe())
  counts = [int(h) for h in FLAGS.hurdle_tasks]
  searches = [Search(search_config(FLAGS.config, h, FLAGS.hurdle_percentile, FLAGS.seed))
              for h in counts]
  for search in searches:  # warm-up: the initial population and sweeps of children
    search.advance(FLAGS.warmup_sweeps * search.strategy.population_size)
    search.compile_shapes()
  timings = [[] for _ in counts]
  for _ in range(FLAGS.repeats):
    for search, rows in zip(searches, timings):
      rows.append(time_once(search, FLAGS.individuals))
  fastest = [max(rows, key=lambda row: row["rate"]) for rows in timings]
  base = fastest[0]["rate"]
  num_tasks = len(searches[0].fitness.tasks)
  print(f"| hurdle tasks H (of {num_tasks}) | individuals/s | vs H = {counts[0]} | "
        "train steps per child | stopped at the hurdle | FEC hit rate | best search fitness |")
  print("|---:|---:|---:|---:|---:|---:|---:|")
  for hurdle_tasks, search, row in zip(counts, searches, fastest):
    print(f"| {hurdle_tasks or 'off'} | {row['rate']:,.0f} | {row['rate'] / base:.2f}x | "
          f"{row['steps']:,.0f} | {row['stopped']:.0%} | "
          f"{f'{search.fitness.hit_rate:.2f}' if search.fitness.caches else '-'} | "
          f"{search.state.fitness.max():.6f} |")


if __name__ == "__main__":
  app.run(main)
