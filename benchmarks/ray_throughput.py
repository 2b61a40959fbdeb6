"""Individuals per second of a search on Ray workers next to the plain one-process search, the
cost of migration between workers, and Ray's start-up time, all in one session:

  unshare --net python tests/loopback_only.py benchmarks/ray_throughput.py [--max_train_steps=N]

(Ray must run in a network namespace holding only loopback; this script refuses otherwise.) The
search is the demo's (experiments/configs/demo.flags), one experiment with the given budget per
worker. A rate counts the individuals between a search's first and last progress report over
the seconds between them, summed over workers. A first one-process search fills JAX's persistent
compilation cache, so no measured search compiles (each worker is a new process); the one-process
search runs again at the end to show the drift of a shared machine.
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import numpy as np
import ray
from absl import flags

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from azero_jax.search import driver, workers  # noqa: E402
from azero_jax.tasks.collections import TaskCollections  # noqa: E402
from experiments import run_search  # noqa: E402

DEMO = f"--flagfile={ROOT / 'experiments' / 'configs' / 'demo.flags'}"
TRADES = 200


def config(*overrides: str) -> driver.SearchConfig:
  fv = flags.FlagValues()
  run_search.define_flags(fv)
  fv(["run_search", DEMO, "--random_seed=1", "--max_experiments=1", "--progress_every=1000",
      *sys.argv[1:], *overrides])
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
  rngs = [np.random.default_rng(1)]
  driver.search_experiment(
      config_, strategy, collections, rngs, driver.ExperimentCheckpoint(7, (1,)), lambda _: None,
      lambda report, _: records.append({"worker": 0, **report._asdict()}), lambda *_: None)
  return rate(records)


def on_workers(config_: driver.SearchConfig, num_workers: int) -> float:
  """The rate of `num_workers` Ray workers (one experiment, the coordinator's T_search seed)."""
  records = []
  search = workers.ClusterSearch(config_, workers.ClusterSpec("local", num_workers),
                                 lambda _: None, log=records.append)
  search(1, driver.ExperimentCheckpoint(7, (1,)), None, None)
  for handle in (*search.workers, search.pool):
    ray.kill(handle)
  return rate(records)


def trade_secs(config_: driver.SearchConfig) -> float:
  """Seconds per round trip of a worker's trade with the pool (migration_size programs)."""
  pool = ray.remote(workers.MigrationPool).remote()
  state = driver.make_strategy(config_)
  rngs = [np.random.default_rng(1)]
  population = state.init(1)
  programs = [driver.initial(config_)] * config_.population_size
  population = state.tell(population, programs, np.zeros(config_.population_size))
  emigrants, fitness = state.emigrants(population, rngs, config_.migration_size)
  ray.get(pool.trade.remote(1, 1, emigrants, fitness.ravel(), fitness.size, 1))
  start = time.perf_counter()
  for seed in range(TRADES):
    ray.get(pool.trade.remote(0, 1, emigrants, fitness.ravel(), fitness.size, seed))
  return (time.perf_counter() - start) / TRADES


def main() -> None:
  if [name for _, name in socket.if_nameindex()] != ["lo"]:
    sys.exit("ray_throughput: run me in a loopback-only namespace: unshare --net python "
             "tests/loopback_only.py benchmarks/ray_throughput.py")
  migrating = config("--migration_every=1000", "--migration_size=50")
  still = config("--migration_every=0")
  plain(still)  # warm-up: fills the compilation cache that the workers' processes read
  baseline = plain(still)
  start = time.perf_counter()
  ray.init(num_cpus=2, include_dashboard=False, logging_level="warning", log_to_driver=False)
  start_secs = time.perf_counter() - start
  rows = [("one process, no Ray", baseline),
          ("Ray, W=1", on_workers(still, 1)),
          ("Ray, W=2, no migration", on_workers(still, 2)),
          ("Ray, W=2, migration every 1000, 50 programs", on_workers(migrating, 2))]
  trade = trade_secs(migrating)
  ray.shutdown()
  rows.append(("one process, no Ray, again", plain(still)))
  print(f"budget per worker: max_train_steps={still.max_train_steps}")
  print(f"{'search':<46} {'individuals/s':>13} {'vs one process':>15}")
  for name, value in rows:
    print(f"{name:<46} {value:>13.0f} {value / baseline:>14.2f}x")
  print(f"Ray start-up (ray.init of a local instance): {start_secs:.1f} s")
  print(f"one trade with the pool (50 programs out, 50 in): {trade * 1e3:.2f} ms")


if __name__ == "__main__":
  main()
