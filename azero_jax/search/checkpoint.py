"""Checkpoints of a search run: one .npz file each, written atomically, the newest two kept.

A checkpoint holds a driver `Snapshot` (the RNG state, the finished experiments, and the experiment
under way: its seeds, the strategy's state, train steps, evaluator counters and FEC cache in LRU
order) and the run's settings, so that a resumed run continues bit for bit. Nothing is pickled:
programs are rows of instruction fields, fitness float64, FEC keys their bytes; the scalars are one
JSON document stored as the bytes of the array `meta`. `ckpt-<n>.npz` numbers a run's checkpoints.

Arrays (P programs in a group, I their instructions, K FEC entries):
  meta                                 uint8, the JSON document (see `encode`)
  {population,best,experiments}.instructions   [I, 8] float64: op, in1, in2, out, activation, f0-f2
  {population,best,experiments}.sizes          [P, 3] int64: Setup, Predict, Learn sizes
  population.fitness, best.fitness, recent_fitness   float64 (evolution / random search state)
  experiments.<field>                  one per ExperimentResult field after the candidate
  fec.keys, fec.key_lengths, fec.fitness, fec.counts   the cache, least recently used first
"""

from __future__ import annotations

import dataclasses
import itertools
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
FORMAT_VERSION = 2  # 2: programs as packed tables; FEC keys as float64 rows
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
  if isinstance(state, EvolutionState):
    _put_programs(arrays, "population", state.programs)
    arrays["population.fitness"] = state.fitness
    return {"kind": "evolution", "num_individuals": state.num_individuals}
  _put_programs(arrays, "best", [] if state.best_program is None else [state.best_program])
  arrays["best.fitness"] = np.array([state.best_fitness], dtype=np.float64)
  arrays["recent_fitness"] = state.recent_fitness
  return {"kind": "random", "num_individuals": state.num_individuals,
          "num_successes": state.num_successes}


def _get_strategy(arrays: dict, meta: dict):
  if meta["kind"] == "evolution":
    return EvolutionState(_get_programs(arrays, "population"), arrays["population.fitness"],
                          meta["num_individuals"])
  best = _get_programs(arrays, "best")
  return RandomSearchState(best[0] if best else None, float(arrays["best.fitness"][0]),
                           meta["num_successes"], arrays["recent_fitness"],
                           meta["num_individuals"])


def _put_evaluator(arrays: dict, state: dict) -> dict:
  cache: FecState | None = state["cache"]
  if cache is not None:
    arrays["fec.keys"] = np.frombuffer(b"".join(cache.keys), dtype=np.uint8)
    arrays["fec.key_lengths"] = np.array([len(key) for key in cache.keys], dtype=np.int64)
    arrays["fec.fitness"], arrays["fec.counts"] = cache.fitness, cache.counts
  counters = {k: v for k, v in state.items() if k != "cache"}
  return {**counters, "cache": None if cache is None else [cache.hits, cache.misses]}


def _get_evaluator(arrays: dict, meta: dict) -> dict:
  cache = None
  if meta["cache"] is not None:
    flat, lengths = arrays["fec.keys"].tobytes(), arrays["fec.key_lengths"].tolist()
    ends = itertools.accumulate(lengths)
    keys = [flat[end - length:end] for end, length in zip(ends, lengths)]
    cache = FecState(keys, arrays["fec.fitness"], arrays["fec.counts"], *meta["cache"])
  return {**{k: v for k, v in meta.items() if k != "cache"}, "cache": cache}


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
    current = {"task_seed": snapshot.current.task_seed, "key_seed": snapshot.current.key_seed,
               "train_steps": progress.train_steps, "last_printed": progress.last_printed,
               "seconds": progress.seconds, "strategy": _put_strategy(arrays, progress.state),
               "evaluator": _put_evaluator(arrays, snapshot.current.evaluator)}
  meta = {"format": FORMAT, "format_version": FORMAT_VERSION,
          "library_version": azero_jax.__version__, "config": config_record(config),
          "seed": snapshot.seed, "rng_state": snapshot.rng_state, "seconds": snapshot.seconds,
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
    progress = SearchProgress(_get_strategy(arrays, current["strategy"]), current["train_steps"],
                              current["last_printed"], current["seconds"])
    current = ExperimentCheckpoint(current["task_seed"], current["key_seed"], progress,
                                   _get_evaluator(arrays, current["evaluator"]))
  return Snapshot(meta["seed"], meta["rng_state"], experiments, meta["seconds"], current), meta


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
