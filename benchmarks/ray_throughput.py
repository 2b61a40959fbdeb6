"""Individuals per second of a search on W = 1 and W = 2 Ray workers next to the plain one-process
search, with the cost of Ray's start-up and of one migration between workers, all in one session:

  unshare --net python tests/loopback_only.py benchmarks/ray_throughput.py \
      [--repeats=3] [--max_train_steps=N]

(Ray must run in a network namespace holding only loopback; this script refuses otherwise.) The
search is the demo's (experiments/configs/demo.flags) with migration every 1,000 evaluations of
50 programs, one experiment with the given budget per worker. The measurements are interleaved
(plain, W = 1, W = 2, plain, W = 1, W = 2, ...), so a shared machine's drift falls on all of them;
the table gives each one's median, its ratio to the plain search's median and the median of its
ratios to the plain search of the same round.

- A rate counts a worker's individuals between its first and last progress report over the
  seconds between them, summed over the workers (start-up excluded). A first plain search fills
  JAX's persistent compilation cache, so no measured search compiles (each worker is a new
  process).
- Ray start-up: `ray.init` of a local instance, then its workers' processes up and answering (a
  new process each, importing JAX); Ray runs only during the worker searches of each round.
- One migration, as a worker does it: draw 50 emigrants from a population of P, trade them with
  the pool (50 programs up, 50 down) and let the 50 immigrants replace the oldest members.
"""

from __future__ import annotations

import socket
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import ray
from absl import app, flags

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from azero_jax.search import driver, workers  # noqa: E402
from azero_jax.tasks.collections import TaskCollections  # noqa: E402
from experiments import run_search  # noqa: E402

DEMO = f"--flagfile={ROOT / 'experiments' / 'configs' / 'demo.flags'}"
MIGRATION = ("--migration_every=1000", "--migration_size=50")
TRADES = 100

flags.DEFINE_integer("repeats", 3, "Rounds of plain, W = 1, W = 2.")
flags.DEFINE_integer("max_train_steps", 20_000_000, "Each search's budget (per worker).")


def config() -> driver.SearchConfig:
  fv = flags.FlagValues()
  run_search.define_flags(fv)
  fv(["run_search", DEMO, "--random_seed=1", "--max_experiments=1", "--progress_every=1000",
      f"--max_train_steps={flags.FLAGS.max_train_steps}", *MIGRATION])
  return run_search.config_from_flags(fv)


def rate(records: list[dict]) -> float:
  """Individuals per second between the first and last report of each worker, summed."""
  total = 0.0
  for worker in {r["worker"] for r in records}:
    mine = [r for r in records if r["worker"] == worker]
    first, last = mine[0], mine[-1]
    total += (last["evaluations"] - first["evaluations"]) / (last["elapsed_secs"]
                                                             - first["elapsed_secs"])
  return total


def plain(config_: driver.SearchConfig) -> float:
  """The one-process search's rate."""
  records = []
  strategy = driver.make_strategy(config_)
  collections = TaskCollections(config_.search_tasks, config_.select_tasks, config_.final_tasks,
                                config_.randomize_task_seeds)
  driver.search_experiment(
      config_, strategy, collections, [np.random.default_rng(1)],
      driver.ExperimentCheckpoint(7, (1,)), lambda _: None,
      lambda report, _: records.append({"worker": 0, **report._asdict()}), lambda *_: None)
  return rate(records)


def on_workers(config_: driver.SearchConfig, num_workers: int) -> tuple[float, float]:
  """The rate of `num_workers` Ray workers (one experiment, the coordinator's T_search seed) and
  the seconds until their processes answered."""
  records = []
  start = time.perf_counter()
  search = workers.ClusterSearch(config_, workers.ClusterSpec("local", num_workers),
                                 lambda _: None, log=records.append)
  ray.get([worker.pid.remote() for worker in search.workers])
  ready_secs = time.perf_counter() - start
  search(1, driver.ExperimentCheckpoint(7, (1,)), None, None)
  for handle in (*search.workers, search.pool):
    ray.kill(handle)
  return rate(records), ready_secs


