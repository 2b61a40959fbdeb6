"""Search throughput on the demo by number of islands K (or batch size B), in the same run.

  python benchmarks/search_throughput.py [--islands=1,4,16,64] [--batch_sizes=250]
      [--individuals=100000] [--fec_scope=shared] [--steps=driver,halves,one_batch] [--stages]

Runs the demo's regularized evolution (REFERENCE.md §11.1: P = 1000, T = 10, FEC, 10 linear tasks
of 100 + 100 examples, random initial programs) on fixed T_search tasks, K islands in lock-step,
with the driver's step (`--steps=driver`: `driver.step` as a run takes it, with K >= 2 in two
halves whose host and device work overlap where evaluator calls run beside the host), or forced
to `halves` or `one_batch` (all islands' children asked, evaluated and told as one batch).
Each row first fills the populations and evolves `--warmup_sweeps` - 1 more sweeps (warm-up:
compilation of the batch shapes that occur, FEC cache filling), then times at least
`--individuals` children (all islands together), `--repeats` times in a row, and reports the
fastest of these (a batch size met for the first time compiles inside a timed run). Columns:
individuals/s and the ratio against the first row (measured in the same run); children per
compiled evaluator call (fingerprint and full runs); host milliseconds per 1,000 children (CPU
time of the Python thread that runs the search: selection, mutation, dead code, FEC, packing, call
dispatch; the evaluator's own threads are not counted); CPU utilisation (process user + system
time / wall time; 2.0 = both cores of a 2-core machine busy); FEC hit rate. `--stages` adds a
table of each row's host time by stage (`host_stages`: the thread CPU inside each stage's
functions).
"""

from __future__ import annotations

import functools
import os
import time

import jax
import numpy as np
from absl import app, flags

from azero_jax import device, evaluator
from azero_jax.search import driver
from azero_jax.search import fitness as search_fitness
from azero_jax.search.gc_tuning import relaxed_gc
from azero_jax.tasks.collections import TaskCollections
from experiments import run_search

flags.DEFINE_list("islands", ["1", "4", "16", "64"], "Island counts K to time.")
flags.DEFINE_list("batch_sizes", ["250"], "Batch sizes B (children per island per step).")
flags.DEFINE_integer("individuals", 100000, "Children timed per row (after the warm-up).")
flags.DEFINE_enum("fec_scope", "shared", ["shared", "island"], "FEC cache scope.")
flags.DEFINE_integer("seed", 1, "Random seed of the search and its tasks.")
flags.DEFINE_integer("warmup_sweeps", 4, "Sweeps (P children per island) before timing.",
                     lower_bound=1)
flags.DEFINE_integer("repeats", 2, "Timed runs per row, one after another; the fastest is "
                     "reported.", lower_bound=1)
flags.DEFINE_list("steps", ["driver"], "How a step runs: driver (the driver's choice), halves "
                  "(overlapped) and/or one_batch (no overlap).")
flags.DEFINE_bool("stages", False, "Also print each row's host milliseconds per 1,000 children "
                  "by stage (the rest: the driver's own work and the stages' callers).")
flags.register_validator("steps", lambda steps: set(steps) <= set(STEPS),
                         "--steps takes driver, halves and/or one_batch")
FLAGS = flags.FLAGS
DEMO_FLAGS = "experiments/configs/demo.flags"


def demo_config(num_islands: int, batch_size: int, seed: int,
                fec_scope: str = "shared") -> driver.SearchConfig:
  """The demo's SearchConfig with K islands of batch size B."""
  fv = flags.FlagValues()
  run_search.define_flags(fv, run_directory=False)
  fv(["demo", f"--flagfile={DEMO_FLAGS}", f"--batch_size={batch_size}", f"--random_seed={seed}",
      f"--num_islands={num_islands}", f"--fec_scope={fec_scope}", "--migration_every=0"])
  return run_search.config_from_flags(fv)


class CallCounter:
  """Counts compiled evaluator calls and the programs they carry (wraps `run_packed`)."""

  def __init__(self):
    self.calls = self.programs = 0
    self._run_packed = evaluator.run_packed

  def __call__(self, config, packed, *args, **kwargs):
    self.calls += 1
    self.programs += packed.size
    return self._run_packed(config, packed, *args, **kwargs)


def time_stages(stages: dict) -> dict:
  """Wraps the functions of each stage ({name: [(owner, attribute), ...]}) so that they add their
  thread CPU seconds to the returned {name: seconds} (zero its values to start again)."""
  import time  # also runs from this source in pre_islands_host's probe of older code
  spent = dict.fromkeys(stages, 0.0)

  def timed(function, name):
    def run(*args, **kwargs):
      start = time.thread_time()
      try:
        return function(*args, **kwargs)
      finally:
        spent[name] += time.thread_time() - start
    return run

  for name, places in stages.items():
    for owner, attribute in places:
      setattr(owner, attribute, timed(getattr(owner, attribute), name))
  return spent


