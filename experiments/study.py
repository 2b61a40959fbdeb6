"""The paper's §4.1 difficulty study: evolution versus random search on four task types.

  python -m experiments.study --output_dir=results/study

Runs experiments.compare on experiments/configs/study_{linear,affine}_{learn,full}.flags (linear
and affine regression; only Learn searched, or the whole algorithm), each into its own folder
under --output_dir, then writes study.md (one row per setting: success rates and the evolution /
random-search ratio), study.json and success.png. --seeds, --evaluations and --random_seed, when
given, override the flag files' values for every setting.
"""

from __future__ import annotations

from pathlib import Path

from absl import flags

from azero_jax import cli, device, files
from azero_jax.analysis import plots, report
from experiments import compare

CONFIGS = Path(__file__).resolve().parent / "configs"
SETTINGS = ("linear_learn", "linear_full", "affine_learn", "affine_full")

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


def main(argv):
  if not FLAGS.output_dir:
    raise cli.flag_error("output_dir", "required: the folder for the results")
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
