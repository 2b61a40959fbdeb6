"""Runs a search experiment (REFERENCE.md §8.5): `python -m experiments.run_search --flagfile=...`.

The flags cover the original's SearchExperimentSpec and driver flags; the shipped configurations
are flag files in experiments/configs/ (demo, integration tests, baseline, paper §4.1), e.g.

  python -m experiments.run_search --flagfile=experiments/configs/demo.flags --random_seed=1

Flags given after a --flagfile override it. Every flag is checked before anything runs or is
written; a bad one stops the run with one `error: ...` line and exit status 2 (azero_jax/cli.py).

With --run_dir=DIR the run records itself in DIR (azero_jax/run_dir.py) and checkpoints there;
SIGINT (Ctrl-C) or SIGTERM then stops it after a checkpoint with exit status 128 + the signal
(130, 143), and the same flags plus --resume continue it with the output it would have printed.

With --ray_address the search runs on --num_workers Ray workers (azero_jax/search/workers.py);
this process is the coordinator and prints what a one-process run prints.
"""

from __future__ import annotations

import contextlib
import functools
import sys

from absl import flags

from azero_jax import cli, run_dir
from azero_jax.ops import parse_op_list
from azero_jax.search.driver import STRATEGIES, SearchConfig, run
from azero_jax.search.fitness import COMBINATIONS, FEC_SCOPES, FecSpec
from azero_jax.search.generator import InitModel
from azero_jax.search.mutator import parse_mutation_types
from azero_jax.search.randomizer import Memory
from azero_jax.tasks.datasets import source_files
from azero_jax.tasks.spec import TaskSpec, define_task_flags, mix_from_flags, spec_from_flags

COMPONENT_NAMES = ("setup", "predict", "learn")
TASK_PREFIXES = ("search_", "select_", "final_")
DEFAULT_MUTATIONS = ["ALTER_PARAM", "RANDOMIZE_INSTRUCTION", "RANDOMIZE_COMPONENT_FUNCTION"]


