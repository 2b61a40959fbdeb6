"""Checkpoints of a search run: one .npz file each, written atomically, the newest two kept.

A checkpoint holds a driver `Snapshot` (the RNG state, the finished experiments, and the experiment
under way: its seeds, the strategy's state, train steps, evaluator counters and FEC cache in LRU
order) and the run's settings, so that a resumed run continues bit for bit. Nothing is pickled:
programs are rows of instruction fields, fitness float64, FEC keys their bytes; the scalars are one
JSON document stored as the bytes of the array `meta`. `ckpt-<n>.npz` numbers a run's checkpoints.

Arrays (K islands; N programs in a group; C the FEC caches, one or one per island):
  meta                                 uint8, the JSON document (see `encode`)
  {population,best,experiments}.<function>.table   [N, W, 8] float64 packed instructions
  {population,best,experiments}.<function>.length  [N] sizes of Setup, Predict, Learn
  population.fitness, population.age_order   [K, P] (evolution state; arrivals and counts in meta)
  population.hurdle_fitness            [K, P] (evolution state with hurdles only)
  best.fitness, recent_fitness, num_successes   [K], [K, <= P], [K] (random search state)
  experiments.<field>                  one per ExperimentResult field after the candidate
  fec<c>.keys, fec<c>.fitness, fec<c>.counts   cache c (uint64 keys), least recent first
The per-island generator states are in meta (`rng_states`).
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

import azero_jax
from azero_jax import files
from azero_jax.program import (
  COMPONENTS,
  PackedComponent,
  PackedPopulation,
  Program,
  ProgramBatch,
)
from azero_jax.search.driver import (
  ExperimentCheckpoint,
  ExperimentResult,
  SearchConfig,
  SearchProgress,
  Snapshot,
)
from azero_jax.search.evolution import EvolutionState
from azero_jax.search.fec import FecState
from azero_jax.search.random_search import RandomSearchState

FORMAT = "azero_jax search checkpoint"
FORMAT_VERSION = 5  # 2: programs as packed tables; FEC keys as float64 rows; 3: islands;
# 4: FEC keys as uint64; 5: FEC keys hashed in one pass over the words
KEEP = 2  # checkpoints kept: the newest and one to fall back to
_NAME = re.compile(r"ckpt-(\d+)\.npz")
_UNREADABLE = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile)


class CheckpointError(ValueError):
  """No checkpoint can be resumed: none readable, another format, or other settings."""


class Loaded(NamedTuple):
  snapshot: Snapshot
  extra: dict  # what the saver added (the run directory's own counters)
  path: Path


def config_record(config: SearchConfig) -> dict:
  """The settings as JSON values (enums by name): what a checkpoint must match to resume."""
  return json.loads(json.dumps(dataclasses.asdict(config), default=lambda value: value.name))


def _put_programs(arrays: dict, name: str, programs: Sequence[Program]) -> None:
  """Programs as their packed tables (float64: exact for ints, activation and float32 constants;
  a ProgramBatch keeps its widths)."""
  for part, component in zip(COMPONENTS, ProgramBatch.of(programs).packed):
    arrays[f"{name}.{part}.table"], arrays[f"{name}.{part}.length"] = component


def _get_programs(arrays: dict, name: str) -> ProgramBatch:
  return ProgramBatch(PackedPopulation(*(
      PackedComponent(arrays[f"{name}.{part}.table"], arrays[f"{name}.{part}.length"])
      for part in COMPONENTS)))


def _put_strategy(arrays: dict, state) -> dict:
  counts = {"num_individuals": state.num_individuals.tolist()}
  if isinstance(state, EvolutionState):
    _put_programs(arrays, "population", state.programs)
    arrays["population.fitness"], arrays["population.age_order"] = state.fitness, state.age_order
    if state.hurdle_fitness is not None:
      arrays["population.hurdle_fitness"] = state.hurdle_fitness
    return {"kind": "evolution", **counts, "arrivals": state.arrivals.tolist()}
  _put_programs(arrays, "best", [] if state.best_programs is None else state.best_programs)
  arrays["best.fitness"], arrays["recent_fitness"] = state.best_fitness, state.recent_fitness
  arrays["num_successes"] = state.num_successes
  return {"kind": "random", **counts}


def _get_strategy(arrays: dict, meta: dict):
  counts = np.array(meta["num_individuals"], np.int64)
  if meta["kind"] == "evolution":
    return EvolutionState(_get_programs(arrays, "population"), arrays["population.fitness"],
                          arrays["population.age_order"], counts,
                          np.array(meta["arrivals"], np.int64),
                          arrays.get("population.hurdle_fitness"))
  best = _get_programs(arrays, "best")
  return RandomSearchState(best if len(best) else None, arrays["best.fitness"],
                           arrays["num_successes"], arrays["recent_fitness"], counts)


def _put_evaluator(arrays: dict, state: dict) -> dict:
  for index, cache in enumerate(state["caches"]):
    name = f"fec{index}"
    arrays[f"{name}.keys"] = np.asarray(cache.keys, np.uint64)
    arrays[f"{name}.fitness"], arrays[f"{name}.counts"] = cache.fitness, cache.counts
  counters = {k: v for k, v in state.items() if k != "caches"}
  return {**counters, "caches": [[cache.hits, cache.misses] for cache in state["caches"]]}


def _get_evaluator(arrays: dict, meta: dict) -> dict:
  caches = []
  for index, counters in enumerate(meta["caches"]):
    name = f"fec{index}"
    caches.append(FecState(arrays[f"{name}.keys"], arrays[f"{name}.fitness"],
                           arrays[f"{name}.counts"], *counters))
  return {**{k: v for k, v in meta.items() if k != "caches"}, "caches": caches}


def encode(snapshot: Snapshot, config: SearchConfig, extra: dict | None = None) -> dict:
  """The arrays of a checkpoint file (`meta` holds the JSON document)."""
  arrays: dict[str, np.ndarray] = {}
  experiments = snapshot.experiments
  _put_programs(arrays, "experiments", [e.candidate for e in experiments])
  for field in ExperimentResult._fields[1:]:
    arrays[f"experiments.{field}"] = np.array([getattr(e, field) for e in experiments])
  current = None
  if snapshot.current is not None:
    progress = snapshot.current.progress
    current = {"task_seed": snapshot.current.task_seed,
               "key_seeds": list(snapshot.current.key_seeds),
               "train_steps": np.asarray(progress.train_steps).tolist(),
               "last_printed": progress.last_printed,
               "seconds": progress.seconds, "strategy": _put_strategy(arrays, progress.state),
               "evaluator": _put_evaluator(arrays, snapshot.current.evaluator)}
  meta = {"format": FORMAT, "format_version": FORMAT_VERSION,
          "library_version": azero_jax.__version__, "config": config_record(config),
          "seed": snapshot.seed, "rng_states": snapshot.rng_states, "seconds": snapshot.seconds,
          "evaluations": snapshot.evaluations, "experiments": len(experiments),
          "current": current, "extra": extra or {}}
  arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
  return arrays


def decode(arrays: dict) -> tuple[Snapshot, dict]:
  """The snapshot and the JSON document of `encode`'s arrays."""
  meta = json.loads(arrays["meta"].tobytes())
  candidates = _get_programs(arrays, "experiments")
  fields = [arrays[f"experiments.{field}"].tolist() for field in ExperimentResult._fields[1:]]
  experiments = tuple(ExperimentResult(program, *values)
                      for program, *values in zip(candidates, *fields))
  current = meta["current"]
  if current is not None:
    progress = SearchProgress(_get_strategy(arrays, current["strategy"]),
                              np.array(current["train_steps"], np.int64), current["last_printed"],
                              current["seconds"])
    current = ExperimentCheckpoint(current["task_seed"], tuple(current["key_seeds"]), progress,
                                   _get_evaluator(arrays, current["evaluator"]))
  return Snapshot(meta["seed"], meta["rng_states"], experiments, meta["seconds"], current), meta