def host_stages(strategy) -> dict:
  """The search thread's stages, none inside another (for `time_stages`): name -> functions."""
  evaluator_class = search_fitness.SearchEvaluator
  return {"ask (selection, mutation)": [(type(strategy), "ask")],
          "tell": [(type(strategy), "tell")],
          "dead code": [(search_fitness, "strip_packed")],
          "memo lookups, fingerprint dispatch": [(evaluator_class, "_memo_lookup")],
          "fingerprint keys, memo adds": [(evaluator_class, "_fingerprints")],
          "FEC lookups": [(evaluator_class, "_lookup")],
          "full-run dispatch": [(evaluator_class, "_dispatch_run")],
          "full-run collection": [(evaluator_class, "_collect_run")]}


STEPS = {"driver": driver.step, "halves": functools.partial(driver.step, overlap=True),
         "one_batch": functools.partial(driver.step, overlap=False)}


@relaxed_gc()
def measure(config: driver.SearchConfig, individuals: int, step=driver.step,
            warmup_sweeps: int = 4, repeats: int = 2, stage_seconds: dict | None = None) -> dict:
  """Throughput, programs per call, host time and CPU use over `individuals` after a warm-up,
  the best of `repeats` runs one after another. With `stage_seconds` (seconds by stage name, the
  dict that `time_stages`' wrappers add to), also each stage's host milliseconds per 1,000
  children in that run ("stage_ms")."""
  seeds = driver.island_seeds(config.random_seed, config.num_islands)
  rngs = [np.random.default_rng(seed) for seed in seeds]
  tasks = TaskCollections(config.search_tasks, config.select_tasks,
                          config.final_tasks).search_tasks(config.random_seed)
  fitness = driver.search_evaluator(config, tasks, [jax.random.key(s) for s in seeds])
  strategy = driver.make_strategy(config)
  state = strategy.init(config.num_islands)
  islands = np.arange(config.num_islands)

  def advance(count: int) -> int:
    nonlocal state
    total = lambda: int(state.num_individuals.sum())
    target = total() + count
    while total() < target:
      state, _ = step(strategy, fitness, state, rngs, islands)
    return total()

  def timed() -> dict:
    counter = CallCounter()
    evaluator.run_packed = counter
    try:
      start_count = int(state.num_individuals.sum())
      stages = {} if stage_seconds is None else stage_seconds
      stages.update(dict.fromkeys(stages, 0.0))
      wall, host, cpu = time.perf_counter(), time.thread_time(), os.times()
      done = advance(individuals) - start_count
      wall, host = time.perf_counter() - wall, time.thread_time() - host
      after = os.times()
    finally:
      evaluator.run_packed = counter._run_packed
    cpu_seconds = (after.user - cpu.user) + (after.system - cpu.system)
    return {"rate": done / wall, "per_call": counter.programs / max(counter.calls, 1),
            "host_ms": 1000 * host / done * 1000, "cpu": cpu_seconds / wall,
            "hit_rate": fitness.hit_rate,
            "stage_ms": {name: 1e6 * seconds / done for name, seconds in stages.items()}}

  advance(warmup_sweeps * config.population_size * config.num_islands)
  # A batch size met for the first time compiles inside the timed part: the best repeat is the
  # one without (or with the fewest) compilations.
  return max((timed() for _ in range(repeats)), key=lambda row: row["rate"])


def main(argv):
  del argv
  print(device.describe())
  stage_seconds = None
  if FLAGS.stages:
    stage_seconds = time_stages(host_stages(driver.make_strategy(demo_config(1, 250, FLAGS.seed))))
  rows = []
  for batch_size in (int(b) for b in FLAGS.batch_sizes):
    for num_islands in (int(k) for k in FLAGS.islands):
      config = demo_config(num_islands, batch_size, FLAGS.seed, FLAGS.fec_scope)
      for steps in FLAGS.steps:
        rows.append((num_islands, batch_size, steps,
                     measure(config, FLAGS.individuals, STEPS[steps], FLAGS.warmup_sweeps,
                             FLAGS.repeats, stage_seconds)))
  base = rows[0][3]["rate"]
  print("| K | B | step | individuals/s | vs the first row | children per call | "
        "host ms per 1,000 children | CPU use (user+sys / wall) | FEC hit rate |")
  print("|---:|---:|---|---:|---:|---:|---:|---:|---:|")
  for num_islands, batch_size, steps, row in rows:
    print(f"| {num_islands} | {batch_size} | {steps} | {row['rate']:,.0f} | "
          f"{row['rate'] / base:.2f}x | {row['per_call']:,.0f} | {row['host_ms']:.1f} | "
          f"{row['cpu']:.2f} | {row['hit_rate']:.2f} |")
  if stage_seconds is not None:
    names = list(stage_seconds)
    print("\nHost ms per 1,000 children by stage:\n")
    print("| K | B | step | " + " | ".join(names) + " | rest |")
    print("|---:|---:|---|" + "---:|" * (len(names) + 1))
    for num_islands, batch_size, steps, row in rows:
      staged = [row["stage_ms"][name] for name in names]
      print(f"| {num_islands} | {batch_size} | {steps} | "
            + " | ".join(f"{ms:.2f}" for ms in staged) + f" | {row['host_ms'] - sum(staged):.2f} |")


if __name__ == "__main__":
  app.run(main)
