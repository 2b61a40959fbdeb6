"""A search on a Ray cluster (`--ray_address`): each worker is a Ray actor running one process's
search of its K islands; they trade programs through a migration pool without waiting for each
other, and a killed worker is restarted by Ray from its own last checkpoint.

The launcher is the coordinator: `driver.run` with `ClusterSearch` as its search. For each
experiment it draws the seeds as a one-process run does and hands every worker the experiment's
T_search seed and seeds of its own (worker 0 gets the island seeds themselves); each worker runs
`driver.search_experiment` to its own `max_train_steps` and returns its islands' candidates, and
selection and the final evaluation run in the coordinator as in one process. Progress reports go
through a queue: each is a line of progress.jsonl with a `worker` field, and the printed progress
lines combine the latest report of every worker in the original's format.

Migration between workers: every `migration_every` evaluations of an island (after the islands'
own migration) a worker uploads `migration_size` programs drawn from each of its islands to the
`MigrationPool` actor and takes as many per island from the latest uploads of the other workers in
the same experiment, which replace its oldest members (`RegularizedEvolution.immigrate`).

A task mix deals its families to the islands of all workers in turn (worker w's island k is
island w K + k of `driver.island_families`): with one island per worker, the workers take the
families in turn. The pool
answers at once with whatever it holds, so a slow worker never stalls a fast one.

Faults: with a run directory, worker w checkpoints to `workers/<w>/checkpoints` every
`--checkpoint_every_secs` (or `--checkpoint_every` evaluations) and at the end of its search;
`workers/<w>/worker.json` names its host and process. Ray restarts a killed worker process and
retries its search, which continues from that checkpoint (the progress it reports goes on from
the checkpoint's evaluation count; the first report after a restart carries `restarted_from`).
The coordinator checkpoints before each experiment (`driver.run`), so a killed coordinator's
`--resume` draws the running experiment's seeds again and its new workers continue from their
own checkpoints of it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import ray
from ray.util.queue import Empty, Queue

from azero_jax import files
from azero_jax.program import PackedPopulation, ProgramBatch, concatenate
from azero_jax.run_dir import CHECKPOINTS, WORKERS
from azero_jax.search import checkpoint, driver
from azero_jax.search.driver import (
  ExperimentCheckpoint,
  ProgressReport,
  SearchConfig,
  SearchOutcome,
  SearchProgress,
  Snapshot,
)
from azero_jax.tasks.collections import TaskCollections

CONNECT_TIMEOUT_SECS = 5.0
_POLL_SECS = 0.2


@dataclasses.dataclass(frozen=True)
class ClusterSpec:
  """Where the workers run and how many: `address` is local (start Ray here), auto (the cluster
  this node belongs to), ray://HOST:PORT (Ray client) or HOST:PORT (a head node's GCS)."""

  address: str
  num_workers: int = 1
  worker_cpus: float = 1.0
  worker_gpus: float = 0.0


def check(spec: ClusterSpec) -> None:
  """Raises ValueError naming the flag for a bad spec; contacts nothing."""
  if spec.num_workers < 1:
    raise ValueError(f"--num_workers must be >= 1, got {spec.num_workers}")
  if spec.worker_cpus < 0 or spec.worker_gpus < 0:
    raise ValueError("--worker_cpus and --worker_gpus must be >= 0, got "
                     f"{spec.worker_cpus} and {spec.worker_gpus}")
  if spec.address not in ("local", "auto"):
    _host_port(spec.address)


def _host_port(address: str) -> tuple[str, int]:
  host, _, port = address.removeprefix("ray://").rpartition(":")
  if not host or not port.isdigit():
    raise ValueError(f"--ray_address: expected local, auto, ray://HOST:PORT or HOST:PORT, got "
                     f"{address!r}")
  return host, int(port)


def connect(spec: ClusterSpec) -> None:
  """Starts or joins the Ray cluster and checks that it can place the workers; raises
  ValueError naming the flag (Ray is shut down again then)."""
  if spec.address not in ("local", "auto"):
    host, port = _host_port(spec.address)
    try:
      socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_SECS).close()
    except OSError as error:
      raise ValueError(f"--ray_address: cannot reach {spec.address}: {error}") from None
  try:
    ray.init(address=None if spec.address == "local" else spec.address,
             include_dashboard=False, logging_level="warning", log_to_driver=False)
  except (ConnectionError, RuntimeError, ValueError) as error:
    raise ValueError(f"--ray_address: cannot connect to {spec.address}: {error}") from None
  resources = ray.cluster_resources()
  for name, each in (("CPU", spec.worker_cpus), ("GPU", spec.worker_gpus)):
    have = resources.get(name, 0.0)
    if each * spec.num_workers > have:
      ray.shutdown()
      raise ValueError(f"--num_workers: {spec.num_workers} workers need "
                       f"{each * spec.num_workers:g} {name}s ({each:g} each), but the cluster at "
                       f"{spec.address} has {have:g}")


