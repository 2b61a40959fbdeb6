"""Host time per 1,000 children: the code before islands against today's, alternated in one run.

  python benchmarks/pre_islands_host.py [--rounds=3] [--islands=8] [--individuals=50000]
      [--steps=driver]

The islands issue's host-time target is a fraction of the host time of the code just before
islands (18cc2cc: one population, the demo at B = 250). This machine's speed drifts by 2x between
days, so both are measured here, alternately: each round runs the old code (a `git archive` of
`--baseline` in a temporary folder, the demo at B = 250, in a subprocess) and then today's
(`search_throughput.measure` on the demo at each K of `--islands`, with its `--steps`, in this
process). Both count the same thing: the CPU time of the thread that runs the search (selection,
mutation, dead code, FEC, packing, call dispatch) per 1,000 children, after the same warm-up (4
sweeps), the faster of two timed runs of `--individuals` children. Both also count the three
stages the issue's ~15 ms counted: the FEC lookups (`SearchEvaluator._lookup`), selection and
mutation (the strategy's `ask`) and dead code (`strip_packed`), in the last two columns. Needs git
and the repository's history.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import tempfile

import numpy as np
from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from azero_jax import device  # noqa: E402
from azero_jax.search import driver, fitness  # noqa: E402
from benchmarks import search_throughput  # noqa: E402 (its flags: --islands, --individuals, ...)

flags.DEFINE_string("baseline", "18cc2cc", "The commit before islands.")
flags.DEFINE_integer("rounds", 3, "Alternated rounds (old code, then today's).", lower_bound=1)
FLAGS = flags.FLAGS
FLAGS.set_default("islands", ["8"])
FLAGS.set_default("individuals", 50000)


def issue_stages(fitness_module, strategy) -> dict:
  """The stages the issue's ~15 ms counted (FEC lookups, mutation, dead code) in either code."""
  return {"FEC lookups": [(fitness_module.SearchEvaluator, "_lookup")],
          "ask": [(type(strategy), "ask")], "dead code": [(fitness_module, "strip_packed")]}


# Runs inside the old tree, with its API (one population, `ask(state, rng)`).
OLD_PROBE = (inspect.getsource(search_throughput.time_stages) + inspect.getsource(issue_stages)
             + """
import sys, time
import jax, numpy as np
from absl import flags
from azero_jax.search import driver, fitness as fitness_module
from azero_jax.search.gc_tuning import relaxed_gc
from azero_jax.tasks.collections import TaskCollections
from experiments import run_search

fv = flags.FlagValues()
run_search.define_flags(fv, run_directory=False)
fv(["demo", "--flagfile=experiments/configs/demo.flags", "--batch_size=250", "--random_seed=1"])
config = run_search.config_from_flags(fv)

@relaxed_gc()
def measure(individuals):
  rng = np.random.default_rng(config.random_seed)
  tasks = TaskCollections(config.search_tasks, config.select_tasks,
                          config.final_tasks).search_tasks(config.random_seed)
  fitness = driver.search_evaluator(config, tasks, jax.random.key(config.random_seed))
  strategy = driver.make_strategy(config)
  state = strategy.init()
  stages = time_stages(issue_stages(fitness_module, strategy))
  def advance(count):
    nonlocal state
    target = state.num_individuals + count
    while state.num_individuals < target:
      children = strategy.ask(state, rng)
      state = strategy.tell(state, children, fitness.evaluate(children).fitness)
  advance(4 * config.population_size)
  rows = []
  for _ in range(2):
    stages.update(dict.fromkeys(stages, 0.0))
    done, wall, host = state.num_individuals, time.perf_counter(), time.thread_time()
    advance(individuals)
    done = state.num_individuals - done
    wall, host = time.perf_counter() - wall, time.thread_time() - host
    rows.append((done / wall, 1e6 * host / done, 1e6 * sum(stages.values()) / done))
  return max(rows)

print(*measure(int(sys.argv[1])))
""")


def old_code_row(tree: str, individuals: int) -> tuple[float, float, float]:
  """(individuals/s, host ms per 1,000 children, of which the issue's stages) of the old code,
  in a subprocess."""
  result = subprocess.run([sys.executable, "-c", OLD_PROBE, str(individuals)], cwd=tree,
                          capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": tree})
  rate, host, stages = result.stdout.split()[-3:]
  return float(rate), float(host), float(stages)


def main(argv):
  del argv
  print(device.describe())
  islands = [int(k) for k in FLAGS.islands]
  configs = [search_throughput.demo_config(k, 250, 1) for k in islands]
  steps = search_throughput.STEPS[FLAGS.steps[0]]
  stages = search_throughput.time_stages(issue_stages(fitness, driver.make_strategy(configs[0])))
  rows = []  # (round, code, K, individuals/s, host ms, old host ms, stages ms, old stages ms)
  with tempfile.TemporaryDirectory() as tree:
    archive = subprocess.run(["git", "archive", FLAGS.baseline], cwd=ROOT, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
    for number in range(1, FLAGS.rounds + 1):
      old_rate, old_host, old_stages = old_code_row(tree, FLAGS.individuals)
      rows.append((number, FLAGS.baseline, 1, old_rate, old_host, old_host, old_stages,
                   old_stages))
      for k, config in zip(islands, configs):
        new = search_throughput.measure(config, FLAGS.individuals, steps, stage_seconds=stages)
        rows.append((number, "today", k, new["rate"], new["host_ms"], old_host,
                     sum(new["stage_ms"].values()), old_stages))
  print("| round | code | K | individuals/s | host ms per 1,000 children | old host / this | "
        "FEC lookups + ask + dead code ms | old / this |")
  print("|---:|---|---:|---:|---:|---:|---:|---:|")
  for number, code, k, rate, host, old_host, staged, old_staged in rows:
    print(f"| {number} | {code} | {k} | {rate:,.0f} | {host:.1f} | {old_host / host:.2f}x | "
          f"{staged:.1f} | {old_staged / staged:.2f}x |")
  for k in islands:
    today = [row for row in rows if row[1] == "today" and row[2] == k]
    for what, ratios in (("host time", [row[5] / row[4] for row in today]),
                         ("the issue's stages", [row[7] / row[6] for row in today])):
      print(f"K = {k}: {what} {np.median(ratios):.2f}x less than {FLAGS.baseline}'s (median of "
            f"{len(ratios)} rounds; {min(ratios):.2f}x-{max(ratios):.2f}x)")


if __name__ == "__main__":
  app.run(main)
