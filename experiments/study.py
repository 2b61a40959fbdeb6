"""The paper's studies: §4.1 difficulty (evolution versus random search on four task types) and
the search-method ablation of Table S2.

  python -m experiments.study --output_dir=results/study
  python -m experiments.study --study=paper_method_ablation --output_dir=results/ablation

Runs experiments.compare on experiments/configs/study_{linear,affine}_{learn,full}.flags (linear
and affine regression; only Learn searched, or the whole algorithm), each into its own folder
under --output_dir, then writes study.md (one row per setting: success rates and the evolution /
random-search ratio), study.json and success.png. --seeds, --evaluations and --random_seed, when
given, override the flag files' values for every setting.

--study=paper_method_ablation runs experiments/configs/paper_method.flags (the paper's whole
method) with its parts switched on one after another, as Table S2: baseline (islands without
migration), +FEC, +migration, +task mix, +hurdles. Every variant gets the same train steps per
island (--train_steps, else the flag file's) on the same --seeds seeds, one experiment each, and
a warm-up run first (so its rate leaves out compilation). It writes results.json, results.md (best
select fitness, fraction of runs beating the optax 2-layer network on T_select, individuals/s,
evaluations, with 95% intervals) and beating_network.png.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

from absl import flags

from azero_jax import cli, device, files
from azero_jax.analysis import baselines, plots, report, stats
from azero_jax.search import driver
from azero_jax.search.driver import SearchConfig
from azero_jax.tasks.collections import TaskCollections
from experiments import compare, run_search

CONFIGS = Path(__file__).resolve().parent / "configs"
SETTINGS = ("linear_learn", "linear_full", "affine_learn", "affine_full")
STUDIES = ("difficulty", "paper_method_ablation")
NETWORK = baselines.MODEL_NAMES["mlp"]

flags.DEFINE_enum("study", "difficulty", STUDIES, "difficulty: the §4.1 settings; "
                  "paper_method_ablation: Table S2 on configs/paper_method.flags.")
flags.DEFINE_string("method_flags", str(CONFIGS / "paper_method.flags"), "paper_method_ablation: "
                    "the flag file of the whole method.")
flags.DEFINE_integer("train_steps", None, "paper_method_ablation: train steps per island and run "
                     "(default: the flag file's --max_train_steps).", lower_bound=1)

flags.DEFINE_string("output_dir", None, "Folder for the settings' folders and study.md.")
flags.DEFINE_bool("overwrite", False, "Replace the results in a non-empty --output_dir.")
flags.DEFINE_list("settings", list(SETTINGS), "Settings to run (configs/study_*.flags).")
flags.DEFINE_integer("seeds", None, "Runs per strategy (default: the flag files').", lower_bound=1)
flags.DEFINE_integer("evaluations", None, "Programs per run (default: the flag files').",
                     lower_bound=1)
flags.DEFINE_integer("random_seed", 1, "First seed of every setting.", lower_bound=1)
flags.DEFINE_bool("plots", True, "Write the PNG plots (needs matplotlib).")
FLAGS = flags.FLAGS


def setting_flags(name: str, folder: Path) -> flags.FlagValues:
  """The compare flags of one setting: its flag file plus this command's overrides."""
  path = CONFIGS / f"study_{name}.flags"
  if name not in SETTINGS:
    raise cli.flag_error("settings", f"unknown setting {name!r}, expected some of "
                         f"{', '.join(SETTINGS)}")
  argv = ["compare", f"--flagfile={path}", f"--output_dir={folder / name}",
          f"--random_seed={FLAGS.random_seed}", f"--overwrite={FLAGS.overwrite}",
          f"--plots={FLAGS.plots}"]
  argv += [f"--seeds={FLAGS.seeds}"] if FLAGS.seeds else []
  argv += [f"--evaluations={FLAGS.evaluations}"] if FLAGS.evaluations else []
  fv = flags.FlagValues()
  compare.define_flags(fv)
  fv(argv)
  return fv


def study_rows(results: dict[str, dict]) -> list[str]:
  """One row per setting."""
  number = report.number
  header = ("| setting | evaluations per run | evolution runs solved | random-search programs "
            "beating threshold | random-search per-program rate (95% CI) | evolution / random "
            "search (95% CI) | best fitness evolution / random | wall time |")
  rows = [header, "|" + "---|" * header.count(" | ") + "---|"]
  for name, r in results.items():
    evolution, random = r["strategies"]["evolution"], r["strategies"]["random"]
    ratio = r["ratio"]
    rows.append(
        f"| {name} | {r['setting']['evaluations_per_run']} | {evolution['run_successes']}/"
        f"{evolution['runs']} | {random['program_successes']}/{random['programs']} | "
        f"{number(random['program_success_rate'])} ({report.interval(random['program_success_ci95'])}) | "  # noqa: E501
        f"{number(ratio['value'])} ({report.interval(ratio['ci95'])}) | "
        f"{evolution['best_fitness_max']:.6f} / {random['best_fitness_max']:.6f} | "
        f"{r['seconds']:.0f} s |")
  return rows