class MigrationPool:
  """The latest emigrants of each worker in the current experiment (a Ray actor)."""

  def __init__(self):
    self.experiment = 0
    self.uploads: dict[int, tuple[PackedPopulation, np.ndarray]] = {}

  def trade(self, worker: int, experiment: int, programs: PackedPopulation, fitness: np.ndarray,
            count: int, seed: int) -> tuple[PackedPopulation, np.ndarray] | None:
    """Keeps `worker`'s upload and returns `count` programs drawn from the other workers' latest
    uploads of this experiment (None while there are none)."""
    if experiment != self.experiment:
      if experiment < self.experiment:
        return None  # a late call from a finished experiment
      self.experiment, self.uploads = experiment, {}
    others = [self.uploads[w] for w in sorted(self.uploads) if w != worker]
    self.uploads[worker] = (programs, np.asarray(fitness, np.float64))
    if not others:
      return None
    pool = concatenate([programs for programs, _ in others])
    pool_fitness = np.concatenate([fitness for _, fitness in others])
    rows = np.random.default_rng(seed).choice(len(pool_fitness), count,
                                              replace=count > len(pool_fitness))
    return pool.take(rows), pool_fitness[rows]

  def uploaded(self, worker: int) -> tuple[PackedPopulation, np.ndarray] | None:
    """`worker`'s latest upload in the current experiment."""
    return self.uploads.get(worker)


def worker_seeds(seeds: tuple[int, ...], worker: int, num_workers: int) -> tuple[int, ...]:
  """Worker `worker`'s seed of each island from the experiment's island seeds (worker 0: the
  seeds themselves)."""
  return tuple(driver.island_seeds(seed, num_workers)[worker] for seed in seeds)


class SearchWorker:
  """One process's search (its K islands) in a Ray actor; `folder` (a run directory's
  workers/<w>) keeps its checkpoints."""

  def __init__(self, config: SearchConfig, index: int, pool, reports: Queue, folder: str | None,
               checkpoint_every: int = 0, checkpoint_every_secs: float = 0.0,
               num_workers: int = 1):
    self.config, self.index, self.pool, self.reports = config, index, pool, reports
    self.num_workers = num_workers
    self.folder = Path(folder) if folder else None
    self.every, self.every_secs = checkpoint_every, checkpoint_every_secs
    self.strategy = driver.make_strategy(config)
    self.collections = TaskCollections(config.search_tasks, config.select_tasks,
                                       config.final_tasks, config.randomize_task_seeds)
    self.state = None
    self.restarted = True  # until the first search: a new process may be a restarted one

  def search(self, experiment: int, task_seed: int | None, seeds: tuple[int, ...]
             ) -> SearchOutcome:
    """Runs (or continues from this worker's checkpoint) its search of experiment `experiment`
    (from 1) on T_search with `task_seed`; island k's generator and PRNG key from `seeds[k]`."""
    rngs = [np.random.default_rng(seed) for seed in seeds]
    current = ExperimentCheckpoint(task_seed, tuple(seeds))
    restarted_from = None
    if self.restarted and self.folder:
      self._describe()
      saved = self._checkpoint(experiment, seeds)
      if saved:
        current = saved.current
        for rng, state in zip(rngs, saved.rng_states, strict=True):
          rng.bit_generator.state = state
        restarted_from = saved.evaluations
    self.restarted = False
    saved_at = [restarted_from or 0, time.monotonic()]  # evaluations and time of the last save

    def on_progress(report: ProgressReport, _candidate) -> None:
      nonlocal restarted_from
      record = {"worker": self.index, "experiment": experiment, **report._asdict()}
      if restarted_from is not None:
        record["restarted_from"], restarted_from = restarted_from, None
      self.reports.put(record)

    def on_boundary(evaluations: int, snapshot: Callable[[], ExperimentCheckpoint]) -> None:
      due = ((self.every and evaluations >= saved_at[0] + self.every)
             or (self.every_secs and time.monotonic() >= saved_at[1] + self.every_secs))
      if due and self.folder:
        self._save(experiment, snapshot(), rngs)
        saved_at[:] = evaluations, time.monotonic()

    state, steps, fitness = driver.search_experiment(
        self.config, self.strategy, self.collections, rngs, current, _ignore, on_progress,
        on_boundary, exchange=self._exchange(experiment, rngs) if self._migrates() else None,
        experiment=experiment, process=(self.index, self.num_workers))
    self.state = state
    if self.folder:
      final = SearchProgress(state, steps, None, 0.0)
      self._save(experiment, current._replace(progress=final, evaluator=fitness.state()), rngs)
    return driver.search_outcome(self.strategy, state, steps, fitness)

  def population(self) -> list[str]:
    """The programs of the last search's populations, as text."""
    return [program.to_text() for program in self.state.programs]

  def pid(self) -> int:
    return os.getpid()

  def _migrates(self) -> bool:
    return bool(self.config.migration_every and self.config.strategy == "evolution")

  def _exchange(self, experiment: int, rngs) -> Callable:
    """`run_experiment`'s exchange: trades emigrants for immigrants through the pool."""
    size = self.config.migration_size

    def exchange(state, islands):
      programs, fitness = self.strategy.emigrants(state, rngs, size, islands)
      seed = int(rngs[islands[0]].integers(1, 2**31 - 1))
      got = ray.get(self.pool.trade.remote(self.index, experiment, programs, fitness.ravel(),
                                           fitness.size, seed))
      if got is None:
        return state
      return self.strategy.immigrate(state, got[0], got[1], islands)

    return exchange

  def _checkpoint(self, experiment: int, seeds: tuple[int, ...]) -> Snapshot | None:
    """This worker's saved search of `experiment` with these seeds, if any."""
    try:
      loaded = checkpoint.load_latest(self.folder / CHECKPOINTS, self.config)
    except checkpoint.CheckpointError:
      return None
    snapshot = loaded.snapshot
    if (loaded.extra.get("experiment") != experiment or snapshot.current is None
        or tuple(snapshot.current.key_seeds) != tuple(seeds)):
      return None
    return snapshot

  def _save(self, experiment: int, current: ExperimentCheckpoint, rngs) -> None:
    snapshot = Snapshot(current.key_seeds[0], [rng.bit_generator.state for rng in rngs], (),
                        current.progress.seconds, current)
    checkpoint.save(self.folder / CHECKPOINTS, snapshot, self.config,
                    {"experiment": experiment})

  def _describe(self) -> None:
    """worker.json: where this worker's process runs (rewritten by each restart)."""
    self.folder.mkdir(parents=True, exist_ok=True)
    files.write_atomic(self.folder / "worker.json", json.dumps(
        {"worker": self.index, "host": socket.gethostname(), "pid": os.getpid(),
         "started": time.time()}) + "\n")


