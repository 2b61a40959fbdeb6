"""Evaluates a program file on a task collection and prints the per-task fitness.

  python -m experiments.evaluate --program=FILE --task=linear --features=4 --num_tasks=100 \
      --num_train_examples=1000 --num_valid_examples=100 \
      --num_scalars=5 --num_vectors=9 --num_matrices=2 --dtype=float64

The last line printed is `mean fitness = <value>`.
"""

from __future__ import annotations

from absl import flags

from azero_jax import cli, device, evaluator
from azero_jax.tasks.spec import define_task_flags, spec_from_flags

flags.DEFINE_string("program", None, "File with the program in its readable text form.")
flags.DEFINE_integer("num_scalars", 4, "Scalar registers (s0 = label, s1 = prediction).",
                     lower_bound=2)
flags.DEFINE_integer("num_vectors", 3, "Vector registers (v0 = features).", lower_bound=1)
flags.DEFINE_integer("num_matrices", 1, "Matrix registers.", lower_bound=0)
flags.DEFINE_enum("dtype", "float32", sorted(evaluator.DTYPES), "Floating-point type.")
flags.DEFINE_integer("seed", 0, "Seed of the random-draw ops.")
flags.DEFINE_float("max_abs_error", 100.0, "Abort when |label - prediction| exceeds this.",
                   lower_bound=0.0)
define_task_flags()
FLAGS = flags.FLAGS


def main(argv):
  program = cli.load_program(FLAGS.program,
                             memory=(FLAGS.num_scalars, FLAGS.num_vectors, FLAGS.num_matrices))
  try:
    spec = spec_from_flags()
  except ValueError as error:  # a bad task flag (named)
    raise cli.UserError(str(error)) from None
  try:
    tasks = spec.build()
  except ValueError as error:  # a dataset or data file
    raise cli.flag_error("task", str(error)) from None
  print(device.describe(), flush=True)
  fitness = evaluator.evaluate([program], tasks, num_scalars=FLAGS.num_scalars,
                               num_vectors=FLAGS.num_vectors, num_matrices=FLAGS.num_matrices,
                               dtype=FLAGS.dtype, seed=FLAGS.seed,
                               max_abs_error=FLAGS.max_abs_error)[0]
  for index, (task, value) in enumerate(zip(tasks, fitness)):
    print(f"task {index} ({task.name or spec.family}): fitness = {value:.9g}")
  print(f"mean fitness = {fitness.mean():.9g}")


if __name__ == "__main__":
  cli.run(main)