def ablation_configs(full: SearchConfig) -> dict[str, SearchConfig]:
  """The parts of `full` (the whole method) switched on one after another, as Table S2."""
  config = dataclasses.replace(full, fec=None, migration_every=0, search_task_mix=(),
                               hurdle_tasks=0)
  parts = {"baseline": {}, "+FEC": {"fec": full.fec},
           "+migration": {"migration_every": full.migration_every},
           "+task mix": {"search_task_mix": full.search_task_mix},
           "+hurdles": {"hurdle_tasks": full.hurdle_tasks}}
  configs = {}
  for name, changes in parts.items():
    config = configs[name] = dataclasses.replace(config, **changes)
  return configs


def ablation_config(flag_file: str) -> SearchConfig:
  """The whole method from its flag file, with this command's budget and first seed."""
  if not Path(flag_file).is_file():
    raise cli.flag_error("method_flags", f"no flag file {flag_file}")
  fv = flags.FlagValues()
  run_search.define_flags(fv, run_directory=False)
  fv(["study", f"--flagfile={flag_file}", f"--random_seed={FLAGS.random_seed}",
      *([f"--max_train_steps={FLAGS.train_steps}"] if FLAGS.train_steps else [])])
  try:
    return run_search.config_from_flags(fv)
  except ValueError as error:
    raise cli.flag_error("method_flags", f"{flag_file}: {error}") from None


def network_fitness(config: SearchConfig) -> dict:
  """The optax baselines on T_select (learning rates tuned on T_search) and the best 2-layer
  network's fitness, the bar a run's best select fitness has to beat."""
  collections = TaskCollections(config.search_tasks, config.select_tasks, config.final_tasks,
                                randomize=False)
  trained = baselines.run_baselines(collections.select_tasks(), collections.search_tasks(),
                                    tuned_on="T_search")
  best = max((m for m in trained["models"] if m["model"] == NETWORK), key=lambda m: m["fitness"])
  return {**trained, "network_fitness": best["fitness"]}


def ablation_run(config: SearchConfig, seed: int) -> dict:
  """One run of one variant: its best select fitness, individuals and search time."""
  result = driver.run(dataclasses.replace(config, random_seed=seed), write=lambda _: None)
  individuals = sum(e.num_individuals for e in result.experiments)
  seconds = sum(e.seconds for e in result.experiments)
  return {"seed": seed, "select_fitness": result.select_fitness,
          "final_fitness": result.final_fitness, "evaluations": individuals,
          "train_steps": sum(e.train_steps for e in result.experiments), "seconds": seconds,
          "individuals_per_second": individuals / seconds,
          "fec_hit_rate": result.experiments[0].hit_rate,
          "program": result.best_program.to_text()}


def ablation_summary(runs: list[dict], network: float) -> dict:
  """Means with 95% t intervals over the runs, and the runs beating the network (Wilson)."""
  mean = lambda key: dict(zip(("mean", "ci95"), stats.mean_ci95([r[key] for r in runs])))
  beating = sum(r["select_fitness"] > network for r in runs)
  return {"runs": len(runs), "select_fitness": mean("select_fitness"),
          "select_fitness_max": max(r["select_fitness"] for r in runs),
          "final_fitness": mean("final_fitness"), "beating_network": beating,
          "beating_network_rate": beating / len(runs),
          "beating_network_ci95": stats.wilson(beating, len(runs)),
          "individuals_per_second": mean("individuals_per_second"),
          "evaluations": mean("evaluations")}


def run_ablation(full: SearchConfig, seeds: list[int], write: Callable[[str], None]) -> dict:
  """Every variant on every seed, after a one-sweep warm-up run of each."""
  start = time.monotonic()
  network = network_fitness(full)
  write(f"ablation: {NETWORK} on T_select: {network['network_fitness']:.6f}")
  results = {"variants": {}, "runs": []}
  for name, config in ablation_configs(full).items():
    ablation_run(dataclasses.replace(config, max_train_steps=1), seeds[0])  # compiles
    runs = []
    for seed in seeds:
      runs.append(ablation_run(config, seed))
      write(f"ablation: {name}, seed {seed}: select fitness {runs[-1]['select_fitness']:.6f}, "
            f"{runs[-1]['evaluations']} individuals, "
            f"{runs[-1]['individuals_per_second']:.0f}/s")
    results["variants"][name] = ablation_summary(runs, network["network_fitness"])
    results["runs"] += [{"variant": name, **run} for run in runs]
  results["baselines"] = network
  results["setting"] = {"seeds": seeds,
                        "train_steps_per_island": full.max_train_steps,
                        "num_islands": full.num_islands,
                        "search_task_mix": [s.to_string() for s in full.search_task_mix],
                        "select_tasks": full.select_tasks.to_string()}
  results["seconds"] = time.monotonic() - start
  return results