def define_flags(fv: flags.FlagValues = flags.FLAGS, run_directory: bool = True) -> None:
  """Defines every flag of the launcher on `fv` (the run-directory flags only if asked)."""
  kw = {"flag_values": fv}
  flags.DEFINE_integer("num_scalars", 4, "Scalar addresses (s0 = label, s1 = prediction).", **kw)
  flags.DEFINE_integer("num_vectors", 3, "Vector addresses (v0 = features).", **kw)
  flags.DEFINE_integer("num_matrices", 1, "Matrix addresses.", **kw)
  for name in COMPONENT_NAMES:
    flags.DEFINE_string(f"{name}_ops", "", f"Ops allowed in {name.capitalize()}: comma-separated "
                        "ids or names (e.g. 56,VECTOR_SUM); empty = never mutated.", **kw)
    flags.DEFINE_integer(f"{name}_size_init", 0, f"Initial size of {name.capitalize()}.", **kw)
    flags.DEFINE_integer(f"{name}_size_min", 0, f"Smallest size REMOVE_INSTRUCTION leaves in "
                         f"{name.capitalize()}.", **kw)
    flags.DEFINE_integer(f"{name}_size_max", 0, f"INSERT_INSTRUCTION keeps {name.capitalize()} "
                         "below this size (exclusive, as the original).", **kw)
  flags.DEFINE_string("initial_population", "NO_OP", "Initial model: NO_OP, RANDOM, LINEAR, "
                      "NEURAL_NET or INTEGRATION_TEST_DAMAGED_NEURAL_NET.", **kw)
  flags.DEFINE_list("mutation_types", DEFAULT_MUTATIONS, "Allowed mutation types (names or ids "
                    "0-7); a repeated entry weighs more.", **kw)
  flags.DEFINE_float("mutate_prob", 0.9, "Probability that a child is mutated.", **kw)
  flags.DEFINE_bool("paper_mutations", False, "The paper's mutation variant: constants scaled "
                    "by U[0.5, 2], removal twice as likely.", **kw)
  flags.DEFINE_integer("population_size", 1000, "Population size P.", **kw)
  flags.DEFINE_integer("tournament_size", 10, "Tournament size T.", **kw)
  flags.DEFINE_integer("batch_size", 100, "Children evaluated together (1 = the original's "
                       "one-at-a-time loop); at most population_size.", **kw)
  flags.DEFINE_integer("progress_every", 10000, "Print progress every this many individuals.",
                       **kw)
  flags.DEFINE_integer("max_train_steps", 80_000_000_000, "Train-step budget per experiment.",
                       **kw)
  flags.DEFINE_bool("fec", False, "Functional equivalence checking cache.", **kw)
  flags.DEFINE_integer("fec_num_train_examples", 10, "FEC fingerprint train examples.", **kw)
  flags.DEFINE_integer("fec_num_valid_examples", 10, "FEC fingerprint valid examples.", **kw)
  flags.DEFINE_integer("fec_cache_size", 100_000, "FEC LRU cache size.", **kw)
  flags.DEFINE_integer("fec_forget_every", 100, "Re-evaluate after this many cache counts "
                       "(0 = never).", **kw)
  flags.DEFINE_string("train_budget", "", "Train budget baseline model (e.g. NEURAL_NET); empty "
                      "= no budget.", **kw)
  flags.DEFINE_float("train_budget_threshold_factor", 2.0, "Budget threshold factor.", **kw)
  flags.DEFINE_enum("fitness_combination", "mean", COMBINATIONS, "Combination over T_search.",
                    **kw)
  for prefix in TASK_PREFIXES:
    define_task_flags(prefix, fv)
  flags.DEFINE_string("search_task_mix", None, "Task families dealt to the islands in turn, as "
                      "spec strings separated by ';' (e.g. 'binary_digits:features=16;"
                      "binary_digits:features=8'), each with its own T_search; replaces "
                      "--search_task (--search_num_tasks etc. apply to every family). With one "
                      "island the family alternates per experiment.", **kw)
  flags.DEFINE_string("dataset_dir", None, "CIFAR-10 folder: binary_digits tasks become "
                      "binary_cifar10 tasks read from it.", **kw)
  flags.DEFINE_integer("max_experiments", 1, "Number of experiments (0 = unlimited).", **kw)
  flags.DEFINE_integer("random_seed", 0, "Random seed (0 = from the clock).", **kw)
  flags.DEFINE_bool("randomize_task_seeds", False, "New T_search / T_select seeds per "
                    "experiment.", **kw)
  flags.DEFINE_float("sufficient_fitness", None, "Stop once the best select fitness exceeds "
                     "this.", **kw)
  flags.DEFINE_float("stop_search_at", 0.0, "End an experiment's search early, at the end of "
                     "a sweep, once the best candidate's search fitness exceeds this and its "
                     "fitness on a T_select of its own does too (0 = never: every island spends "
                     "max_train_steps, as in the original).", **kw)
  flags.DEFINE_enum("strategy", "evolution", STRATEGIES, "Search strategy.", **kw)
  flags.DEFINE_float("success_fitness", 0.9999, "Random search counts the programs whose search "
                     "fitness exceeds this.", **kw)
  flags.DEFINE_enum("dtype", "float32", ["float32", "float64"], "Evaluator precision.", **kw)
  flags.DEFINE_float("max_abs_error", 100.0, "Training stops when |error| exceeds this.", **kw)
  define_island_flags(fv)
  define_hurdle_flags(fv)
  if run_directory:
    run_dir.define_flags(fv)
    define_cluster_flags(fv)


def define_island_flags(fv: flags.FlagValues) -> None:
  """The flags of islands and migration (shared with experiments.compare)."""
  kw = {"flag_values": fv}
  flags.DEFINE_integer("num_islands", 1, "Populations K evolved in lock-step in one process; "
                       "each step evaluates all K x batch_size children together. Each island "
                       "spends max_train_steps.", **kw)
  flags.DEFINE_enum("fec_scope", "shared", FEC_SCOPES, "One FEC cache for all islands (shared) "
                    "or one per island (island: each island runs as it would alone).", **kw)
  flags.DEFINE_integer("migration_every", 0, "Evaluations per island between migrations "
                       "(0 = never).", **kw)
  flags.DEFINE_integer("migration_size", 50, "Programs each island sends and receives at a "
                       "migration (the paper's 50).", **kw)


