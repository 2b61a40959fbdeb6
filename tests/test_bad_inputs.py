"""Bad inputs at every entry point (issue 6, part 3): each ends with one `error: ...` line on stderr
naming the flag or file and what was expected (the last line; a run that started names its run
directory first), exit status 2, no traceback, and nothing written.

Every case runs as `python -m MODULE ARGS` would, in a fresh work folder, which is also where its
outputs would go (--run_dir, --output_dir, the current directory, the data and compilation caches);
the folder's contents are compared before and after. A case runs in a process forked from one
that has imported JAX once (`tests/fork_runner.py`: ~2 s saved per case); the cases that reach Ray
run as fresh subprocesses in a network namespace of their own. The work folder holds
`full/old.txt` (a non-empty folder), `readonly/` (mode 0o500) and `busy/`, a run directory whose
lock this test holds.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from azero_jax import run_dir

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "experiments" / "configs"
DEMO = f"--flagfile={CONFIGS / 'demo.flags'}"
BASELINE = f"--flagfile={CONFIGS / 'baseline.flags'}"  # binary tasks, INSERT / REMOVE_INSTRUCTION
SEARCH = ("experiments.run_search", DEMO, "--run_dir={work}/run")
COMPARE = ("experiments.compare", DEMO, "--evaluations=100", "--seeds=1")
EVALUATE = ("experiments.evaluate", "--task=linear")

PROGRAMS = {
    "unknown_op.txt": "def Setup():\n  s2 = frob(s1)\ndef Predict():\ndef Learn():\n",
    "missing_operand.txt": "def Setup():\ndef Predict():\n  s1 = s0 +\ndef Learn():\n",
    "garbage.txt": "hello world\n",
    "out_of_order.txt": "def Predict():\ndef Setup():\ndef Learn():\n",
    "s99.txt": "def Setup():\n  s99 = 0.1\ndef Predict():\ndef Learn():\n",
    "empty.txt": "def Setup():\ndef Predict():\ndef Learn():\n",
}
CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]

CASES = [
    # Wrong types and values absl rejects while parsing.
    ("int_not_a_number", [*SEARCH, "--population_size=abc"],
     "flag --population_size=abc: invalid literal for int()"),
    ("float_not_a_number", [*SEARCH, "--mutate_prob=high"],
     "flag --mutate_prob=high: could not convert string to float"),
    ("enum_unknown_value", [*SEARCH, "--strategy=annealing"],
     "flag --strategy=annealing: value should be one of <evolution|random>"),
    ("below_lower_bound", [*EVALUATE, "--num_scalars=1"],
     "flag --num_scalars=1: 1 is not integer >= 2"),
    ("unknown_flag", [*SEARCH, "--populaton_size=10"],
     "Unknown command line flag 'populaton_size'. Did you mean: population_size ?"),
    ("positional_argument", [*SEARCH, "extra"],
     "unexpected arguments extra (flags start with --)"),
    # Flag files.
    ("missing_flagfile", ["experiments.run_search", "--flagfile={inputs}/missing.flags"],
     "--flagfile: Unable to open flagfile: [Errno 2] No such file or directory"),
    ("flagfile_bad_value", ["experiments.run_search", "--flagfile={inputs}/bad_value.flags"],
     "flag --population_size=many: invalid literal for int()"),
    ("flagfile_line_without_dashes", ["experiments.run_search", DEMO,
                                      "--flagfile={inputs}/no_dashes.flags"],
     "unexpected arguments population_size=5 (flags start with --)"),
    # Out-of-range search settings.
    ("population_zero", [*SEARCH, "--population_size=0"], "population_size must be >= 1, got 0"),
    ("mutate_prob_above_one", [*SEARCH, "--mutate_prob=1.5"],
     "mutate_prob must be in [0, 1], got 1.5"),
    ("batch_above_population", [*SEARCH, "--batch_size=2000"],
     "batch_size must be in [1, population_size=1000], got 2000"),
    ("tournament_above_population", [*SEARCH, "--tournament_size=1001"],
     "tournament_size must be <= population_size=1000, got 1001"),
    ("fec_cache_zero", [*SEARCH, "--fec", "--fec_cache_size=0"],
     "fec_cache_size must be >= 1, got 0"),
    # Names.
    ("unknown_op", [*SEARCH, "--setup_ops=SCALAR_CONST_SET,FOO"], "--setup_ops: unknown op 'FOO'"),
    ("unknown_mutation_type", [*SEARCH, "--mutation_types=ALTER_PARAM,SHUFFLE"],
     "--mutation_types: unknown mutation type 'SHUFFLE'"),
    ("unknown_initial_population", [*SEARCH, "--initial_population=LINEAR_REGRESSION"],
     "--initial_population: unknown initial model 'LINEAR_REGRESSION'"),
    # Sizes against the address counts, and min <= init < max.
    ("initial_program_needs_more_scalars", [*SEARCH, "--initial_population=LINEAR",
                                            "--num_scalars=2"],
     "initial_population LINEAR: setup instruction 0 `s2 = 0.01` uses s2, but memory has only 2 "
     "scalars"),
    ("op_needs_more_vectors", [*SEARCH, "--num_vectors=1"],
     "op SCALAR_VECTOR_PRODUCT writes a v register, but with 1 of them none is writable"),
    ("negative_size", [*SEARCH, "--learn_size_init=-1"], "--learn_size_init must be >= 0, got -1"),
    ("max_not_above_init", ["experiments.run_search", BASELINE, "--setup_size_max=1"],
     "setup_size_max must be > 1, the initial setup size"),
    ("min_not_below_max", ["experiments.run_search", BASELINE, "--learn_size_min=30"],
     "learn_size_min must be < learn_size_max=23, got 30"),
    # Task spec strings.
    ("task_unknown_family", [*SEARCH, "--search_task=quadratic"],
     "--search_task: task spec 'quadratic': unknown task family 'quadratic'"),
    ("task_unknown_key", [*SEARCH, "--select_task=linear:featurs=4"],
     "--select_task: task spec 'linear:featurs=4': unknown key 'featurs'"),
    ("task_not_an_integer", [*SEARCH, "--final_task=linear:num_tasks=ten"],
     "--final_task: task spec 'linear:num_tasks=ten': num_tasks='ten' is not an integer"),
    ("task_no_features", ["experiments.baselines", "--task=linear:features=0"],
     "--task: task spec 'linear': features must be >= 1, got 0"),
    ("task_mix_unknown_family", [*SEARCH, "--num_islands=2", "--search_task_mix=linear;quadratic"],
     "--search_task_mix: task spec 'quadratic': unknown task family 'quadratic'"),
    ("task_mix_empty_spec", [*SEARCH, "--search_task_mix=linear;"],
     "--search_task_mix: expected task specs separated by ';', got 'linear;'"),
    ("task_mix_more_families_than_islands", [*SEARCH, "--num_islands=2",
                                             "--search_task_mix=linear;affine;nonlinear"],
     "search_task_mix: 3 families need num_islands >= 3 (each experiment searches every family), "
     "or num_islands=1 (the family alternates per experiment), got num_islands=2"),
    # Dataset directories.
    ("dataset_dir_missing", ["experiments.run_search", BASELINE, "--dataset_dir={inputs}/nowhere"],
     "--dataset_dir: dataset directory not found: '{inputs}/nowhere'"),
    ("dataset_dir_without_cifar", ["experiments.run_search", BASELINE,
                                   "--dataset_dir={inputs}/empty"],
     "--dataset_dir: CIFAR-10 batch file not found: '{inputs}/empty/data_batch_1'"),
    ("dataset_dir_malformed_cifar", ["experiments.run_search", BASELINE, "--run_dir={work}/run",
                                     "--dataset_dir={inputs}/bad_cifar", "--random_seed=1"],
     "malformed CIFAR-10 batch file"),
    # Data files of the arrays family.
    ("arrays_missing_array", [*SEARCH, "--search_task=arrays:path={inputs}/no_valid.npz"],
     "--search_task: {inputs}/no_valid.npz: no array y_valid; expected arrays x_train [n, D], "
     "y_train [n], x_valid [m, D], y_valid [m] (and optionally x_test [k, D], y_test [k])"),
    ("arrays_wrong_shape", [*SEARCH, "--select_task=arrays:path={inputs}/short_labels.npz"],
     "--select_task: {inputs}/short_labels.npz: x_train has shape (20, 4) and y_train (19,); "
     "expected x_train [n, D] and y_train [n] with n >= 1 and D (features) the same in every "
     "split, D >= 1"),
    ("arrays_nan", [*SEARCH, "--final_task=arrays:path={inputs}/nan.npz"],
     "--final_task: {inputs}/nan.npz: x_valid holds NaN or infinite values; expected finite "
     "numbers"),
    ("arrays_labels_not_binary", ["experiments.evaluate", "--program={inputs}/empty.txt",
                                  "--task=arrays:path={inputs}/labels.csv,eval_type=accuracy,features=2"],
     "--task: {inputs}/labels.csv: y_train holds the label 3; eval_type=accuracy expects labels "
     "0 and 1"),
    ("task_dataset_dir_without_cifar", ["experiments.baselines",
                                        "--task=binary_cifar10:dataset_dir={inputs}/empty"],
     "CIFAR-10 batch file not found: '{inputs}/empty/data_batch_1'"),
    # Program files.
    ("program_missing", [*EVALUATE, "--program={inputs}/missing.txt"],
     "--program: cannot read {inputs}/missing.txt: No such file or directory"),
    ("program_unknown_op", [*EVALUATE, "--program={inputs}/unknown_op.txt"],
     "--program: {inputs}/unknown_op.txt: line 2: `s2 = frob(s1)` is not an instruction"),
    ("program_missing_operand", [*EVALUATE, "--program={inputs}/missing_operand.txt"],
     "line 3: `s1 = s0 +` is not an instruction"),
    ("program_garbage", ["azero_jax.explain", "--program={inputs}/garbage.txt"],
     "line 1: `hello world` before any function header: expected `def Setup():`"),
    ("program_out_of_order", ["azero_jax.explain", "--program={inputs}/out_of_order.txt"],
     "line 1: `def Predict():` out of order: expected def Setup():"),
    ("program_address_beyond_memory", [*EVALUATE, "--program={inputs}/s99.txt"],
     "setup instruction 0 `s99 = 0.1` uses s99, but memory has only 4 scalars"),
    ("program_not_given", ["azero_jax.explain"], "--program: required"),
    ("baselines_program_address", ["experiments.baselines", "--task=linear",
                                   "--program={inputs}/s99.txt"],
     "uses s99, but memory has only 5 scalars (addresses 0..4); raise --num_scalars"),
    # Output and run directories.
    ("run_dir_not_empty", [*SEARCH[:2], "--run_dir={work}/full"],
     "--run_dir: {work}/full is not empty: pass --resume"),
    ("resume_without_checkpoint", [*SEARCH, "--resume"], "--resume: no checkpoint in"),
    ("run_dir_in_use", [*SEARCH[:2], "--run_dir={work}/busy", "--resume"],
     "--run_dir: {work}/busy is in use by pid {pid} on host {host}"),
    ("checkpoint_every_negative", [*SEARCH, "--checkpoint_every=-1"],
     "--checkpoint_every must be >= 0, got -1"),
    ("compare_output_dir_not_empty", [*COMPARE, "--output_dir={work}/full"],
     "--output_dir: {work}/full is not empty: pass --overwrite"),
    ("compare_output_dir_missing", [*COMPARE], "--output_dir: required"),
    ("compare_unknown_strategy", [*COMPARE, "--output_dir={work}/out",
                                  "--strategies=evolution,annealing"],
     "--strategies: unknown 'annealing'"),
    ("compare_hurdles", [*COMPARE, "--output_dir={work}/out", "--hurdle_tasks=3"],
     "--hurdle_tasks: experiments.compare runs without hurdles and task mixes"),
    ("study_unknown_setting", ["experiments.study", "--output_dir={work}/study",
                               "--settings=linear_learn,quadratic"],
     "--settings: unknown setting 'quadratic'"),
    # A search on Ray workers (caught before Ray is imported).
    ("num_workers_without_ray_address", [*SEARCH, "--num_workers=2"],
     "--num_workers needs --ray_address"),
    ("num_workers_zero", [*SEARCH, "--ray_address=local", "--num_workers=0"],
     "--num_workers must be >= 1, got 0"),
    ("ray_address_malformed", [*SEARCH, "--ray_address=headnode"],
     "--ray_address: expected local, auto, ray://HOST:PORT or HOST:PORT, got 'headnode'"),
]
# Cases that reach Ray: each runs in its own network namespace holding only loopback
# (tests/loopback_only.py); the last field says whether to hide the installed Ray.
RAY_CASES = [
    ("ray_not_installed", [*SEARCH, "--ray_address=local"],
     "--ray_address: Ray is not installed: pip install 'azero-jax[ray]'", True),
    ("ray_address_unreachable", [*SEARCH, "--ray_address=ray://127.0.0.1:9"],
     "--ray_address: cannot reach ray://127.0.0.1:9: [Errno 111] Connection refused", False),
    ("num_workers_beyond_the_cluster", [*SEARCH, "--ray_address=local", "--num_workers=64"],
     "--num_workers: 64 workers need 64 CPUs (1 each), but the cluster at local has", False),
]
UNWRITABLE = [  # skipped as root, whom file modes do not stop
    ("compare_output_dir_unwritable", [*COMPARE, "--output_dir={work}/readonly/out"],
     "--output_dir: {work}/readonly/out: cannot write in {work}/readonly"),
    ("run_dir_unwritable", [*SEARCH[:2], "--run_dir={work}/readonly/run"],
     "--run_dir: cannot write in {work}/readonly"),
]
PARAMS = [pytest.param(argv, message, id=name) for name, argv, message in CASES] + [
    pytest.param(argv, message, id=name, marks=pytest.mark.skipif(
        os.geteuid() == 0, reason="file modes do not stop root")) for name, argv, message in
    UNWRITABLE]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
  """Program files, flag files and dataset folders the cases read."""
  folder = tmp_path_factory.mktemp("inputs")
  for name, text in PROGRAMS.items():
    (folder / name).write_text(text)
  (folder / "bad_value.flags").write_text(f"{DEMO}\n--population_size=many\n")
  (folder / "no_dashes.flags").write_text("population_size=5\n")
  (folder / "empty").mkdir()
  (folder / "no_ray" / "ray").mkdir(parents=True)  # an import of ray fails as without it
  (folder / "no_ray" / "ray" / "__init__.py").write_text(
      "raise ModuleNotFoundError(\"No module named 'ray'\", name='ray')\n")
  (folder / "bad_cifar").mkdir()
  for name in CIFAR_FILES:
    (folder / "bad_cifar" / name).write_bytes(b"not a pickle")
  x, y = np.ones((20, 4)), np.zeros(20)
  np.savez(folder / "no_valid.npz", x_train=x, y_train=y, x_valid=x)
  np.savez(folder / "short_labels.npz", x_train=x, y_train=y[:-1], x_valid=x, y_valid=y)
  np.savez(folder / "nan.npz", x_train=x, y_train=y, x_valid=x * np.nan, y_valid=y)
  (folder / "labels.csv").write_text("a,b,label\n" + "1,2,0\n" * 9 + "1,2,3\n")
  return folder


def tree(folder: Path) -> list[str]:
  return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


@pytest.fixture(scope="module")
def fork_runner(tmp_path_factory):
  """`run(argv, cwd, env)`: (exit status, stderr) of `python -m *argv` (tests/fork_runner.py)."""
  env = {**os.environ, "PYTHONPATH": str(ROOT),
         "AZERO_JAX_CACHE_DIR": str(tmp_path_factory.mktemp("runner_cache"))}
  runner = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fork_runner.py")], cwd=ROOT,
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

  def run(argv, cwd, env):
    request = {"module": argv[0], "argv": argv[1:], "cwd": str(cwd), "env": env}
    runner.stdin.write(json.dumps(request) + "\n")
    runner.stdin.flush()
    done = json.loads(runner.stdout.readline())
    return done["returncode"], done["stderr"]

  yield run
  runner.stdin.close()
  runner.wait(timeout=60)


@pytest.mark.parametrize("argv, message", PARAMS)
def test_bad_input_gets_one_clear_line_and_writes_nothing(argv, message, inputs, tmp_path,
                                                          fork_runner):
  check_bad_input(argv, message, inputs, tmp_path, fork_runner)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                    reason="needs root and unshare for a loopback-only network namespace")
@pytest.mark.parametrize("argv, message, hide_ray", [pytest.param(*case, id=name)
                                                     for name, *case in RAY_CASES])
def test_bad_ray_input_gets_one_clear_line_and_writes_nothing(argv, message, hide_ray, inputs,
                                                              tmp_path):
  prefix = ["unshare", "--net", sys.executable, str(ROOT / "tests" / "loopback_only.py"), "-m"]

  def run(argv, cwd, env):
    path = os.pathsep.join(map(str, [inputs / "no_ray", ROOT] if hide_ray else [ROOT]))
    done = subprocess.run([*prefix, *argv], cwd=cwd, env={**os.environ, **env, "PYTHONPATH": path},
                          capture_output=True, text=True, timeout=120)
    return done.returncode, done.stderr

  check_bad_input(argv, message, inputs, tmp_path, run)


def check_bad_input(argv, message, inputs, tmp_path, run):
  """Runs the command with `run` in a fresh work folder: one `error:` line, exit 2, nothing
  written."""
  work = tmp_path / "work"
  (work / "full").mkdir(parents=True)
  (work / "full" / "old.txt").write_text("an earlier run")
  (work / "readonly").mkdir(mode=0o500)
  (work / "busy").mkdir()
  busy = run_dir.RunLock(work / "busy")
  busy.acquire()
  before = tree(work)
  fill = lambda text: text.format(work=work, inputs=inputs, pid=os.getpid(),
                                  host=socket.gethostname())
  returncode, stderr = run(list(map(fill, argv)), work,
                           {"AZERO_JAX_CACHE_DIR": str(work / "cache")})
  (work / "readonly").chmod(0o700)
  after = tree(work)
  busy.release()
  errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
  assert returncode == 2, stderr
  assert "Traceback" not in stderr
  assert errors == stderr.strip().splitlines()[-1:], stderr  # one line, the last
  assert fill(message) in errors[0]
  assert after == before
