"""The run directory (azero_jax/run_dir.py) and the launcher's --run_dir, --resume and signals."""

import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
from absl import flags

from azero_jax import run_dir
from azero_jax.program import Program
from azero_jax.search import checkpoint
from azero_jax.search.driver import run
from experiments import run_search

ROOT = pathlib.Path(__file__).resolve().parent.parent
# About 13,000 individuals in ~5 s of search after ~2 s of compiling.
FLAGS = (f"--flagfile={ROOT}/experiments/configs/integration_linear.flags",
         "--population_size=40", "--batch_size=20", "--progress_every=400",
         "--max_train_steps=4000000", "--random_seed=7",
         "--select_task=linear:features=4,num_tasks=2,num_train_examples=50,num_valid_examples=50",
         "--final_task=linear:features=4,num_tasks=2,num_train_examples=50,num_valid_examples=50")


def parse(*args):
  fv = flags.FlagValues()
  run_search.define_flags(fv)
  fv(["run_search", *FLAGS, *args])
  return fv


def directory(*args):
  fv = parse(*args)
  return run_dir.from_flags(run_search.config_from_flags(fv), fv)


def test_flags_are_checked_before_anything_is_written(tmp_path):
  (tmp_path / "old").mkdir()
  (tmp_path / "old" / "notes.txt").write_text("mine")
  with pytest.raises(ValueError, match="is not empty: pass --resume .* or --overwrite"):
    directory(f"--run_dir={tmp_path / 'old'}")
  with pytest.raises(ValueError, match="--resume and --overwrite exclude each other"):
    directory(f"--run_dir={tmp_path / 'old'}", "--resume", "--overwrite")
  with pytest.raises(ValueError, match="--resume: no checkpoint in .*nothing to resume"):
    directory(f"--run_dir={tmp_path / 'old'}", "--resume")
  with pytest.raises(ValueError, match="--resume needs --run_dir"):
    directory("--resume")
  with pytest.raises(ValueError, match="--checkpoint_every_secs must be >= 0"):
    directory(f"--run_dir={tmp_path / 'new'}", "--checkpoint_every_secs=-1")
  (tmp_path / "file").write_text("")
  with pytest.raises(ValueError, match="is not a directory"):
    directory(f"--run_dir={tmp_path / 'file'}")
  assert directory("--run_dir=") is None  # print only
  with pytest.raises(ValueError, match="--checkpoint_every needs --run_dir"):
    directory("--run_dir=", "--checkpoint_every=10")
  default = directory().path  # a fresh folder under runs/, not created yet
  assert default.parent == pathlib.Path("runs") and not default.exists()
  assert directory(f"--run_dir={tmp_path / 'new' / 'deeper'}") is not None
  assert sorted(p.name for p in tmp_path.rglob("*")) == ["file", "notes.txt", "old"]