def _ignore(*_) -> None:
  pass


def combined_report(records: list[dict], seconds: float) -> ProgressReport:
  """The statistics of all workers' populations (of equal size) from their latest reports."""
  means = np.array([r["mean"] for r in records])
  stdevs = np.array([r["stdev"] for r in records])
  mean = float(means.mean())
  second_moment = float(np.mean(stdevs * stdevs + means * means))
  hit_rates = [r["fec_hit_rate"] for r in records if r["fec_hit_rate"] is not None]
  return ProgressReport(
      sum(r["evaluations"] for r in records), seconds, mean,
      float(np.sqrt(max(0.0, second_moment - mean * mean))), max(r["best"] for r in records),
      float(np.mean(hit_rates)) if hit_rates else None,
      [b for r in records for b in r["island_best"]],
      [m for r in records for m in r["island_mean"]])


def combined_outcome(outcomes: list[SearchOutcome]) -> SearchOutcome:
  """All workers' candidates, one after another, and their summed counts."""
  return SearchOutcome(
      ProgramBatch(concatenate([o.candidates.packed for o in outcomes])),
      np.concatenate([o.search_fitness for o in outcomes]),
      sum(o.num_individuals for o in outcomes), sum(o.train_steps for o in outcomes),
      float(np.mean([o.hit_rate for o in outcomes])), sum(o.num_successes for o in outcomes))


class ClusterSearch:
  """`driver.ExperimentSearch` on Ray workers: starts them, hands out each experiment, prints
  the combined progress and logs each worker's reports with `log(record)`."""

  def __init__(self, config: SearchConfig, spec: ClusterSpec, write: Callable[[str], None],
               log: Callable[[dict], None] = _ignore, run_path: Path | None = None,
               checkpoint_every: int = 0, checkpoint_every_secs: float = 0.0):
    self.config, self.write, self.log = config, write, log
    self.pool = ray.remote(MigrationPool).options(
        num_cpus=0, max_restarts=-1, max_task_retries=-1).remote()
    self.reports = Queue()
    actor = ray.remote(SearchWorker).options(
        num_cpus=spec.worker_cpus, num_gpus=spec.worker_gpus, max_restarts=-1,
        max_task_retries=-1)
    self.workers = [
        actor.remote(config, index, self.pool, self.reports,
                     str(run_path / WORKERS / str(index)) if run_path else None,
                     checkpoint_every, checkpoint_every_secs, spec.num_workers)
        for index in range(spec.num_workers)]

  def __call__(self, experiment: int, current: ExperimentCheckpoint, _on_progress,
               _on_boundary) -> SearchOutcome:
    num_workers = len(self.workers)
    pending = {worker.search.remote(experiment, current.task_seed,
                                    worker_seeds(current.key_seeds, index, num_workers)): index
               for index, worker in enumerate(self.workers)}
    outcomes: list[SearchOutcome | None] = [None] * num_workers
    latest: dict[int, dict] = {}
    start, last_printed = time.monotonic(), None
    while pending:
      done, _ = ray.wait(list(pending), timeout=_POLL_SECS)
      for ref in done:
        outcomes[pending.pop(ref)] = ray.get(ref)
      for record in self._drain():
        self.log(record)
        latest[record["worker"]] = record
        report = combined_report([latest[w] for w in sorted(latest)], time.monotonic() - start)
        if last_printed is None or report.evaluations >= last_printed + self.config.progress_every:
          last_printed = report.evaluations
          self.write(driver.progress_line(report))
    return combined_outcome(outcomes)

  def _drain(self) -> list[dict]:
    try:
      return self.reports.get_nowait_batch(self.reports.qsize())
    except Empty:
      return []
