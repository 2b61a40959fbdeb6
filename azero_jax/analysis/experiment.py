"""Runs a comparison over seeds and strategies, with progress lines, into one results dict."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

from azero_jax import ops
from azero_jax.analysis import comparison as cmp
from azero_jax.analysis.report import STRATEGY_NAMES
from azero_jax.tasks.collections import TaskCollections


def format_seconds(seconds: float) -> str:
  """3s, 4m05s, 1h02m."""
  seconds = int(round(seconds))
  if seconds < 60:
    return f"{seconds}s"
  if seconds < 3600:
    return f"{seconds // 60}m{seconds % 60:02d}s"
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
  """Prints a line every `every` evaluations of a run, with the overall share done and an ETA.

  The share counts evaluations, or train steps when `steps` (a train-step budget); a finished
  run counts as its whole budget `per_run` (it may have stopped early at a success).
  """

  def __init__(self, per_run: int, runs: int, every: int, write: Callable[[str], None],
               steps: bool = False):
    self.per_run, self.total = per_run, per_run * runs
    self.every, self.write, self.steps = max(1, every), write, steps
    self.finished = 0  # budget of finished runs
    self.start = time.monotonic()
    self.label, self.last = "", 0

  def begin(self, label: str) -> None:
    self.label, self.last = label, 0

  def end(self) -> None:
    self.finished += self.per_run

  def __call__(self, point: cmp.Point) -> None:
    if point.evaluations - self.last < self.every:
      return
    self.last = point.evaluations
    done = self.finished + (point.train_steps if self.steps else point.evaluations)
    elapsed = time.monotonic() - self.start
    eta = elapsed * max(0, self.total - done) / max(1, done)
    self.write(f"{self.label}: {point.evaluations} evals, best {point.best:.6f}, mean "
               f"{point.mean:.6f} | all runs {min(100, 100 * done / self.total):.0f}%, elapsed "
               f"{format_seconds(elapsed)}, ETA {format_seconds(eta)}")


def describe(comparison: cmp.Comparison, collections: TaskCollections, seeds: Sequence[int],
             strategies: Sequence[str], reference_name: str | None) -> dict:
  """The setting in words and numbers, for results.json and the table's header."""
  config = comparison.config
  op_names = lambda ids: [ops.OPS[i].name for i in ids]
  return {
      "search_tasks": collections.search.to_string(),
      "final_tasks": collections.final.to_string(),
      "randomize_task_seeds": collections.randomize,
      "memory": list(dataclasses.astuple(config.memory)),
      "setup_ops": op_names(config.op_lists[0]),
      "predict_ops": op_names(config.op_lists[1]),
      "learn_ops": op_names(config.op_lists[2]),
      "init_sizes": list(config.init_sizes),
      "initial_population": config.init_model.name,
      "learn_only": comparison.learn_only,
      "reference": reference_name,
      "mutation_types": [m.name for m in config.mutation_types],
      "population_size": config.population_size,
      "tournament_size": config.tournament_size,
      "mutate_prob": config.mutate_prob,
      "batch_size": config.batch_size,
      "fec": config.fec is not None,
      "random_search_fec": comparison.random_search_fec and config.fec is not None,
      "evaluations_per_run": comparison.evaluations,
      "max_train_steps": comparison.max_train_steps,
      "stop_at_success": comparison.stop_at_success,
      "repeat_experiments": comparison.repeat_experiments,
      "experiment_train_steps": comparison.config.max_train_steps,
      "threshold": comparison.threshold,
      "seeds": list(seeds),
      "strategies": list(strategies),
  }


def run_record(run: cmp.SearchRun, final_fitness: float) -> dict:
  """One run as JSON-ready data."""
  return {
      "strategy": run.strategy, "seed": run.seed, "evaluations": run.evaluations,
      "seconds": run.seconds, "best_fitness": run.best_fitness, "final_fitness": final_fitness,
      "num_successes": run.num_successes, "first_success": run.first_success,
      "first_success_seconds": run.first_success_seconds, "train_steps": run.train_steps,
      "fec_hit_rate": run.hit_rate, "best_program": run.best_program.to_text(),
      "history": [list(point) for point in run.history],
  }


def run_comparison(comparison: cmp.Comparison, collections: TaskCollections,
                   seeds: Sequence[int], strategies: Sequence[str] = cmp.STRATEGIES, *,
                   reference_name: str | None = None, progress_every: int = 10000,
                   write: Callable[[str], None] = print) -> dict:
  """Every strategy on every seed (interleaved), summarized; the runs' best programs are also
  evaluated on the final tasks, and the reference (if any) on each seed's T_search."""
  start = time.monotonic()
  final_tasks = collections.final_tasks()
  tasks = {seed: collections.search_tasks(seed if collections.randomize else None)
           for seed in seeds}
  for strategy in strategies:
    cmp.warm_up(comparison, strategy, tasks[seeds[0]])
  per_run = comparison.max_train_steps or comparison.evaluations
  progress = Progress(per_run, len(seeds) * len(strategies), progress_every, write,
                      steps=comparison.max_train_steps is not None)
  runs: dict[str, list[cmp.SearchRun]] = {strategy: [] for strategy in strategies}
  records = []
  for index, seed in enumerate(seeds):
    for strategy in strategies:
      progress.begin(f"{STRATEGY_NAMES[strategy]}, seed {seed} ({index + 1}/{len(seeds)})")
      run = cmp.run_search(comparison, strategy, seed, tasks[seed], report=progress)
      progress.end()
      final = cmp.mean_fitness(comparison, run.best_program, final_tasks, seed)
      write(f"{STRATEGY_NAMES[strategy]}, seed {seed}: best fitness {run.best_fitness:.6f}, "
            f"final {final:.6f}, programs beating {comparison.threshold:g}: "
            f"{run.num_successes}, first after {run.first_success or '-'} evals, "
            f"{format_seconds(run.seconds)}")
      runs[strategy].append(run)
      records.append(run_record(run, final))
  results = {
      "setting": describe(comparison, collections, seeds, strategies, reference_name),
      "strategies": {s: cmp.summarize(r) for s, r in runs.items()},
      "runs": records,
  }
  for strategy, summary in results["strategies"].items():
    finals = [r["final_fitness"] for r in records if r["strategy"] == strategy]
    summary["final_fitness_of_best_median"] = cmp.median(finals)
    summary["final_fitness_of_best_max"] = max(finals)
  if set(strategies) == set(cmp.STRATEGIES):
    results["ratio"] = cmp.evolution_ratio(results["strategies"]["evolution"],
                                           results["strategies"]["random"])
  if comparison.reference is not None:
    results["reference"] = {
        "name": reference_name,
        "search_fitness": [cmp.mean_fitness(comparison, comparison.reference, tasks[s], s)
                           for s in seeds],
        "final_fitness": cmp.mean_fitness(comparison, comparison.reference, final_tasks, 0),
        "program": comparison.reference.to_text()}
  results["seconds"] = time.monotonic() - start
  return results
