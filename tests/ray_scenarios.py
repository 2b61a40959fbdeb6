"""The Ray scenarios of tests/test_workers.py, run once in a loopback-only network namespace:

  unshare --net python tests/loopback_only.py tests/ray_scenarios.py OUT

Starts one local Ray instance and runs, one after the other:
  1. migration: two worker actors and a pool; once worker 0 has uploaded emigrants its process is
     stopped (SIGSTOP), and worker 1 runs its whole search meanwhile; then worker 0 goes on.
  2. launcher: `experiments.run_search --ray_address=<this instance> --num_workers=2` on the demo
     config with migration, run until a candidate passes selection (the demo's own stopping rule)
     from populations seeded with the linear program at learning rate 0.01 (search fitness ~0.63;
     the search tunes it past 0.9999 within ~2,000 individuals, where the demo from random
     programs needs ~1-4 million); worker 1's process is killed (SIGKILL) after its first
     checkpoint, then the launcher once worker 1 checkpointed again, and `--resume` finishes it.
Writes OUT/results.json (what the tests assert) and OUT/run (the launcher's run directory).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import ray
from absl import flags

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from azero_jax.program import ProgramBatch  # noqa: E402
from azero_jax.search import workers  # noqa: E402
from experiments import run_search  # noqa: E402

DEMO = f"--flagfile={ROOT / 'experiments' / 'configs' / 'demo.flags'}"
# The demo's search, small: 100 programs per population, ~1,000 individuals per worker, each
# search spending its whole budget.
SMALL = ["--random_seed=5", "--num_islands=1", "--population_size=100", "--batch_size=50",
         "--max_train_steps=1000000", "--migration_every=100", "--migration_size=10",
         "--progress_every=100", "--stop_search_at=0"]
TIMEOUT_SECS = 300


def config(*overrides: str):
  fv = flags.FlagValues()
  run_search.define_flags(fv)
  fv(["run_search", DEMO, *SMALL, *overrides])
  return run_search.config_from_flags(fv)


def wait_for(condition, what: str):
  deadline = time.monotonic() + TIMEOUT_SECS
  while not (found := condition()):
    if time.monotonic() > deadline:
      raise TimeoutError(f"gave up waiting for {what}")
    time.sleep(0.1)
  return found


def migration_scenario() -> dict:
  """Worker 1 finishes while worker 0 is stopped; which of worker 0's emigrants it holds."""
  config_ = config()
  pool = ray.remote(workers.MigrationPool).remote()
  queue = workers.Queue()
  actor = ray.remote(workers.SearchWorker).options(num_cpus=1)
  fast, slow = (actor.remote(config_, index, pool, queue, None) for index in (1, 0))
  seeds = [(11,), (12,)]
  slow_pid = ray.get(slow.pid.remote())
  slow_search = slow.search.remote(1, 7, seeds[0])
  uploaded = wait_for(lambda: ray.get(pool.uploaded.remote(0)), "worker 0's first upload")
  os.kill(slow_pid, signal.SIGSTOP)
  try:
    outcome = ray.get(fast.search.remote(1, 7, seeds[1]), timeout=TIMEOUT_SECS)
    slow_state = Path(f"/proc/{slow_pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    population = ray.get(fast.population.remote())
    emigrants = [program.to_text() for program in ProgramBatch(uploaded[0])]
    still_uploaded = ray.get(pool.uploaded.remote(0))
  finally:
    os.kill(slow_pid, signal.SIGCONT)
  slow_outcome = ray.get(slow_search, timeout=TIMEOUT_SECS)
  for handle in (fast, slow, pool):
    ray.kill(handle)
  return {"fast_individuals": outcome.num_individuals,
          "slow_individuals": slow_outcome.num_individuals,
          "slow_state_while_fast_ran": slow_state,
          "slow_upload_unchanged": bool(np.array_equal(still_uploaded[1], uploaded[1])),
          "emigrants": emigrants, "fast_population": population}


def checkpoint_evaluations(folder: Path) -> int | None:
  """The evaluation count of the newest checkpoint in `folder`, if one reads."""
  for path in sorted(folder.glob("ckpt-*.npz"), reverse=True):
    try:
      with np.load(path) as data:
        return json.loads(data["meta"].tobytes())["evaluations"]
    except (OSError, ValueError, KeyError):
      continue
  return None


def records(run: Path) -> list[dict]:
  """The run's progress records (complete lines) so far."""
  text = (run / "progress.jsonl").read_text()
  return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def launcher_scenario(address: str, out: Path) -> dict:
  """A two-worker run with migration, until a candidate passes selection: worker 1 is killed
  after its first checkpoint, the coordinator once worker 1 checkpointed again, and the run goes
  on with --resume."""
  run = out / "run"
  command = [sys.executable, "-m", "experiments.run_search", DEMO, *SMALL,
             "--max_train_steps=1500000", "--initial_population=LINEAR", f"--run_dir={run}",
             f"--ray_address={address}",
             "--num_workers=2", "--checkpoint_every=300", "--checkpoint_every_secs=0"]
  process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
  worker = run / "workers" / "1"
  killed_at = wait_for(lambda: checkpoint_evaluations(worker / "checkpoints"),
                       "worker 1's first checkpoint")
  first_pid = json.loads((worker / "worker.json").read_text())["pid"]
  os.kill(first_pid, signal.SIGKILL)
  wait_for(lambda: (checkpoint_evaluations(worker / "checkpoints") or 0) > killed_at
           and any("restarted_from" in r for r in records(run)),
           "worker 1's report and checkpoint after its restart")
  pid_after = json.loads((worker / "worker.json").read_text())["pid"]
  before = records(run)
  saved = [checkpoint_evaluations(run / "workers" / str(w) / "checkpoints") for w in (0, 1)]
  process.kill()
  killed_stdout, _ = process.communicate(timeout=TIMEOUT_SECS)
  resumed = subprocess.run([*command, "--resume"], cwd=ROOT, capture_output=True, text=True,
                           timeout=TIMEOUT_SECS)
  return {"returncode": resumed.returncode, "stdout": resumed.stdout,
          "stderr": resumed.stderr[-5000:], "run": str(run),
          "killed_pid": first_pid, "checkpoint_before_kill": killed_at, "pid_after": pid_after,
          "coordinator": {"returncode": process.returncode, "stdout": killed_stdout,
                          "records": before, "checkpoints": saved}}


def main(out: Path) -> None:
  start = time.monotonic()
  context = ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
  results = {"ray_start_secs": time.monotonic() - start}
  try:
    results["migration"] = migration_scenario()
    results["launcher"] = launcher_scenario(context.address_info["gcs_address"], out)
  finally:
    ray.shutdown()
  (out / "results.json").write_text(json.dumps(results))


if __name__ == "__main__":
  main(Path(sys.argv[1]))