def define_hurdle_flags(fv: flags.FlagValues) -> None:
  """The flags of hurdles (REFERENCE.md §13.2)."""
  kw = {"flag_values": fv}
  flags.DEFINE_integer("hurdle_tasks", 0, "Hurdles: each child is evaluated on the first this "
                       "many search tasks and goes on to the others only if its fitness there "
                       "reaches its island's hurdle (0 = no hurdles).", **kw)
  flags.DEFINE_float("hurdle_percentile", 75.0, "The hurdle: this percentile of the distinct "
                     "hurdle-task fitness values of the island's population.", **kw)


def hurdle_settings(fv: flags.FlagValues) -> dict:
  """The SearchConfig fields of the hurdle flags."""
  return {"hurdle_tasks": fv.hurdle_tasks, "hurdle_percentile": fv.hurdle_percentile}


def define_cluster_flags(fv: flags.FlagValues) -> None:
  """The flags of a search on a Ray cluster (azero_jax/search/workers.py)."""
  kw = {"flag_values": fv}
  flags.DEFINE_string("ray_address", None, "Run the search on Ray workers: local (start Ray on "
                      "this machine), auto (the cluster this node belongs to), ray://HOST:PORT "
                      "or HOST:PORT (a head node). Needs pip install 'azero-jax[ray]'.", **kw)
  flags.DEFINE_integer("num_workers", 1, "Ray workers, each a process searching its "
                       "num_islands islands; they migrate through a pool with migration_every "
                       "and migration_size (needs --ray_address).", **kw)
  flags.DEFINE_float("worker_cpus", 1.0, "CPUs each Ray worker asks for.", **kw)
  flags.DEFINE_float("worker_gpus", 0.0, "GPUs each Ray worker asks for (1: a worker per "
                     "GPU).", **kw)


def cluster_from_flags(fv: flags.FlagValues = flags.FLAGS):
  """The `workers.ClusterSpec` the flags ask for, checked (None without --ray_address); raises
  ValueError naming the flag. Imports Ray only when asked for."""
  if fv.ray_address is None:
    given = [name for name in ("num_workers", "worker_cpus", "worker_gpus") if fv[name].present]
    if given:
      raise ValueError(f"--{given[0]} needs --ray_address")
    return None
  try:
    from azero_jax.search import workers
  except ModuleNotFoundError as error:
    if error.name != "ray":
      raise
    raise ValueError("--ray_address: Ray is not installed: pip install 'azero-jax[ray]'") from None
  spec = workers.ClusterSpec(fv.ray_address, fv.num_workers, fv.worker_cpus, fv.worker_gpus)
  workers.check(spec)
  return spec


def island_settings(fv: flags.FlagValues) -> dict:
  """The SearchConfig fields of the island flags."""
  return {"num_islands": fv.num_islands, "fec_scope": fv.fec_scope,
          "migration_every": fv.migration_every, "migration_size": fv.migration_size}


def _task_spec(flag: str, spec: TaskSpec, fv: flags.FlagValues) -> TaskSpec:
  """`spec` read from --dataset_dir's CIFAR-10 in place of the digits, its data checked."""
  if fv.dataset_dir and spec.family == "binary_digits":
    spec = spec.replace(family="binary_cifar10", dataset_dir=fv.dataset_dir)
  _named(flag, TaskSpec.check_data, spec)
  return spec


def _sizes(fv: flags.FlagValues, kind: str) -> tuple[int, int, int]:
  return tuple(fv[f"{name}_size_{kind}"].value for name in COMPONENT_NAMES)


def _named(flag: str, parse, value):
  """Parses one flag value, naming the flag in the error."""
  try:
    return parse(value)
  except ValueError as error:
    raise ValueError(f"--{flag}: {error}") from None


