"""Evolution versus random search: statistics, runs with histories, learning-only searches, the
command line (files, refusal to overwrite, progress with ETA)."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from absl import flags

from azero_jax import cli, files
from azero_jax.analysis import comparison as cmp
from azero_jax.analysis import report, stats
from azero_jax.analysis.references import AFFINE, forward_pass
from azero_jax.search.generator import LINEAR, pad
from experiments import compare

TINY = [
    "--num_scalars=4", "--num_vectors=3", "--num_matrices=1",
    "--setup_ops=SCALAR_CONST_SET", "--predict_ops=VECTOR_INNER_PRODUCT",
    "--learn_ops=SCALAR_DIFF,SCALAR_PRODUCT,SCALAR_VECTOR_PRODUCT,VECTOR_SUM",
    "--setup_size_init=5", "--predict_size_init=1", "--learn_size_init=4",
    "--initial_population=RANDOM", "--population_size=20", "--batch_size=10",
    "--search_task=linear:features=2,num_tasks=2,num_train_examples=20,num_valid_examples=10",
    "--select_task=linear:features=2,num_tasks=2,num_train_examples=20,num_valid_examples=10",
    "--final_task=linear:features=2,num_tasks=3,num_train_examples=20,num_valid_examples=10",
    "--evaluations=60", "--seeds=2", "--random_seed=3", "--progress_every=20",
    "--success_fitness=0.5", "--reference=linear"]


def parse(*extra) -> flags.FlagValues:
  fv = flags.FlagValues()
  compare.define_flags(fv)
  fv(["compare", *TINY, *extra])
  return fv


def test_wilson_interval():
  assert stats.wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
  assert stats.wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
  assert stats.wilson(0, 0) == (0.0, 1.0)
  assert stats.wilson(0, 10**6)[0] == 0.0 and stats.wilson(7, 7)[1] == 1.0


def test_run_probability_and_ratio_edge_cases():
  assert stats.run_probability(0.0, 100) == 0.0
  assert stats.run_probability(1e-3, 1000) == pytest.approx(1 - 0.999**1000)
  value, (low, high) = stats.success_ratio(3, 10, 0, 10**6, 1000)
  assert math.isinf(value) and math.isinf(high) and 0 < low < value
  value, (low, high) = stats.success_ratio(0, 10, 5, 10**4, 100)
  assert value == 0 and low == 0 and 0 < high < math.inf
  value, (low, high) = stats.success_ratio(5, 10, 10, 10**5, 1000)
  assert low < value < high and value == pytest.approx(0.5 / stats.run_probability(1e-4, 1000))
  assert math.isnan(stats.ratio(0, 0))


def test_default_evaluations_from_the_step_budget():
  fv = parse("--evaluations=0", "--max_train_steps=4000")
  comparison, _, _ = compare.setting_from_flags(fv)
  assert comparison.evaluations == 100  # 4000 steps / (2 tasks x 20 examples)


def test_train_step_budget_ends_at_a_sweep():
  fv = parse("--budget=train_steps", "--max_train_steps=1000", "--evaluations=0")
  comparison, collections, seeds = compare.setting_from_flags(fv)
  assert comparison.evaluations is None and comparison.max_train_steps == 1000
  run = cmp.run_search(comparison, "random", seeds[0], collections.search_tasks())
  assert run.evaluations % 20 == 0 and run.train_steps >= 1000
  assert run.train_steps - run.history[-2].train_steps < 1000  # stopped at the first sweep over
  with pytest.raises(ValueError, match="not with --budget=train_steps"):
    compare.setting_from_flags(parse("--budget=train_steps"))


def test_stop_at_success_ends_the_sweep():
  comparison, collections, seeds = compare.setting_from_flags(parse("--stop_at_success",
                                                                    "--success_fitness=0.3"))
  run = cmp.run_search(comparison, "evolution", seeds[0], collections.search_tasks())
  assert run.first_success <= 20 and run.evaluations == 20


def test_runs_record_successes_and_history():
  comparison, collections, seeds = compare.setting_from_flags(parse())
  tasks = collections.search_tasks()
  points = []
  for strategy in cmp.STRATEGIES:
    run = cmp.run_search(comparison, strategy, seeds[0], tasks, report=points.append)
    best = [point.best for point in run.history]
    assert run.evaluations == 60 and [point.evaluations for point in run.history] == [20, 40, 60]
    assert np.all(np.diff(best) >= 0) and best[-1] == run.best_fitness
    assert run.history[-1].train_steps == run.train_steps
    assert run.succeeded == (run.best_fitness > comparison.threshold)
    if run.succeeded:
      assert 1 <= run.first_success <= 60 and run.num_successes >= 1
    again = cmp.mean_fitness(comparison, run.best_program, tasks, seeds[0])
    assert again == pytest.approx(run.best_fitness, abs=1e-5)
  assert len(points) == 6


def test_summary_and_ratio_of_known_runs():
  program = pad(LINEAR, (5, 1, 4))
  make = lambda first, successes: cmp.SearchRun("x", 0, 100, 2.0, 0.9, program, successes, first,
                                                None if first is None else 1.0, [], 0, 0.0)
  summary = cmp.summarize([make(10, 3), make(None, 0), make(30, 1), make(None, 0)])
  assert summary["run_successes"] == 2 and summary["run_success_rate"] == 0.5
  assert summary["program_successes"] == 4 and summary["programs"] == 400
  assert summary["median_evaluations_to_threshold"] == 20
  assert summary["evaluations_per_second"] == 50
  assert summary["run_success_probability_from_programs"] == pytest.approx(1 - 0.99**100)


def test_learn_only_keeps_the_forward_pass():
  fv = parse("--setup_ops=", "--predict_ops=", "--learn_only")
  comparison, collections, seeds = compare.setting_from_flags(fv)
  fixed = forward_pass(LINEAR, (5, 1, 4))
  assert comparison.base == fixed
  rng = np.random.default_rng(0)
  for strategy in cmp.STRATEGIES:
    search = cmp.make_strategy(comparison, strategy)
    state = search.init()
    for _ in range(4):  # the initial population, then children
      programs = search.ask(state, [rng])
      assert all(p.setup == fixed.setup and p.predict == fixed.predict for p in programs)
      assert any(p.learn != fixed.learn for p in programs)
      state = search.tell(state, programs, rng.random(len(programs)))


def test_learn_only_needs_a_reference_and_only_learn_ops():
  with pytest.raises(ValueError, match="setup_ops and predict_ops must be empty"):
    compare.setting_from_flags(parse("--learn_only"))
  with pytest.raises(ValueError, match="needs a reference"):
    cmp.base_program(compare.setting_from_flags(parse())[0].config, None, True)
  with pytest.raises(ValueError, match="more than the fixed size"):
    forward_pass(AFFINE, (1, 1, 6))


def test_output_dir_refuses_to_overwrite(tmp_path):
  (tmp_path / "old.txt").write_text("x")
  with pytest.raises(ValueError, match="--overwrite"):
    report.prepare_output_dir(tmp_path, overwrite=False)
  assert report.prepare_output_dir(tmp_path, overwrite=True) == tmp_path
  files.write_atomic(tmp_path / "a.json", "{}")
  assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "old.txt"]


def test_compare_writes_results_table_and_plots(tmp_path):
  pytest.importorskip("matplotlib")
  lines = []
  fv = parse(f"--output_dir={tmp_path / 'out'}", "--baselines")
  results = compare.run(fv, lines.append)
  files = sorted(p.name for p in (tmp_path / "out").iterdir())
  assert files == ["fitness.png", "results.json", "results.md", "success.png"]
  stored = json.loads((tmp_path / "out" / "results.json").read_text())
  assert set(stored["strategies"]) == {"evolution", "random"} and len(stored["runs"]) == 4
  assert stored["setting"]["evaluations_per_run"] == 60 and stored["device"].startswith("device:")
  assert len(stored["reference"]["search_fitness"]) == 2
  assert [m["model"] for m in stored["baselines"]["models"]][0] == "linear regression"
  assert isinstance(stored["ratio"]["ci95"][0], float | str)
  table = (tmp_path / "out" / "results.md").read_text()
  assert "| evolution | " in table and "| random search | " in table
  assert "success ratio" in table and "2-layer ReLU network" in table
  assert any("ETA" in line for line in lines)
  assert results["strategies"]["evolution"]["programs"] == 120
  with pytest.raises(cli.UserError, match="not empty"):
    compare.run(parse(f"--output_dir={tmp_path / 'out'}"), lines.append)


def test_command_line_errors(tmp_path):
  (tmp_path / "full").mkdir()
  (tmp_path / "full" / "x").write_text("x")
  done = subprocess.run([sys.executable, "-m", "experiments.compare", *TINY,
                         f"--output_dir={tmp_path / 'full'}"], capture_output=True, text=True,
                        timeout=120)
  assert done.returncode == 2
  assert done.stdout.startswith("device: ")
  assert done.stderr.strip().splitlines()[-1].startswith("error: ")
  assert "--overwrite" in done.stderr


def test_repeated_experiments_restart_the_population():
  # Experiments of one train step end after their first sweep: evolution then only ever draws
  # initial populations, the same draws as random search's (common random numbers).
  fv = parse("--repeat_experiments", "--max_train_steps=1", "--success_fitness=0.9999")
  comparison, collections, seeds = compare.setting_from_flags(fv)
  tasks = collections.search_tasks()
  runs = [cmp.run_search(comparison, strategy, seeds[0], tasks) for strategy in cmp.STRATEGIES]
  assert [run.evaluations for run in runs] == [60, 60]
  assert [p.best for p in runs[0].history] == [p.best for p in runs[1].history]
  assert [p.mean for p in runs[0].history] == pytest.approx([p.mean for p in runs[1].history])
  once = cmp.run_search(compare.setting_from_flags(parse("--max_train_steps=1"))[0], "evolution",
                        seeds[0], tasks)
  assert [p.mean for p in once.history] != [p.mean for p in runs[0].history]
  with pytest.raises(ValueError, match="--repeat_experiments: only with --budget=evaluations"):
    compare.setting_from_flags(parse("--repeat_experiments", "--budget=train_steps",
                                     "--evaluations=0"))