def migration_secs(config_: driver.SearchConfig) -> tuple[float, float]:
  """Median seconds of one migration of a worker (draw, trade, arrival) and of its trade alone
  (the pool's round trip), the pool holding another worker's upload."""
  strategy = driver.make_strategy(config_)
  size, count = config_.population_size, config_.migration_size
  state = strategy.tell(strategy.init(1), [driver.initial(config_)] * size, np.zeros(size))
  rngs = [np.random.default_rng(1)]
  pool = ray.remote(workers.MigrationPool).options(num_cpus=0).remote()
  programs, fitness = strategy.emigrants(state, rngs, count)
  ray.get(pool.trade.remote(1, 1, programs, fitness.ravel(), count, 1))
  whole, trades = [], []
  for seed in range(TRADES):
    start = time.perf_counter()
    programs, fitness = strategy.emigrants(state, rngs, count)
    traded = time.perf_counter()
    got = ray.get(pool.trade.remote(0, 1, programs, fitness.ravel(), count, seed))
    trades.append(time.perf_counter() - traded)
    state = strategy.immigrate(state, got[0], got[1])
    whole.append(time.perf_counter() - start)
  ray.kill(pool)
  return statistics.median(whole), statistics.median(trades)


def main(_) -> None:
  if [name for _, name in socket.if_nameindex()] != ["lo"]:
    sys.exit("ray_throughput: run me in a loopback-only namespace: unshare --net python "
             "tests/loopback_only.py benchmarks/ray_throughput.py")
  config_ = config()
  plain(config_)  # warm-up: fills the compilation cache that the workers' processes read
  rates: dict[str, list[float]] = {"plain": [], "W=1": [], "W=2": []}
  costs: dict[str, list[float]] = {"init": [], "ready W=1": [], "ready W=2": [], "migration": [],
                                   "trade": []}
  for round_ in range(flags.FLAGS.repeats):
    rates["plain"].append(plain(config_))
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning", log_to_driver=False)
    costs["init"].append(time.perf_counter() - start)
    for num_workers in (1, 2):
      value, ready = on_workers(config_, num_workers)
      rates[f"W={num_workers}"].append(value)
      costs[f"ready W={num_workers}"].append(ready)
    whole, trade = migration_secs(config_)
    costs["migration"].append(whole)
    costs["trade"].append(trade)
    ray.shutdown()
    print(f"round {round_ + 1}: " + ", ".join(f"{name} {values[-1]:,.0f}/s"
                                              for name, values in rates.items()), flush=True)
  median = {name: statistics.median(values) for name, values in rates.items()}
  per_worker = {"plain": median["plain"], "W=1": median["W=1"], "W=2": median["W=2"] / 2}
  print(f"\nbudget per worker: max_train_steps={config_.max_train_steps}, "
        f"{flags.FLAGS.repeats} interleaved rounds; median (min-max)")
  print(f"{'search':<8} {'individuals/s':>24} {'vs plain':>9} {'per worker':>11} "
        f"{'vs plain in its round':>22}")
  for name, values in rates.items():
    spread = f"{median[name]:,.0f} ({min(values):,.0f}-{max(values):,.0f})"
    in_round = statistics.median(v / p for v, p in zip(values, rates["plain"], strict=True))
    print(f"{name:<8} {spread:>24} {median[name] / median['plain']:>8.2f}x "
          f"{per_worker[name] / median['plain']:>10.2f}x {in_round:>21.2f}x")
  seconds = {name: statistics.median(values) for name, values in costs.items()}
  print(f"\nRay start-up: ray.init {seconds['init']:.1f} s (runs {_spread(costs['init'])}); "
        f"workers answering after {seconds['ready W=1']:.1f} s (W=1), "
        f"{seconds['ready W=2']:.1f} s (W=2)")
  every = int(MIGRATION[0].split("=")[1])
  print(f"one migration ({config_.migration_size} programs up, {config_.migration_size} down, "
        f"P={config_.population_size}): {seconds['migration'] * 1e3:.2f} ms, of which the pool "
        f"round trip {seconds['trade'] * 1e3:.2f} ms; every {every:,} evaluations at the W=1 "
        f"rate: {seconds['migration'] * median['W=1'] / every:.2%} of a worker's time")


def _spread(values: list[float]) -> str:
  return ", ".join(f"{value:.1f}" for value in values)


if __name__ == "__main__":
  app.run(main)
