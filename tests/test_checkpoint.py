"""Checkpoints (azero_jax/search/checkpoint.py): round trips, atomic writes, fallback, refusals."""

import dataclasses

import numpy as np
import pytest
from search_runs import CONFIGS, masked, search_config

from azero_jax.program import Program
from azero_jax.search import checkpoint
from azero_jax.search.driver import RunHooks, run

# A search of a few seconds: 40 programs, batches of 20, a progress report every sweep.
SMALL = ("--population_size=40", "--batch_size=20", "--progress_every=40",
         "--max_train_steps=200000", "--random_seed=7",
         "--select_task=linear:features=4,num_tasks=2,num_train_examples=50,num_valid_examples=50",
         "--final_task=linear:features=4,num_tasks=2,num_train_examples=50,num_valid_examples=50")


def config(*overrides):
  return search_config(f"--flagfile={CONFIGS}/integration_linear.flags", *SMALL, *overrides)


class Capture(RunHooks):
  """Takes every snapshot the driver offers."""

  def __init__(self):
    self.snapshots = []

  def boundary(self, evaluations, snapshot, force):
    self.snapshots.append(snapshot())
    assert self.snapshots[-1].evaluations == evaluations


def captured_run(config_):
  lines, hooks = [], Capture()
  result = run(config_, write=lines.append, hooks=hooks)
  return result, lines, hooks.snapshots


@pytest.fixture(scope="module")
def evolution():
  config_ = config("--max_experiments=2", "--randomize_task_seeds")
  return (config_, *captured_run(config_))


def assert_same(a, b, where="snapshot"):
  """Equal values of equal types, arrays by dtype and content, down to every leaf."""
  if isinstance(a, np.ndarray):
    assert isinstance(b, np.ndarray) and a.dtype == b.dtype, where
    np.testing.assert_array_equal(a, b, err_msg=where)
    return
  assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
  if dataclasses.is_dataclass(a) and not isinstance(a, Program):
    for field in dataclasses.fields(a):
      assert_same(getattr(a, field.name), getattr(b, field.name), f"{where}.{field.name}")
  elif isinstance(a, dict):
    assert a.keys() == b.keys(), where
    for key in a:
      assert_same(a[key], b[key], f"{where}[{key!r}]")
  elif isinstance(a, (tuple, list)):
    assert len(a) == len(b), where
    for index, (x, y) in enumerate(zip(a, b)):
      assert_same(x, y, f"{where}[{index}]")
  else:
    assert a == b, f"{where}: {a!r} != {b!r}"


def round_trip(snapshot, config_):
  return checkpoint.decode(checkpoint.encode(snapshot, config_, {"progress_lines": 3}))


def test_every_piece_of_the_state_survives_a_round_trip(evolution):
  config_, _, _, snapshots = evolution
  mid_search = [s for s in snapshots if s.current is not None]
  between = [s for s in snapshots if s.current is None]
  assert len(between) == 2 and mid_search[-1].experiments  # the second experiment is under way
  for snapshot in (mid_search[0], mid_search[-1], *between):
    restored, meta = round_trip(snapshot, config_)
    assert_same(snapshot, restored)
    assert meta["extra"] == {"progress_lines": 3}
    assert meta["evaluations"] == snapshot.evaluations
  caches = mid_search[-1].current.evaluator["caches"]
  assert len(caches) == 1  # one island, one cache
  assert len(caches[0].keys) > 100 and caches[0].hits > 0  # a real FEC cache was saved


def test_random_search_state_survives_a_round_trip():
  config_ = config("--strategy=random", "--max_train_steps=40000")
  _, _, snapshots = captured_run(config_)
  snapshot = next(s for s in snapshots if s.current is not None)
  assert snapshot.current.progress.state.best_programs is not None
  assert_same(snapshot, round_trip(snapshot, config_)[0])


def test_resuming_from_any_snapshot_prints_the_same_lines(evolution):
  config_, result, lines, snapshots = evolution
  for snapshot in (snapshots[2], next(s for s in snapshots if s.current is None)):
    resumed_lines = []
    resumed = run(config_, write=resumed_lines.append, resume=round_trip(snapshot, config_)[0])
    assert resumed_lines[0] == lines[0]  # the seed
    tail = masked(resumed_lines[3:])  # after the seed, device, "Resuming" / "Running"
    assert len(tail) > 5 and masked(lines)[-len(tail):] == tail
    assert resumed.best_program == result.best_program
    assert resumed.final_fitness == result.final_fitness


def test_only_the_newest_two_are_kept(tmp_path, evolution):
  config_, _, _, snapshots = evolution
  paths = [checkpoint.save(tmp_path, s, config_) for s in snapshots[:3]]
  assert [p.name for p in paths] == ["ckpt-000001.npz", "ckpt-000002.npz", "ckpt-000003.npz"]
  assert checkpoint.checkpoints(tmp_path) == paths[1:]
  assert not list(tmp_path.glob(".*"))


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(tmp_path, evolution, damage):
  config_, _, _, snapshots = evolution
  older = checkpoint.save(tmp_path, snapshots[1], config_, {"progress_lines": 1})
  newest = checkpoint.save(tmp_path, snapshots[2], config_, {"progress_lines": 2})
  data = newest.read_bytes()
  if damage == "truncate":
    data = data[:len(data) // 2]
  elif damage == "flip":
    data = data[:len(data) // 2] + bytes(b ^ 0xFF for b in data[len(data) // 2:][:64]) + \
        data[len(data) // 2 + 64:]
  else:
    data = b""
  newest.write_bytes(data)
  warnings = []
  loaded = checkpoint.load_latest(tmp_path, config_, warn=warnings.append)
  assert loaded.path == older and loaded.extra == {"progress_lines": 1}
  assert_same(loaded.snapshot, snapshots[1])
  assert len(warnings) == 1 and warnings[0].startswith(f"warning: checkpoint {newest} ")
  older.write_bytes(b"garbage")
  with pytest.raises(checkpoint.CheckpointError, match="no readable checkpoint"):
    checkpoint.load_latest(tmp_path, config_, warn=warnings.append)


def test_a_checkpoint_of_other_settings_or_format_is_refused(tmp_path, evolution):
  config_, _, _, snapshots = evolution
  checkpoint.save(tmp_path, snapshots[1], config_)
  with pytest.raises(checkpoint.CheckpointError,
                     match=r"other settings: population_size \(checkpoint: 40, now: 80\)"):
    checkpoint.load_latest(tmp_path, config("--max_experiments=2", "--population_size=80"))
  arrays = checkpoint.encode(snapshots[1], config_)
  arrays["meta"] = np.frombuffer(
      arrays["meta"].tobytes().replace(f'"format_version": {checkpoint.FORMAT_VERSION}'.encode(),
                                      b'"format_version": 99'), np.uint8)
  np.savez(tmp_path / "ckpt-000009.npz", **arrays)
  with pytest.raises(checkpoint.CheckpointError, match="version 99, expected"):
    checkpoint.load_latest(tmp_path, config_)
  with pytest.raises(checkpoint.CheckpointError, match="no checkpoint to resume"):
    checkpoint.load_latest(tmp_path / "missing", config_)