def ablation_rows(results: dict) -> list[str]:
  """The Table S2-style table: one row per variant."""
  number, network = report.number, results["baselines"]["network_fitness"]
  header = ("| variant | best select fitness, mean (95% CI) | max | runs beating the 2-layer "
            f"network ({network:.4f}) (95% CI) | individuals/s (95% CI) | evaluations (95% CI) |")
  rows = [header, "|" + "---|" * header.count(" | ") + "---|"]
  for name, v in results["variants"].items():
    rows.append(
        f"| {name} | {v['select_fitness']['mean']:.4f} "
        f"({report.interval(v['select_fitness']['ci95'])}) | {v['select_fitness_max']:.4f} | "
        f"{v['beating_network']}/{v['runs']} = {number(v['beating_network_rate'])} "
        f"({report.interval(v['beating_network_ci95'])}) | "
        f"{number(v['individuals_per_second']['mean'])} "
        f"({report.interval(v['individuals_per_second']['ci95'])}) | "
        f"{number(v['evaluations']['mean'])} ({report.interval(v['evaluations']['ci95'])}) |")
  return rows


def ablation_main() -> None:
  full = ablation_config(FLAGS.method_flags)
  seeds = [FLAGS.random_seed + i for i in range(FLAGS.seeds or 3)]
  try:
    if FLAGS.plots:
      plots.pyplot()
    folder = report.prepare_output_dir(FLAGS.output_dir, FLAGS.overwrite)
  except plots.PlotsUnavailable as error:
    raise cli.UserError(str(error)) from None
  except ValueError as error:
    raise cli.flag_error("output_dir", str(error)) from None
  device_line = device.describe()
  print(device_line, flush=True)
  results = run_ablation(full, seeds, lambda line: print(line, flush=True))
  results["device"] = device_line
  results["setting"]["flags"] = FLAGS.method_flags
  names = []
  if FLAGS.plots:
    plots.success_plot(
        [(name, {"evolution": {"run_success_rate": v["beating_network_rate"],
                               "run_success_ci95": v["beating_network_ci95"],
                               "run_successes": v["beating_network"], "runs": v["runs"]}})
         for name, v in results["variants"].items()],
        folder / "beating_network.png",
        title="Runs whose best program beats the 2-layer network on T_select (95% Wilson CI)")
    names = ["beating_network.png"]
  files.write_atomic(folder / "results.json", report.to_json(results))
  lines = ["# The paper's search method, part by part (Table S2)", "",
           f"{FLAGS.method_flags}, {full.num_islands} islands, "
           f"{full.max_train_steps:.3g} train steps per island and run, seeds {seeds}; each "
           "part is added to the ones above it.", "", *ablation_rows(results)]
  lines += ["", "Plots: " + ", ".join(f"[{n}]({n})" for n in names)] if names else []
  lines += ["", f"Total {results['seconds']:.0f} s on {device_line}."]
  files.write_atomic(folder / "results.md", "\n".join(lines) + "\n")
  print("\n".join(lines))


def main(argv):
  if not FLAGS.output_dir:
    raise cli.flag_error("output_dir", "required: the folder for the results")
  if FLAGS.study == "paper_method_ablation":
    return ablation_main()
  settings = [(name, setting_flags(name, Path(FLAGS.output_dir))) for name in FLAGS.settings]
  try:
    folder = report.prepare_output_dir(FLAGS.output_dir, FLAGS.overwrite)
  except ValueError as error:
    raise cli.flag_error("output_dir", str(error)) from None
  device_line = device.describe()
  print(device_line, flush=True)
  results = {}
  for name, fv in settings:
    print(f"study: setting {name}", flush=True)
    results[name] = compare.run(fv, lambda line: print(line, flush=True))
  if FLAGS.plots:
    plots.success_plot([(name, r["strategies"]) for name, r in results.items()],
                       folder / "success.png", title="Runs solved per task type (95% Wilson CI)")
  study = {"device": device_line, "settings": {name: {k: r[k] for k in
                                                       ("setting", "strategies", "ratio",
                                                        "seconds")}
                                                for name, r in results.items()}}
  files.write_atomic(folder / "study.json", report.to_json(study))
  total = sum(r["seconds"] for r in results.values())
  lines = ["# Difficulty study (paper §4.1): evolution vs random search", "",
           *study_rows(results), "",
           f"Ratio: {next(iter(results.values()))['ratio']['method']}.", "",
           f"Total {total:.0f} s on {device_line}."]
  files.write_atomic(folder / "study.md", "\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  cli.run(main)