def test_a_launch_with_a_bad_flag_creates_no_run_directory(tmp_path):
  result = subprocess.run([sys.executable, "-m", "experiments.run_search", *FLAGS,
                           f"--run_dir={tmp_path / 'run'}", "--tournament_size=0"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode != 0 and "tournament_size must be >= 1" in result.stderr
  assert not (tmp_path / "run").exists()


def test_a_run_writes_its_files_and_overwrite_replaces_only_them(tmp_path):
  path = tmp_path / "run"
  lines = []
  hooks = directory(f"--run_dir={path}", "--checkpoint_every_secs=0", "--max_train_steps=200000")
  result = run(hooks.config, write=lines.append, hooks=hooks)
  assert sorted(p.name for p in path.iterdir()) == sorted([*run_dir.FILES, "checkpoints"])
  assert [p.name for p in (path / "checkpoints").iterdir()] == ["ckpt-000001.npz"]  # the end
  flag_file = (path / "flags.txt").read_text()
  assert "--population_size=40" in flag_file and "--resume" not in flag_file
  fv = flags.FlagValues()
  run_search.define_flags(fv)
  fv(["run_search", f"--flagfile={path / 'flags.txt'}"])
  assert run_search.config_from_flags(fv) == hooks.config
  facts = json.loads((path / "run.json").read_text())
  assert facts["seed"] == 7 and facts["device"].startswith("device: ")
  assert facts["library_version"] and facts["command"]
  progress = [json.loads(line) for line in (path / "progress.jsonl").read_text().splitlines()]
  printed = [line for line in lines if line.startswith("indivs=")]
  assert len(progress) == len(printed) > 1
  assert list(progress[0]) == ["experiment", "evaluations", "elapsed_secs", "mean", "stdev",
                               "best", "fec_hit_rate", "island_best", "island_mean"]
  assert all(r["island_best"] == [r["best"]] and r["island_mean"] == [r["mean"]]
             for r in progress)  # one island
  assert printed[-1].startswith(f"indivs={progress[-1]['evaluations']}, ")
  assert f"best fit={progress[-1]['best']:.6f}, " in printed[-1]
  best_text = (path / "best_program.txt").read_text()
  assert Program.from_text(best_text).to_text() == result.best_program.to_text()  # as printed
  final = json.loads((path / "result.json").read_text())
  assert final["final_fitness"] == result.final_fitness and final["seed"] == 7
  assert final["program"] == result.best_program.to_text()
  logged = (path / "progress.jsonl").read_text()
  with open(path / "progress.jsonl", "a") as file:  # lines after the checkpoint, one cut short
    file.write('{"experiment": 2, "evaluations": 40}\n{"experiment": 2, "evalu')
  resumed = directory(f"--run_dir={path}", "--max_train_steps=200000", "--resume")
  resumed.started(7)
  assert (path / "progress.jsonl").read_text() == logged
  assert len(json.loads((path / "run.json").read_text())["resumes"]) == 1
  resumed.close()
  (path / "notes.txt").write_text("mine")
  hooks = directory(f"--run_dir={path}", "--overwrite")
  hooks.started(7)
  assert sorted(p.name for p in path.iterdir()) == [
      "flags.txt", "lock", "notes.txt", "progress.jsonl", "run.json"]
  hooks.close()
  assert not (path / "lock").exists()


def in_use(path, pid=None):
  return re.escape(f"--run_dir: {path} is in use by pid {pid or os.getpid()} on host "
                   f"{socket.gethostname()}")


def test_one_run_per_directory(tmp_path, capsys):
  path = tmp_path / "run"
  first, second = directory(f"--run_dir={path}"), directory(f"--run_dir={path}")
  first.started(7)
  assert json.loads((path / "lock").read_text()) == {"pid": os.getpid(),
                                                      "host": socket.gethostname()}
  written = {p: p.read_bytes() for p in path.rglob("*")}
  with pytest.raises(run_dir.DirectoryInUse, match=f"^{in_use(path)}$"):
    second.started(7)  # it passed its checks before the first run started: refused here
  for args in (["--resume"], ["--overwrite"], []):
    with pytest.raises(run_dir.DirectoryInUse, match=f"^{in_use(path)}$"):
      directory(f"--run_dir={path}", *args)
  assert {p: p.read_bytes() for p in path.rglob("*")} == written
  first.close()
  capsys.readouterr()
  directory(f"--run_dir={path}", "--overwrite").started(7)  # free again: no warning
  assert "warning" not in capsys.readouterr().err


def test_a_lock_left_by_an_ended_run_is_taken_over(tmp_path, capsys):
  path = tmp_path / "run"
  path.mkdir()
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys; from azero_jax import run_dir; "
       "lock = run_dir.RunLock(sys.argv[1]); lock.acquire(); print(flush=True); sys.stdin.read()",
       str(path)],
      cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
  holder.stdout.readline()  # it holds the lock
  with pytest.raises(run_dir.DirectoryInUse, match=in_use(path, holder.pid)):
    directory(f"--run_dir={path}")
  holder.kill()
  holder.wait()
  hooks = directory(f"--run_dir={path}")  # the lock file is still there, its flock is not
  hooks.started(7)
  warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
  assert warnings == [f"warning: --run_dir: {path} was locked by pid {holder.pid} on host "
                      f"{socket.gethostname()}, which has ended; taking the lock over"]
  assert json.loads((path / "lock").read_text())["pid"] == os.getpid()
  hooks.close()


# End to end: the launcher killed, stopped by a signal and resumed, against one whole run.


def launch(path, *args):
  """The launcher on `path`, with a checkpoint every 1,000 individuals unless `args` say."""
  return subprocess.Popen(
      [sys.executable, "-m", "experiments.run_search", *FLAGS, f"--run_dir={path}",
       "--checkpoint_every=1000", *args],
      cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until(condition, process, timeout=120):
  deadline = time.monotonic() + timeout
  while not condition():
    if process.poll() is not None:
      pytest.fail(f"the run ended before the test could interrupt it: {process.communicate()[1]}")
    assert time.monotonic() < deadline, "timed out"
    time.sleep(0.02)


def complete(path, *args):
  process = launch(path, *args)
  stdout, stderr = process.communicate(timeout=300)
  assert process.returncode == 0, stderr
  return stdout


def without_elapsed(text):
  return re.sub(r'elapsed_secs(=|": )[\d.]+', "elapsed_secs", text)


def progress_lines(stdout):
  return [without_elapsed(line) for line in stdout.splitlines() if line.startswith("indivs=")]


def result_without_seconds(path):
  result = json.loads((path / "result.json").read_text())
  for record in (result, *result["experiments"]):
    del record["seconds"]
  return result


def assert_same_run(path, whole):
  """The resumed run's files equal the uninterrupted run's, elapsed time aside."""
  for name in ("progress.jsonl", "best_program.txt"):
    assert without_elapsed((path / name).read_text()) == without_elapsed((whole / name).read_text())
  assert result_without_seconds(path) == result_without_seconds(whole)


@pytest.fixture(scope="module")
def wholes(tmp_path_factory):
  """The uninterrupted run with some extra flags: (its directory, its stdout), made once."""
  runs = {}

  def whole(*args):
    if args not in runs:
      path = tmp_path_factory.mktemp("whole") / "run"
      runs[args] = path, complete(path, *args)
    return runs[args]
  return whole


# Three islands on half the budget: ~20,000 evaluations; the kill at 3,000 leaves most to run.
ISLANDS = ("--num_islands=3", "--migration_every=200", "--migration_size=5",
           "--max_train_steps=2000000")


@pytest.mark.parametrize("args", [(), ISLANDS], ids=["one island", "islands with migration"])
def test_a_killed_run_resumes_to_the_uninterrupted_result(tmp_path, wholes, args):
  whole_path, whole_stdout = wholes(*args)
  path = tmp_path / "run"
  process = launch(path, *args)
  wait_until((path / "checkpoints" / "ckpt-000003.npz").exists, process)
  refused = subprocess.run(  # the directory is in use
      [sys.executable, "-m", "experiments.run_search", *FLAGS, *args, f"--run_dir={path}",
       "--resume"],
      cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert refused.returncode == 2 and process.poll() is None
  assert refused.stderr == f"error: --run_dir: {path} is in use by pid {process.pid} on host " \
                           f"{socket.gethostname()}\n"
  process.kill()
  process.communicate()
  logged = len((path / "progress.jsonl").read_text().splitlines())
  resumed = checkpoint.load_latest(path / "checkpoints",
                                   run_search.config_from_flags(parse(*args)))
  assert resumed.extra["progress_lines"] <= logged
  stdout = complete(path, *args, "--resume")  # takes over the lock the killed run left
  assert "Resuming evolution experiment 1 at " in stdout
  printed = progress_lines(stdout)
  assert printed and printed == progress_lines(whole_stdout)[-len(printed):]
  assert stdout.split("Algorithm found:")[1] == whole_stdout.split("Algorithm found:")[1]
  assert_same_run(path, whole_path)
  assert len(json.loads((path / "run.json").read_text())["resumes"]) == 1


def test_sigterm_stops_after_a_checkpoint_and_the_run_resumes(tmp_path, wholes):
  path = tmp_path / "run"
  process = launch(path, "--checkpoint_every=0", "--checkpoint_every_secs=0")
  progress = path / "progress.jsonl"
  wait_until(lambda: progress.exists() and len(progress.read_text().splitlines()) >= 2, process)
  process.send_signal(signal.SIGTERM)
  _, stderr = process.communicate(timeout=120)
  assert process.returncode == 128 + signal.SIGTERM
  assert "run_search: stopped by SIGTERM; checkpoint " in stderr and "Traceback" not in stderr
  saved = checkpoint.checkpoints(path / "checkpoints")
  assert len(saved) == 1  # only the signal's: no periodic checkpoints in this run
  loaded = checkpoint.load_latest(path / "checkpoints", run_search.config_from_flags(parse()))
  assert loaded.snapshot.evaluations >= json.loads(progress.read_text().splitlines()[1])[
      "evaluations"]
  complete(path, "--resume")
  assert_same_run(path, wholes()[0])
