"""Hand-designed baselines (optax) on a task collection, beside an evolved program if given.

  python -m experiments.baselines \
      --task=binary_digits:features=16,num_tasks=100,held_out_pairs=all_but_recommended \
      --tuning_task=binary_digits:features=16,num_tasks=10 --program=best.txt

Logistic (or linear) regression and a 2-layer ReLU network with hidden size F, each trained with
SGD and Adam; the learning rate is chosen on --tuning_task (default: --task itself) and the
validation fitness on --task is printed (accuracy, or 1 - (2/pi) atan(RMSE)).
"""

from __future__ import annotations

from absl import flags

from azero_jax import cli, device, evaluator
from azero_jax.analysis import report
from azero_jax.analysis.baselines import run_baselines
from azero_jax.tasks.spec import define_task_flags, spec_from_flags

define_task_flags()
define_task_flags("tuning_")
flags.DEFINE_integer("epochs", 10, "Training epochs.", lower_bound=1)
flags.DEFINE_integer("batch_size", 16, "Mini-batch size.", lower_bound=1)
flags.DEFINE_integer("hidden", None, "Hidden units of the network (default F).", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Initialisation and shuffling seed.")
flags.DEFINE_string("program", None, "An evolved program file to score beside the baselines.")
flags.DEFINE_integer("num_scalars", 5, "Scalar registers of --program.", lower_bound=2)
flags.DEFINE_integer("num_vectors", 9, "Vector registers of --program.", lower_bound=1)
flags.DEFINE_integer("num_matrices", 2, "Matrix registers of --program.", lower_bound=0)
FLAGS = flags.FLAGS


def main(argv):
  program = (cli.load_program(FLAGS.program, memory=(FLAGS.num_scalars, FLAGS.num_vectors,
                                                     FLAGS.num_matrices))
             if FLAGS.program else None)
  try:
    tasks = spec_from_flags().build()
    tuning = spec_from_flags("tuning_").build() if FLAGS.tuning_task else tasks
  except ValueError as error:  # a bad task flag (named) or dataset file
    raise cli.UserError(str(error)) from None
  print(device.describe(), flush=True)
  results = run_baselines(tasks, tuning, tuned_on="--tuning_task" if FLAGS.tuning_task else
                          "--task itself (optimistic)", epochs=FLAGS.epochs,
                          batch_size=FLAGS.batch_size, hidden=FLAGS.hidden, seed=FLAGS.seed)
  print(f"{len(tasks)} tasks, learning rates chosen on {results['tuned_on']}, "
        f"{FLAGS.epochs} epochs, batch {FLAGS.batch_size}, hidden {results['hidden']}")
  print("\n".join(report.baseline_rows(results)))
  if program is not None:
    fitness = evaluator.evaluate([program], tasks, num_scalars=FLAGS.num_scalars,
                                 num_vectors=FLAGS.num_vectors, num_matrices=FLAGS.num_matrices,
                                 seed=FLAGS.seed)[0]
    sem = fitness.std(ddof=1) / len(fitness) ** 0.5 if len(fitness) > 1 else 0.0
    print(f"| evolved program ({FLAGS.program}) | - | - | {fitness.mean():.6f} +- {sem:.2g} |")


if __name__ == "__main__":
  cli.run(main)
