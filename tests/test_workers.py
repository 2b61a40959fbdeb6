"""A search on Ray workers (issue 14): the pool, the combined progress, and, from one Ray instance
in a loopback-only network namespace (tests/ray_scenarios.py), asynchronous migration between
workers, a two-worker launcher run that goes on until selection passes, a worker killed with
SIGKILL and the killed launcher (the coordinator) continued with --resume."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from azero_jax.program import Program, ProgramBatch
from azero_jax.search import driver, workers
from azero_jax.tasks.spec import TaskSpec

HERE = Path(__file__).resolve().parent
PROGRESS = re.compile(r"indivs=\d+, elapsed_secs=\d+, mean=[\d.]+, stdev=[\d.]+, best fit=[\d.]+, "
                      r"fec hit rate=[\d.]+$")
CHECKPOINT_EVERY, PROGRESS_EVERY = 300, 100  # as tests/ray_scenarios.py runs the launcher
SUFFICIENT_FITNESS = 0.9999  # experiments/configs/demo.flags


def test_combined_progress_is_the_statistics_of_all_populations():
  rng = np.random.default_rng(0)
  fitness = [rng.random((2, 50)), rng.random((2, 50))]  # two workers of two islands
  reports = [driver.progress_report(100 * (w + 1), 1.0, f, 0.25 * (w + 1))
             for w, f in enumerate(fitness)]
  records = [{"worker": w, **report._asdict()} for w, report in enumerate(reports)]
  combined = workers.combined_report(records, 3.0)
  expected = driver.progress_report(300, 3.0, np.concatenate(fitness), 0.375)
  assert combined.evaluations == 300 and combined.elapsed_secs == 3.0
  np.testing.assert_allclose(
      [combined.mean, combined.stdev, combined.best, combined.fec_hit_rate],
      [expected.mean, expected.stdev, expected.best, expected.fec_hit_rate], rtol=1e-12)
  assert combined.island_best == expected.island_best


def programs(count: int, constant: float) -> ProgramBatch:
  text = "def Setup():\n  s2 = {:.6f}\ndef Predict():\n  s1 = s0 + s2\ndef Learn():\n"
  return ProgramBatch.of([Program.from_text(text.format(constant + i)) for i in range(count)])


def test_pool_gives_others_latest_uploads_of_the_same_experiment_without_waiting():
  pool = workers.MigrationPool()
  assert pool.trade(0, 1, programs(3, 0).packed, np.zeros(3), 2, seed=1) is None  # alone
  got, fitness = pool.trade(1, 1, programs(3, 10).packed, np.ones(3), 5, seed=1)
  assert {p.to_text() for p in ProgramBatch(got)} <= {p.to_text() for p in programs(3, 0)}
  assert len(fitness) == 5 and not fitness.any()  # worker 0's only, drawn with replacement
  pool.trade(0, 1, programs(2, 20).packed, np.full(2, 2.0), 1, seed=1)  # replaces its upload
  got, fitness = pool.trade(1, 1, programs(1, 30).packed, np.ones(1), 2, seed=2)
  assert sorted(fitness) == [2.0, 2.0] and len(ProgramBatch(got)) == 2
  assert pool.trade(0, 2, programs(1, 40).packed, np.ones(1), 1, seed=1) is None  # new experiment
  assert pool.trade(1, 1, programs(1, 50).packed, np.ones(1), 1, seed=1) is None  # a late one


def test_bad_cluster_specs_name_their_flag():
  with pytest.raises(ValueError, match="--num_workers must be >= 1, got 0"):
    workers.check(workers.ClusterSpec("local", 0))
  with pytest.raises(ValueError, match="--ray_address: expected local, auto, ray://HOST:PORT"):
    workers.check(workers.ClusterSpec("headnode", 2))
  workers.check(workers.ClusterSpec("ray://10.0.0.1:10001", 2))  # well formed; nothing contacted


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory) -> dict:
  """tests/ray_scenarios.py's results: Ray started once, in a namespace with only loopback."""
  if os.geteuid() != 0 or not shutil.which("unshare"):
    pytest.skip("needs root and unshare for a loopback-only network namespace")
  out = tmp_path_factory.mktemp("ray")
  done = subprocess.run(["unshare", "--net", sys.executable, str(HERE / "loopback_only.py"),
                         str(HERE / "ray_scenarios.py"), str(out)],
                        capture_output=True, text=True, timeout=900)
  assert done.returncode == 0, done.stderr[-5000:]
  results = json.loads((out / "results.json").read_text())
  results["records"] = [json.loads(line) for line in
                        (Path(results["launcher"]["run"]) / "progress.jsonl").open()]
  return results


def test_emigrants_of_one_worker_reach_another_worker_population(scenarios):
  migration = scenarios["migration"]
  arrived = set(migration["emigrants"]) & set(migration["fast_population"])
  assert arrived, "none of worker 0's emigrants is in worker 1's population"


def test_a_stopped_worker_does_not_stall_the_others(scenarios):
  migration = scenarios["migration"]
  assert migration["slow_state_while_fast_ran"] == "T"  # worker 0 was stopped throughout
  assert migration["slow_upload_unchanged"]
  assert migration["fast_individuals"] > 1000 and migration["slow_individuals"] > 1000


