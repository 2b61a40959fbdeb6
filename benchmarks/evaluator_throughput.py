"""Throughput of the batched evaluator's two executions and of the NumPy interpreter, one run.

  python benchmarks/evaluator_throughput.py [--populations=1,32,256,1024,4096] [--repeats=3]
      [--clock=wall|cpu]

Prints one table row per (config, population size): individuals/s of the batched evaluator with
select execution (every op of the set computed at every slot) and with compact execution (each op
family only on its rows), which one the cost model picks, the NumPy interpreter's individuals/s
and the ratio of the faster execution to it. An individual is a full evaluation on every task of
the config, no cache. Configs:
  demo      REFERENCE.md §11.1: 6 ops, F=4, sizes 10/2/8, 10 tasks of 100 train + 100 valid.
  baseline  §11.2: F=16, sizes 6/10/22, 10 tasks of 8000 + 1000 examples.
  all_ops   §13.2 (experiments/configs/all_ops.flags): all 64 ops in every function, 8/14/3
            addresses, F=16, sizes 20/20/44 (the largest below 21/21/45), 10 tasks of 8000 + 1000.
The F=16 configs run on 10 tasks of --scale x (8000 + 1000) examples and are reported per
full-size individual.
"""

from __future__ import annotations

import time

import jax
import numpy as np
from absl import app, flags

from azero_jax import device
from azero_jax import evaluator as ev
from azero_jax.interpreter import interpret
from azero_jax.search.generator import InitModel, initial_program
from azero_jax.search.randomizer import Memory, Randomizer
from azero_jax.tasks.synthetic import linear_task

flags.DEFINE_list("populations", ["1", "32", "256", "1024", "4096"], "Population sizes.")
flags.DEFINE_integer("repeats", 3, "Timed repetitions per row (the median is reported).")
flags.DEFINE_float("scale", 0.02, "Fraction of the 8000+1000 examples of the F=16 configs used.")
flags.DEFINE_list("configs", ["demo", "baseline", "all_ops"], "Which configs to run.")
flags.DEFINE_enum("dtype", "float32", ["float32", "float64"], "Evaluator dtype.")
flags.DEFINE_enum("clock", "wall", ["wall", "cpu"],
                  "wall: elapsed seconds; cpu: this process's CPU seconds over all its threads "
                  "(steadier than wall time on a machine shared with other work).")
FLAGS = flags.FLAGS

CONFIGS = {
    "demo": dict(memory=(4, 3, 1), op_lists=((56, 27, 2, 3, 18, 23),) * 3, sizes=(10, 2, 8),
                 features=4, train=100, valid=100),
    "baseline": dict(memory=(5, 9, 2),
                     op_lists=((56, 62, 59, 63, 60, 64, 61), (1, 31, 48, 27, 23),
                               (1, 2, 3, 18, 23, 16, 25, 28, 39)),
                     sizes=(6, 10, 22), features=16, train=8000, valid=1000),
    "all_ops": dict(memory=(8, 14, 3), op_lists=(tuple(range(1, 65)),) * 3, sizes=(20, 20, 44),
                    features=16, train=8000, valid=1000),
}
EXECUTIONS = ("select", "compact")
NUM_TASKS = 10


def _clock() -> float:
  return time.process_time() if FLAGS.clock == "cpu" else time.perf_counter()


def _median_seconds(fn, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    start = _clock()
    fn()
    times.append(_clock() - start)
  return float(np.median(times))


def run_config(name: str, populations: list[int], repeats: int, scale: float):
  spec = CONFIGS[name]
  fraction = scale if spec["features"] == 16 else 1.0
  train, valid = max(10, int(spec["train"] * fraction)), max(1, int(spec["valid"] * fraction))
  tasks = [linear_task(spec["features"], train, valid, param_seed=i, data_seed=i)
           for i in range(NUM_TASKS)]
  randomizer = Randomizer(spec["op_lists"], Memory(*spec["memory"]))
  rng = np.random.default_rng(0)
  programs = [initial_program(InitModel.RANDOM, spec["sizes"], randomizer, rng)
              for _ in range(max(populations))]
  config = ev.Config(*spec["memory"], tuple(ev.normalize_op_set(o) for o in spec["op_lists"]),
                     dtype=FLAGS.dtype)
  batch = ev.stack_tasks(tasks)

  # The interpreter on a few programs: individuals/s at full size.
  sample = programs[:2]
  seconds = _median_seconds(lambda: [interpret(p, t, num_scalars=spec["memory"][0],
                                               num_vectors=spec["memory"][1],
                                               num_matrices=spec["memory"][2])
                                     for p in sample for t in tasks], 1)
  interpreter_rate = len(sample) / seconds * fraction

  rows = []
  for size in populations:
    packed = ev.pack_population(programs[:size], widths=spec["sizes"], population_bucket=size)
    counts = tuple(int(c.length.max(initial=0)) for c in packed)
    plans = ev.slot_plans(packed, config.op_sets, jax.device_count() if size % jax.device_count()
                          == 0 else 1)
    chosen = ev.choose_execution(config, spec["features"], packed, plans, counts)
    rates, compile_seconds = [], []
    for execution in EXECUTIONS:
      run = config._replace(execution=execution)

      def evaluate(packed=packed, run=run):
        ev.run_packed(run, packed, batch, jax.random.key(0)).fitness.block_until_ready()

      start = time.perf_counter()
      evaluate()
      compile_seconds.append(time.perf_counter() - start)
      rates.append(size / _median_seconds(evaluate, repeats) * fraction)
    rows.append((name, size, *rates, rates[1] / rates[0], chosen, interpreter_rate,
                 max(rates) / interpreter_rate, *compile_seconds))
  return rows


def main(argv):
  del argv
  print(device.describe())
  print(f"dtype {FLAGS.dtype}; {NUM_TASKS} tasks per individual; interpreter = NumPy, one "
        f"program at a time; {FLAGS.clock} clock")
  print("| config | population | select indiv/s | compact indiv/s | compact / select | "
        "cost model picks | interpreter indiv/s | faster / interpreter | first call select, "
        "compact (s) |")
  print("|---|---:|---:|---:|---:|---|---:|---:|---:|")
  for name in FLAGS.configs:
    for row in run_config(name, [int(p) for p in FLAGS.populations], FLAGS.repeats,
                          FLAGS.scale):
      print("| {} | {} | {:,.3g} | {:,.3g} | {:.2f}x | {} | {:,.3g} | {:,.0f}x | {:.1f}, {:.1f} "
            "|".format(*row), flush=True)


if __name__ == "__main__":
  app.run(main)
