"""Output files of a comparison: the output folder, atomic writes, results.json and results.md."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

STRATEGY_NAMES = {"evolution": "evolution", "random": "random search"}


def prepare_output_dir(path: str | os.PathLike, overwrite: bool) -> Path:
  """Creates the folder; refuses an existing non-empty one unless `overwrite`, and one that cannot
  be written (creating nothing then)."""
  folder = Path(path)
  if folder.exists() and not folder.is_dir():
    raise ValueError(f"{folder} exists and is not a folder")
  if folder.is_dir() and any(folder.iterdir()) and not overwrite:
    raise ValueError(f"{folder} is not empty: pass --overwrite to replace its results")
  existing = next(p for p in (folder, *folder.absolute().parents) if p.exists())
  if not os.access(existing, os.W_OK | os.X_OK):
    raise ValueError(f"{folder}: cannot write in {existing}")
  folder.mkdir(parents=True, exist_ok=True)
  return folder


def jsonable(value):
  """Nested data with tuples as lists and non-finite floats as the strings "inf", "nan"."""
  if isinstance(value, dict):
    return {str(k): jsonable(v) for k, v in value.items()}
  if isinstance(value, list | tuple):
    return [jsonable(v) for v in value]
  if isinstance(value, float) and not math.isfinite(value):
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
  if hasattr(value, "item"):  # NumPy scalars
    return jsonable(value.item())
  return value


def to_json(results: dict) -> str:
  return json.dumps(jsonable(results), indent=1) + "\n"


def number(value) -> str:
  """Compact numbers: 0.95, 4800, 1.20e-05, inf; '-' for None, 'n/a' for nan."""
  if value is None:
    return "-"
  if isinstance(value, int):
    return str(value)
  if not math.isfinite(value):
    return "n/a" if math.isnan(value) else "inf"
  if abs(value) >= 1e7 or (value != 0 and abs(value) < 1e-3):
    return f"{value:.2e}"
  return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def interval(bounds) -> str:
  return f"{number(bounds[0])}-{number(bounds[1])}"


def fitness(value) -> str:
  return "-" if value is None else f"{value:.6f}"


def seconds(value) -> str:
  return "-" if value is None else f"{value:.1f} s"


def strategy_rows(results: dict) -> list[str]:
  """The per-strategy table."""
  header = ("| strategy | runs solved | run success rate (95% CI) | programs beating threshold | "
            "per-program rate (95% CI) | median evals to threshold | median time to threshold | "
            "best fitness median / max | final fitness of best (median) | evals/s |")
  rows = [header, "|" + "---|" * header.count(" | ") + "---|"]
  for name, s in results["strategies"].items():
    rows.append(
        f"| {STRATEGY_NAMES[name]} | {s['run_successes']}/{s['runs']} | "
        f"{number(s['run_success_rate'])} ({interval(s['run_success_ci95'])}) | "
        f"{s['program_successes']}/{s['programs']} | {number(s['program_success_rate'])} "
        f"({interval(s['program_success_ci95'])}) | "
        f"{number(s['median_evaluations_to_threshold'])} | "
        f"{seconds(s['median_seconds_to_threshold'])} | "
        f"{fitness(s['best_fitness_median'])} / {fitness(s['best_fitness_max'])} | "
        f"{fitness(s['final_fitness_of_best_median'])} | {number(s['evaluations_per_second'])} |")
  return rows


def baseline_rows(baselines: dict) -> list[str]:
  rows = ["| model | optimizer | learning rate | final-task fitness (mean +- s.e.) |",
          "|---|---|---|---|"]
  for entry in baselines["models"]:
    rows.append(f"| {entry['model']} | {entry['optimizer']} | {entry['learning_rate']:g} | "
                f"{entry['fitness']:.6f} +- {entry['fitness_sem']:.2g} |")
  return rows


def budget(evaluations: int | None, max_train_steps: int | None) -> str:
  """The budget per run in words."""
  if max_train_steps:
    return f"{max_train_steps:.3g} train steps (checked at the end of each sweep)"
  return f"{evaluations} evaluations"


def markdown(results: dict, plots: list[str] = ()) -> str:
  """results.md: the setting, the per-strategy table, the ratio, reference and baselines."""
  setting = results["setting"]
  stop = " (and then stops at the end of its sweep)" if setting.get("stop_at_success") else ""
  if setting.get("repeat_experiments"):
    stop += (f". A run repeats experiments of {setting['experiment_train_steps']:.3g} train "
             "steps each (a fresh population and FEC cache each), as run_search does")
  lines = [f"# Evolution vs random search: `{setting['search_tasks']}`", "",
           f"Memory {setting['memory']}, initial sizes {setting['init_sizes']}, "
           f"P = {setting['population_size']}, T = {setting['tournament_size']}, "
           f"U = {setting['mutate_prob']}, budget per run: "
           f"{budget(setting['evaluations_per_run'], setting['max_train_steps'])}, "
           f"seeds {setting['seeds']}, learning-only: {setting['learn_only']}, FEC: "
           f"{setting['fec']} (random search: {setting['random_search_fec']}). A run succeeds "
           f"when a program's search fitness exceeds {setting['threshold']:g}{stop}.", ""]
  lines += strategy_rows(results)
  if "ratio" in results:
    ratio = results["ratio"]
    lines += ["", f"**Evolution / random-search success ratio: {number(ratio['value'])}** "
              f"(95% CI {interval(ratio['ci95'])}). {ratio['method']}."]
  if "reference" in results:
    reference = results["reference"]
    search = reference["search_fitness"]
    lines += ["", f"Hand-designed reference ({reference['name']}): search fitness "
              f"{min(search):.6f}-{max(search):.6f} over the seeds' T_search, final "
              f"{reference['final_fitness']:.6f}."]
  if "baselines" in results:
    baselines = results["baselines"]
    evolved = results["strategies"].get("evolution", {})
    lines += ["", "## Hand-designed baselines on the final tasks", "",
              f"Evolved programs (each run's best) on the same final tasks: median "
              f"{fitness(evolved.get('final_fitness_of_best_median'))}, best "
              f"{fitness(evolved.get('final_fitness_of_best_max'))}. "
              f"Learning rates chosen on {baselines['tuned_on']}.", ""]
    lines += baseline_rows(baselines)
  if plots:
    lines += ["", "Plots: " + ", ".join(f"[{p}]({p})" for p in plots)]
  device = results.get("device", "this machine")
  lines += ["", f"Total time {results['seconds']:.0f} s on {device}."]
  return "\n".join(lines) + "\n"