def test_two_workers_run_the_demo_until_selection_passes_and_print_the_original_lines(scenarios):
  launcher = scenarios["launcher"]
  assert launcher["returncode"] == 0, launcher["stderr"]
  lines = launcher["stdout"].splitlines()
  assert lines[0] == "Random seed = 5" and lines[1].startswith("device: ")
  assert lines[2] == "Running evolution experiment (on the T_search tasks)..."
  done = lines.index("Experiment done. Retrieving candidate algorithm.")
  assert done > 3 and [line for line in lines[3:done] if not PROGRESS.match(line)] == []
  run = Path(launcher["run"])
  result = json.loads((run / "result.json").read_text())
  selected = [e["select_fitness"] for e in result["experiments"]]
  assert selected[-1] > SUFFICIENT_FITNESS >= max(selected[:-1], default=0)  # the demo's rule
  final = lines.index(f"Final evaluation fitness (on unseen data) = "
                      f"{result['final_fitness']:.6f}")
  assert lines[final - 4:final] == [
      f"Select fitness for candidate algorithm = {selected[-1]:.6f}",
      "Select fitness is the best so far. ", "",
      "Final evaluation of best algorithm (on unseen tasks)..."]
  assert lines[final + 1] == "Algorithm found: "
  assert result["program"] == "\n".join(lines[final + 2:]).strip() + "\n"
  reached: dict[tuple[int, int], int] = {}  # (experiment, worker): evaluations, before and after
  for r in launcher["coordinator"]["records"] + scenarios["records"]:  # the coordinator's kill
    key = r["experiment"], r["worker"]
    reached[key] = max(reached.get(key, 0), r["evaluations"])
  for experiment, summary in enumerate(result["experiments"], 1):
    assert summary["individuals"] == reached[experiment, 0] + reached[experiment, 1]


def test_a_killed_worker_continues_from_its_checkpoint(scenarios):
  launcher = scenarios["launcher"]
  assert launcher["pid_after"] != launcher["killed_pid"]  # Ray started a new process
  worker = [r for r in launcher["coordinator"]["records"]  # before the coordinator was killed
            if r["worker"] == 1 and r["experiment"] == 1]
  restarts = [i for i, r in enumerate(worker) if "restarted_from" in r]
  assert len(restarts) == 1
  restart = restarts[0]
  resumed_at = worker[restart]["restarted_from"]
  assert resumed_at >= launcher["checkpoint_before_kill"] > 0
  assert resumed_at % CHECKPOINT_EVERY == 0
  assert worker[restart]["evaluations"] == resumed_at + PROGRESS_EVERY  # goes on, not from 0
  assert max(r["evaluations"] for r in worker[:restart]) >= resumed_at
  counts = [r["evaluations"] for r in worker[restart:]]
  assert counts == sorted(counts)


def test_a_killed_coordinator_resumes_and_its_workers_continue_from_their_checkpoints(scenarios):
  coordinator = scenarios["launcher"]["coordinator"]
  assert coordinator["returncode"] == -signal.SIGKILL
  assert "Experiment done. Retrieving candidate algorithm." not in coordinator["stdout"]
  first = {}  # each worker's first report after the resume (none from a worker that was done)
  for record in scenarios["records"]:
    if record["experiment"] == 1:  # the experiment the coordinator was killed in
      first.setdefault(record["worker"], record)
  assert 1 in first  # worker 1 was still searching when the coordinator was killed
  for worker, record in first.items():
    resumed_at = record["restarted_from"]
    reached = max(r["evaluations"] for r in coordinator["records"] if r["worker"] == worker)
    assert resumed_at >= coordinator["checkpoints"][worker]
    assert resumed_at >= reached - CHECKPOINT_EVERY  # at most one checkpoint interval lost
    assert record["evaluations"] == resumed_at + PROGRESS_EVERY


def test_immigrants_replace_the_oldest_members_and_emigrants_come_from_the_population():
  strategy = driver.make_strategy(driver.SearchConfig(
      *[TaskSpec("linear")] * 3, op_lists=((), (1,), ()), population_size=6, tournament_size=2,
      batch_size=6))
  rngs = [np.random.default_rng(0), np.random.default_rng(1)]
  state = strategy.tell(strategy.init(2), programs(12, 0), np.arange(12.0))
  sent, fitness = strategy.emigrants(state, rngs, 2)
  texts = [p.to_text() for p in programs(12, 0)]
  assert fitness.shape == (2, 2)
  for island, row in enumerate(fitness):  # each island's own programs, with their fitness
    for program, value in zip(ProgramBatch(sent)[2 * island:2 * island + 2], row):
      assert texts.index(program.to_text()) == value and value // 6 == island
  state = strategy.immigrate(state, programs(2, 100).packed, [[-1.0], [-2.0]])
  population = [p.to_text() for p in state.programs]
  assert population[0] == programs(2, 100)[0].to_text() and state.fitness[0, 0] == -1.0
  assert population[6] == programs(2, 100)[1].to_text() and state.fitness[1, 0] == -2.0
  assert population[1:6] == texts[1:6] and state.arrivals.tolist() == [7, 7]
