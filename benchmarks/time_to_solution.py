"""Time to solution: whole runs of a flag file (default the demo) timed by seed, like run_demo.sh.

  python benchmarks/time_to_solution.py [--config=experiments/configs/demo.flags] [--seeds=1-10]
      [--variant=NAME:FLAGS ...] [--timeout=1800]

Each run is `python -m experiments.run_search --flagfile=CONFIG --random_seed=SEED FLAGS` in a
fresh process, timed with `/usr/bin/time` (wall, user and system seconds), so compilation and
start-up count as a user's run pays them. With several `--variant`s (e.g. `--variant=off:`
`--variant=hurdles:--hurdle_tasks=3`) each seed runs every variant in turn before the next seed,
so slow spells of a noisy machine fall on all variants alike. Prints one row per run (seed,
variant, experiments, individuals, wall, CPU use, final fitness) and each variant's median wall
time and experiments. A run that exceeds `--timeout` seconds is stopped and shown as such.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile

from absl import app, flags

flags.DEFINE_string("config", "experiments/configs/demo.flags", "The flag file of the runs.")
flags.DEFINE_string("seeds", "1-10", "Random seeds: a range A-B or a comma-separated list.")
flags.DEFINE_multi_string("variant", ["shipped:"], "NAME:FLAGS, the extra flags of a variant "
                          "(space-separated; empty for the flag file as shipped).")
flags.DEFINE_integer("timeout", 1800, "Seconds after which a run is stopped.")
FLAGS = flags.FLAGS
_TIMES = re.compile(r"^TIMES (\S+) (\S+) (\S+)$", re.M)


def parse_seeds(text: str) -> list[int]:
  """'1-10' or '1,3,5'."""
  if "-" in text:
    first, last = map(int, text.split("-"))
    return list(range(first, last + 1))
  return [int(seed) for seed in text.split(",")]


def timed_run(config: str, seed: int, extra: list[str], timeout: int) -> dict:
  """One run's experiments, individuals, wall/user/system seconds and final fitness."""
  with tempfile.TemporaryDirectory() as folder:
    command = ["/usr/bin/time", "-f", "TIMES %e %U %S", sys.executable, "-m",
               "experiments.run_search", f"--flagfile={config}", f"--random_seed={seed}",
               f"--run_dir={folder}/run", *extra]
    try:
      done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
      return {"timed_out": True}
  output = done.stdout
  times = _TIMES.search(done.stderr)
  final = re.search(r"Final evaluation fitness \(on unseen data\) = (\S+)", output)
  if done.returncode or not (times and final):
    raise RuntimeError(f"seed {seed} {extra}: exit {done.returncode}\n{done.stderr[-2000:]}")
  wall, user, system = map(float, times.groups())
  individuals = [int(n) for n in re.findall(r"^indivs=(\d+)", output, re.M)]
  return {"timed_out": False, "experiments": output.count("Experiment done."),
          "individuals": individuals[-1] if individuals else 0, "wall": wall,
          "cpu": (user + system) / wall, "final": float(final.group(1))}


def main(argv):
  del argv
  variants = [spec.partition(":") for spec in FLAGS.variant]
  rows = []
  print("| seed | variant | experiments | individuals (last progress line) | wall s | "
        "CPU use | final fitness |")
  print("|---:|---|---:|---:|---:|---:|---:|")
  for seed in parse_seeds(FLAGS.seeds):
    for name, _, extra in variants:
      row = timed_run(FLAGS.config, seed, extra.split(), FLAGS.timeout)
      rows.append((name, row))
      if row["timed_out"]:
        print(f"| {seed} | {name} | - | - | > {FLAGS.timeout} | - | stopped |", flush=True)
      else:
        print(f"| {seed} | {name} | {row['experiments']} | {row['individuals']:,} | "
              f"{row['wall']:.1f} | {row['cpu']:.2f} | {row['final']:.6f} |", flush=True)
  print()
  print("| variant | runs | median wall s | median experiments |")
  print("|---|---:|---:|---:|")
  for name, _, _ in variants:
    done = [row for variant, row in rows if variant == name]
    walls = [row["wall"] if not row["timed_out"] else float("inf") for row in done]
    experiments = [row["experiments"] for row in done if not row["timed_out"]]
    print(f"| {name} | {len(done)} | {statistics.median(walls):.1f} | "
          f"{statistics.median(experiments) if experiments else '-'} |")


if __name__ == "__main__":
  app.run(main)