def checkpoints(directory: Path) -> list[Path]:
  """The checkpoint files in `directory`, oldest first."""
  numbered = [(int(match.group(1)), path) for path in Path(directory).glob("ckpt-*.npz")
              if (match := _NAME.fullmatch(path.name))]
  return [path for _, path in sorted(numbered)]


def save(directory: Path, snapshot: Snapshot, config: SearchConfig,
         extra: dict | None = None) -> Path:
  """Writes the next checkpoint atomically and deletes all but the newest KEEP."""
  directory = Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  existing = checkpoints(directory)
  number = int(_NAME.fullmatch(existing[-1].name).group(1)) + 1 if existing else 1
  path = directory / f"ckpt-{number:06d}.npz"
  arrays = encode(snapshot, config, extra)
  files.write_atomic(path, lambda file: np.savez(file, **arrays))
  for old in checkpoints(directory)[:-KEEP]:
    old.unlink()
  return path


def _read(path: Path) -> tuple[dict, dict]:
  """Every array of a checkpoint file (reading each checks its CRC) and the JSON document."""
  with np.load(path, allow_pickle=False) as data:
    arrays = {key: data[key] for key in data.files}
  return arrays, json.loads(arrays["meta"].tobytes())


def _check(meta: dict, config: SearchConfig, path: Path) -> None:
  if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
    raise CheckpointError(f"{path} is not a checkpoint this version reads (format "
                          f"{meta.get('format')!r} version {meta.get('format_version')}, "
                          f"expected {FORMAT!r} version {FORMAT_VERSION})")
  saved, now = meta["config"], config_record(config)
  changed = [f"{key} (checkpoint: {saved.get(key)!r}, now: {now.get(key)!r})"
             for key in sorted(saved.keys() | now.keys()) if saved.get(key) != now.get(key)]
  if changed:
    raise CheckpointError(f"{path} was made with other settings: {'; '.join(changed)}")


def _warn(message: str) -> None:
  print(message, file=sys.stderr)


def load_latest(directory: Path, config: SearchConfig,
                warn: Callable[[str], None] = _warn) -> Loaded:
  """The newest checkpoint that reads cleanly, warning (one line each) about newer ones that do
  not. Raises CheckpointError if none reads, or if it was made with other settings."""
  found = checkpoints(directory)
  if not found:
    raise CheckpointError(f"no checkpoint to resume in {directory}")
  for path in reversed(found):
    try:
      arrays, meta = _read(path)
    except _UNREADABLE as error:
      warn(f"warning: checkpoint {path} is unreadable ({error}); trying the one before it")
      continue
    _check(meta, config, path)
    snapshot, meta = decode(arrays)
    return Loaded(snapshot, meta["extra"], path)
  raise CheckpointError(f"no readable checkpoint in {directory}")