def config_from_flags(fv: flags.FlagValues = flags.FLAGS) -> SearchConfig:
  """The SearchConfig the flags describe; raises ValueError naming the first bad flag."""
  op_lists = tuple(_named(f"{n}_ops", parse_op_list, fv[f"{n}_ops"].value)
                   for n in COMPONENT_NAMES)
  fec = None
  if fv.fec:
    fec = FecSpec(fv.fec_num_train_examples, fv.fec_num_valid_examples, fv.fec_cache_size,
                  fv.fec_forget_every)
  budget = (_named("train_budget", InitModel.parse, fv.train_budget)
            if fv.train_budget else None)
  if fv.dataset_dir:
    _named("dataset_dir", lambda path: source_files("cifar10", path), fv.dataset_dir)
  mix = ()
  if fv.search_task_mix is not None:
    mix = tuple(_task_spec("search_task_mix", spec, fv)
                for spec in mix_from_flags("search_", fv.search_task_mix, fv))
  tasks = [mix[0] if prefix == "search_" and mix else
           _task_spec(f"{prefix}task", spec_from_flags(prefix, fv), fv)
           for prefix in TASK_PREFIXES]
  lower_bounds = {**dict.fromkeys(("num_scalars", "num_vectors", "num_matrices"), 1),
                  **{f"{n}_size_{k}": 0 for n in COMPONENT_NAMES for k in ("init", "min", "max")}}
  for name, low in lower_bounds.items():
    if fv[name].value < low:
      raise ValueError(f"--{name} must be >= {low}, got {fv[name].value}")
  return SearchConfig(
      search_tasks=tasks[0], select_tasks=tasks[1], final_tasks=tasks[2],
      memory=Memory(fv.num_scalars, fv.num_vectors, fv.num_matrices), op_lists=op_lists,
      init_model=_named("initial_population", InitModel.parse, fv.initial_population),
      init_sizes=_sizes(fv, "init"), min_sizes=_sizes(fv, "min"), max_sizes=_sizes(fv, "max"),
      mutation_types=_named("mutation_types", parse_mutation_types, fv.mutation_types),
      mutate_prob=fv.mutate_prob, paper_mutations=fv.paper_mutations,
      population_size=fv.population_size, tournament_size=fv.tournament_size,
      batch_size=fv.batch_size, progress_every=fv.progress_every,
      max_train_steps=fv.max_train_steps, fec=fec, train_budget=budget,
      train_budget_threshold_factor=fv.train_budget_threshold_factor,
      combination=fv.fitness_combination, max_experiments=fv.max_experiments,
      random_seed=fv.random_seed, randomize_task_seeds=fv.randomize_task_seeds,
      sufficient_fitness=fv.sufficient_fitness, stop_search_at=fv.stop_search_at,
      strategy=fv.strategy, success_fitness=fv.success_fitness, dtype=fv.dtype,
      max_abs_error=fv.max_abs_error,
      search_task_mix=mix, **island_settings(fv), **hurdle_settings(fv))


def cluster_search(config, spec, directory: run_dir.RunDirectory | None, write,
                   fv: flags.FlagValues = flags.FLAGS):
  """Connects to the cluster of `spec` (checking that it can place the workers) and returns the
  search that runs there; raises ValueError naming the flag."""
  from azero_jax.search import workers
  workers.connect(spec)
  return workers.ClusterSearch(
      config, spec, write, log=directory.log_progress if directory else lambda _: None,
      run_path=directory.path if directory else None,
      checkpoint_every=fv.checkpoint_every, checkpoint_every_secs=fv.checkpoint_every_secs)


def main(argv: list[str]) -> int:
  # The run's lines go to stdout; Ray prints its own messages (a restarted worker, ...) to
  # whatever sys.stdout is, which becomes stderr for a run on Ray.
  write = functools.partial(print, file=sys.stdout, flush=True)
  try:
    config = config_from_flags()
    directory = run_dir.from_flags(config)
    spec = cluster_from_flags()
    search = cluster_search(config, spec, directory, write) if spec else None
  except ValueError as error:
    raise cli.UserError(str(error)) from None
  if directory:
    directory.stop.install()
  try:
    with contextlib.redirect_stdout(sys.stderr if spec else sys.stdout):
      run(config, write, hooks=directory, resume=directory.resume if directory else None,
          search=search)
  except run_dir.DirectoryInUse as error:  # taken by another run since from_flags checked it
    raise cli.UserError(str(error)) from None
  except run_dir.Interrupted as stop:
    sys.stderr.write(f"run_search: {stop}; continue with the same flags and --resume\n")
    return 128 + stop.signum
  finally:
    if directory:
      directory.close()
  return 0


if __name__ == "__main__":
  define_flags()
  cli.run(main)
