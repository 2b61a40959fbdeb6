"""Evolution versus random search on one setting, over several seeds, with a table and plots.

  python -m experiments.compare --flagfile=experiments/configs/demo.flags --seeds=5 \
      --random_seed=1 --output_dir=results/demo

Takes every flag of experiments.run_search (so its flag files work) plus the ones below. Both
strategies get the same tasks, memory, op lists, sizes and budget per run (--evaluations programs,
or with --budget=train_steps the driver's --max_train_steps); each (strategy, seed) is one
experiment on T_search (no T_select stage: --max_experiments and
--sufficient_fitness are ignored). A run succeeds when a program's search fitness exceeds
--success_fitness. Writes results.json, results.md and the PNG plots to --output_dir, and prints
progress lines with an ETA.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from absl import flags

from azero_jax import cli, device, files
from azero_jax.analysis import comparison as cmp
from azero_jax.analysis import experiment, plots, report
from azero_jax.analysis.references import REFERENCES, reference
from azero_jax.tasks.collections import TaskCollections
from azero_jax.tasks.datasets import DatasetError
from experiments import run_search


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
  """run_search's flags and the comparison's, on `fv`."""
  run_search.define_flags(fv, run_directory=False)
  kw = {"flag_values": fv}
  flags.DEFINE_string("output_dir", None, "Folder for results.json, results.md and the plots.",
                      **kw)
  flags.DEFINE_bool("overwrite", False, "Replace the results in a non-empty --output_dir.", **kw)
  flags.DEFINE_integer("seeds", 5, "Runs per strategy; seed i is --random_seed + i.",
                       lower_bound=1, **kw)
  flags.DEFINE_enum("budget", "evaluations", ["evaluations", "train_steps"], "What every run "
                    "gets the same of: evaluated programs (the paper's measure) or train steps "
                    "(--max_train_steps, checked after each sweep as in run_search).", **kw)
  flags.DEFINE_bool("stop_at_success", False, "End a run at the end of the sweep in which it "
                    "first beats --success_fitness (saves time; per-program counts then stop "
                    "there too).", **kw)
  flags.DEFINE_bool("repeat_experiments", False, "With --budget=evaluations: a run is "
                    "run_search's repeated experiments, the search starting afresh (new "
                    "population and FEC cache, same T_search) each time an experiment has used "
                    "--max_train_steps.", **kw)
  flags.DEFINE_integer("evaluations", 0, "Programs evaluated per run, for every strategy (0 = "
                       "what --max_train_steps pays for without FEC).", lower_bound=0, **kw)
  flags.DEFINE_list("strategies", list(cmp.STRATEGIES), "Strategies to run.", **kw)
  flags.DEFINE_enum("reference", None, list(REFERENCES), "Hand-designed program evaluated "
                    "beside the searches; with --learn_only, its Setup and Predict are kept "
                    "fixed.", **kw)
  flags.DEFINE_bool("learn_only", False, "Search only Learn (setup_ops and predict_ops empty), "
                    "with Setup and Predict fixed to --reference's forward pass (paper §4.1).",
                    **kw)
  flags.DEFINE_bool("random_search_fec", False, "Give random search the FEC cache too (with "
                    "--fec); off by default since random programs seldom repeat.", **kw)
  flags.DEFINE_bool("baselines", False, "Also train the optax baselines on the final tasks and "
                    "report them beside the best evolved program.", **kw)
  flags.DEFINE_bool("plots", True, "Write fitness.png and success.png (needs matplotlib).", **kw)


def seeds_from_flags(fv: flags.FlagValues) -> list[int]:
  """--seeds consecutive seeds from --random_seed (0 = from the clock)."""
  base = fv.random_seed or int(time.time_ns() % (2**31 - 1 - fv.seeds)) + 1
  return [base + i for i in range(fv.seeds)]


def setting_from_flags(fv: flags.FlagValues) -> tuple[cmp.Comparison, TaskCollections, list[int]]:
  """The comparison the flags describe; ValueError naming the first bad flag."""
  for strategy in fv.strategies:
    if strategy not in cmp.STRATEGIES:
      raise ValueError(f"--strategies: unknown {strategy!r}, expected some of "
                       f"{', '.join(cmp.STRATEGIES)}")
  config = run_search.config_from_flags(fv)
  for flag, value in (("hurdle_tasks", config.hurdle_tasks),
                      ("search_task_mix", config.search_task_mix)):
    if value:
      raise ValueError(f"--{flag}: experiments.compare runs without hurdles and task mixes; "
                       "use experiments.run_search or experiments.study (paper_method_ablation)")
  program = reference(fv.reference) if fv.reference else None
  collections = TaskCollections(config.search_tasks, config.select_tasks, config.final_tasks,
                                config.randomize_task_seeds)
  seeds = seeds_from_flags(fv)
  steps = config.max_train_steps if fv.budget == "train_steps" else None
  if steps and fv.evaluations:
    raise ValueError("--evaluations: not with --budget=train_steps (the budget is "
                     "--max_train_steps)")
  if steps and fv.repeat_experiments:
    raise ValueError("--repeat_experiments: only with --budget=evaluations (experiments end "
                     "after --max_train_steps each)")
  evaluations = None if steps else fv.evaluations or cmp.default_evaluations(
      config, collections.search_tasks(seeds[0] if collections.randomize else None))
  comparison = cmp.Comparison(
      config, evaluations, fv.success_fitness,
      cmp.base_program(config, program, fv.learn_only), fv.learn_only, program,
      fv.random_search_fec, steps, fv.stop_at_success, fv.repeat_experiments)
  return comparison, collections, seeds


def group_label(setting: dict) -> str:
  """The task family, marked when only Learn was searched."""
  family = setting["search_tasks"].split(":")[0]
  return f"{family}, learn only" if setting["learn_only"] else family


def write_plots(results: dict, folder: Path) -> list[str]:
  """fitness.png and success.png next to results.json; returns their names."""
  histories: dict[str, list] = {}
  for run in results["runs"]:
    histories.setdefault(run["strategy"], []).append(run["history"])
  setting = results["setting"]
  plots.fitness_plot(histories, folder / "fitness.png", threshold=setting["threshold"],
                     title=f"{group_label(setting)}: fitness over evaluations "
                           f"({len(setting['seeds'])} seeds)")
  plots.success_plot([(group_label(setting), results["strategies"])], folder / "success.png")
  return ["fitness.png", "success.png"]


def run(fv: flags.FlagValues, write: Callable[[str], None]) -> dict:
  """Runs the comparison the flags describe and writes its files; returns the results.

  Raises cli.UserError for a bad flag, a bad output folder, missing matplotlib or data.
  """
  if not fv.output_dir:
    raise cli.flag_error("output_dir", "required: the folder for the results")
  try:
    comparison, collections, seeds = setting_from_flags(fv)
    if fv.plots:
      plots.pyplot()
  except (ValueError, plots.PlotsUnavailable) as error:
    raise cli.UserError(str(error)) from None
  try:
    folder = report.prepare_output_dir(fv.output_dir, fv.overwrite)
  except ValueError as error:
    raise cli.flag_error("output_dir", str(error)) from None
  write(f"compare: {', '.join(fv.strategies)} on {collections.search.to_string()}, "
        f"budget per run: {report.budget(comparison.evaluations, comparison.max_train_steps)}, "
        f"seeds {seeds}")
  try:
    results = experiment.run_comparison(
        comparison, collections, seeds, fv.strategies, reference_name=fv.reference,
        progress_every=fv.progress_every, write=write)
    if fv.baselines:
      from azero_jax.analysis import baselines

      results["baselines"] = baselines.run_baselines(
          collections.final_tasks(), collections.select_tasks(seeds[0]), tuned_on="T_select")
  except DatasetError as error:
    raise cli.UserError(str(error)) from None
  results["device"] = device.describe()
  results["command"] = sys.argv
  names = write_plots(results, folder) if fv.plots else []
  files.write_atomic(folder / "results.json", report.to_json(results))
  files.write_atomic(folder / "results.md", report.markdown(results, names))
  return results


def main(argv):
  print(device.describe(), flush=True)
  results = run(flags.FLAGS, lambda line: print(line, flush=True))
  print(report.markdown(results), end="")


if __name__ == "__main__":
  define_flags()
  cli.run(main)
