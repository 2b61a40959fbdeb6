"""Every code block of README.md runs, so the README cannot rot (issue 16).

The blocks run in order in one work folder, as a reader would run them from the repository root:
`.venv/bin/python` is this interpreter and `experiments/` the repository's. Python blocks run in
one namespace that starts with small arrays for the names the blocks take as given (x_train, ...);
the program block is `my_program.txt`. Bash blocks run with bash, with flags appended to every
search and comparison so that they take seconds (flags given later override earlier ones); the
install one-liners are checked, not run: the extras they name exist and the flag files they name
are shipped (CI runs them as written). Every `python -m` entry point the README names and no block
runs answers --help.
"""

import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import azero_jax
from azero_jax import evaluator
from azero_jax.program import Program
from azero_jax.tasks.synthetic import linear_task

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"^```(\w*)\n(.*?)^```$", README, re.M | re.S)
# Appended to the README's commands of these entry points: a few hundred evaluations, small
# selection and final task sets.
QUICK = {
    "experiments.run_search": ["--max_experiments=1", "--num_islands=2", "--population_size=20",
                               "--tournament_size=5", "--batch_size=10", "--progress_every=100",
                               "--max_train_steps=300000", "--select_num_tasks=2",
                               "--final_num_tasks=2"],
    "experiments.compare": ["--seeds=1", "--evaluations=100", "--num_islands=2",
                            "--population_size=20",
                            "--tournament_size=5", "--batch_size=10", "--progress_every=100",
                            "--select_num_tasks=2", "--final_num_tasks=2", "--nobaselines"],
}
INSTALL = re.compile(r"pip install|-m venv")


def joined_lines(script: str) -> list[str]:
  """The lines of a shell script with `\\`-continued lines joined."""
  return script.replace("\\\n", " ").splitlines()


def quick(line: str) -> str:
  """`line` with the QUICK flags of the entry point it runs, if any."""
  for module, extra in QUICK.items():
    if re.search(rf"-m {re.escape(module)}\b", line):
      return f"{line} {' '.join(extra)}"
  return line


def readme_modules() -> set[str]:
  return set(re.findall(r"python -m ([\w.]+)", README)) - {"pytest"}


def test_the_public_names_are_not_shadowed_by_modules():
  assert azero_jax.evaluate is evaluator.evaluate
  for name in azero_jax.__all__:
    assert importlib.util.find_spec(f"azero_jax.{name}") is None, name


def test_the_install_lines_name_existing_extras_and_flag_files():
  extras = importlib.metadata.metadata("azero-jax").get_all("Provides-Extra")
  install_lines = [line for _, code in BLOCKS for line in joined_lines(code)
                   if INSTALL.search(line)]
  named = re.findall(r'pip install -e "?\.(?:\[(\w+)\])?', "\n".join(install_lines))
  assert {"", "test", "cuda", "tpu", "plots"} <= set(named)
  assert all(extra in extras for extra in named if extra)
  assert set(re.findall(r'pip install -e "\.\[(\w+)\]"', README)) <= set(extras)  # prose too
  for path in re.findall(r"--flagfile=(experiments/\S+)", "\n".join(install_lines)):
    assert (ROOT / path).is_file(), path


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
  """A folder laid out like the repository root for the README's commands."""
  python = tmp_path / ".venv" / "bin" / "python"
  python.parent.mkdir(parents=True)
  python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
  python.chmod(0o755)
  (tmp_path / "experiments").symlink_to(ROOT / "experiments")
  (program,) = [code for lang, code in BLOCKS if not lang and code.startswith("def Setup():")]
  (tmp_path / "my_program.txt").write_text(program)
  monkeypatch.chdir(tmp_path)
  monkeypatch.setenv("PYTHONPATH", str(ROOT))
  return tmp_path


def run_bash(script: str, work: Path) -> str:
  done = subprocess.run(["bash", "-e", "-c", script], cwd=work, capture_output=True, text=True,
                        timeout=600)
  assert done.returncode == 0 and "Traceback" not in done.stderr, f"{script}\n{done.stderr}"
  return done.stdout


def runnable(code: str) -> list[str]:
  """The lines of a bash block that the tests run: all but the install lines."""
  return [line for line in joined_lines(code) if not INSTALL.search(line)]


def test_every_block_of_the_readme_runs_in_order(work):
  task = linear_task(4, 20, 10, param_seed=1, data_seed=2)
  namespace = {"x_train": task.x_train, "y_train": task.y_train, "x_valid": task.x_valid,
               "y_valid": task.y_valid}
  for index, (lang, code) in enumerate(BLOCKS):
    if lang == "python":
      exec(compile(code, f"README.md block {index}", "exec"), namespace)
    elif lang == "bash" and runnable(code):
      stdout = run_bash("\n".join(quick(line) for line in runnable(code)), work)
      if "-m experiments.evaluate" in code:
        assert re.fullmatch(r"mean fitness = [\d.]+", stdout.splitlines()[-1])
    elif not lang:
      Program.from_text(code)  # the program block, my_program.txt
  assert namespace["fitness"].shape == (1, 1) and np.isfinite(namespace["fitness"]).all()
  for name in ("flags.txt", "run.json", "progress.jsonl", "best_program.txt", "result.json",
               "checkpoints"):
    assert (work / "runs" / "demo1" / name).exists(), name
  assert (work / "runs" / "my_data" / "result.json").exists()
  assert {"results.json", "results.md", "fitness.png", "success.png"} <= set(
      os.listdir(work / "results" / "demo"))


def executed_modules() -> set[str]:
  lines = [line for lang, code in BLOCKS if lang == "bash" for line in runnable(code)]
  return set(re.findall(r"python -m ([\w.]+)", "\n".join(lines)))


@pytest.mark.parametrize("module", sorted(readme_modules() - executed_modules()))
def test_every_other_entry_point_in_the_readme_answers_help(module):
  done = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True,
                        text=True, timeout=120)
  docstring = importlib.util.find_spec(module).loader.get_source(module).split('"""')[1]
  assert docstring.splitlines()[0] in done.stdout
  assert "Traceback" not in done.stderr
