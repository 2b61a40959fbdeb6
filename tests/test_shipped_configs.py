"""Every shipped flag file runs after the plain install, `pip install -e .` (issue 16).

The plain install leaves out scikit-learn (the `digits` extra) and matplotlib (`plots`); these tests
hide both, as if they were not installed, and run each flag file of experiments/configs/ for a
hundred evaluations with a population of 20 (the initial population, then eight batches of
mutated children): run_search's files through the driver, the study's
(study_*.flags, compare's flags) through experiments.compare. Where a file needs a missing package
(baseline.flags: the offline digits; compare's plots), the run ends before it starts with one error
naming the extra to install.
"""

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest
from absl import flags

from azero_jax import cli
from azero_jax.search.driver import run
from azero_jax.tasks.spec import DEFAULT_NUM_TRAIN_EXAMPLES
from experiments import compare, run_search

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "experiments" / "configs"
OPTIONAL = ("sklearn", "matplotlib")
SEARCH_CONFIGS = sorted(p.name for p in CONFIGS.glob("*.flags") if not p.name.startswith("study_"))
STUDY_CONFIGS = sorted(p.name for p in CONFIGS.glob("study_*.flags"))
SMALL = ["--population_size=20", "--tournament_size=5", "--batch_size=10", "--progress_every=100",
         "--select_num_tasks=2", "--final_num_tasks=2"]
EVALUATIONS = 100
DIGITS_EXTRA = ('the digits dataset needs scikit-learn, which the plain install leaves out: '
                'pip install -e ".[digits]"')
PLOTS_EXTRA = ('plots need matplotlib, which the plain install leaves out: pip install -e '
               '".[plots]" (or pass --noplots)')


@pytest.fixture
def plain_install(monkeypatch):
  """scikit-learn and matplotlib cannot be imported (a None entry in sys.modules)."""
  for name in OPTIONAL:
    monkeypatch.setitem(sys.modules, name, None)


def parsed(define, name: str, *args: str) -> flags.FlagValues:
  fv = flags.FlagValues()
  define(fv)
  fv(["test", f"--flagfile={CONFIGS / name}", *SMALL, *args])
  return fv


# The flag files whose search tasks need the digits extra, and the flag that names them.
NEEDS_DIGITS = {"baseline.flags": "search_task", "paper_method.flags": "search_task_mix"}


@pytest.mark.parametrize("name", SEARCH_CONFIGS)
def test_every_search_flag_file_runs_or_names_the_extra(name, plain_install):
  fv = parsed(run_search.define_flags, name, "--max_experiments=1")
  if name in NEEDS_DIGITS:
    with pytest.raises(ValueError, match=re.escape(f"--{NEEDS_DIGITS[name]}: {DIGITS_EXTRA}")):
      run_search.config_from_flags(fv)
    return
  config = run_search.config_from_flags(fv)
  tasks = config.search_tasks
  steps = tasks.num_tasks * (tasks.num_train_examples or DEFAULT_NUM_TRAIN_EXAMPLES)
  config = dataclasses.replace(config, max_train_steps=EVALUATIONS * steps)
  result = run(config, write=lambda line: None)
  assert result.experiments[0].num_individuals >= EVALUATIONS


@pytest.mark.parametrize("name", STUDY_CONFIGS)
def test_every_study_flag_file_runs_or_names_the_extra(name, plain_install, tmp_path):
  args = (f"--output_dir={tmp_path}", f"--evaluations={EVALUATIONS}", "--seeds=1")
  with pytest.raises(cli.UserError, match=re.escape(PLOTS_EXTRA)):
    compare.run(parsed(compare.define_flags, name, *args), write=lambda line: None)
  results = compare.run(parsed(compare.define_flags, name, *args, "--noplots"),
                        write=lambda line: None)
  assert {run["strategy"] for run in results["runs"]} == {"evolution", "random"}
  assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json", "results.md"]


def test_baseline_after_the_plain_install_is_one_error_line():
  hide = ("import runpy, sys; sys.modules.update(sklearn=None, matplotlib=None); "
          "runpy.run_module(sys.argv.pop(1), run_name='__main__', alter_sys=True)")
  done = subprocess.run([sys.executable, "-c", hide, "experiments.run_search",
                         f"--flagfile={CONFIGS / 'baseline.flags'}", "--run_dir="],
                        cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert done.returncode == 2
  assert done.stderr == f"error: --search_task: {DIGITS_EXTRA}\n"
