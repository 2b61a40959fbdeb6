"""The batched evaluator's public API and behaviour on the hand-written programs."""

import jax
import numpy as np
import pytest

from azero_jax import Program, Task, ops
from azero_jax import evaluator as ev
from azero_jax.evaluator import evaluate
from azero_jax.search.generator import LINEAR, InitModel, initial_program
from azero_jax.search.randomizer import Memory, Randomizer
from azero_jax.tasks.synthetic import linear_task

DEMO_MEMORY = dict(num_scalars=4, num_vectors=3, num_matrices=1)
NO_OP = Program.from_text(
    "def Setup():\n  NoOp()\ndef Predict():\n  NoOp()\ndef Learn():\n  NoOp()\n")


def test_linear_program_solves_linear_tasks():
  tasks = [linear_task(4, 1000, 100, param_seed=1000 + i, data_seed=11000 + i) for i in range(100)]
  fitness = evaluate([LINEAR, NO_OP], tasks, **DEMO_MEMORY, dtype="float64")
  assert fitness.shape == (2, 100)
  assert fitness[0].mean() > 0.9999
  assert fitness[1].mean() < 0.5


def balanced_accuracy_tasks(count, rng):
  tasks = []
  for _ in range(count):
    x = rng.standard_normal((60, 4))
    y = np.tile([0.0, 1.0], 30)
    tasks.append(Task.from_arrays(x[:40], y[:40], x[40:], y[40:], eval_type="accuracy"))
  return tasks


def test_no_op_program_scores_half_on_balanced_accuracy_tasks():
  # Training drives s1 to sigmoid's fixed point ~0.659 > 0: always the positive class.
  tasks = balanced_accuracy_tasks(5, np.random.default_rng(0))
  fitness = evaluate([NO_OP], tasks, **DEMO_MEMORY)
  np.testing.assert_array_equal(fitness, 0.5)


def test_mixed_task_shapes_are_grouped_and_match_per_task_calls():
  rng = np.random.default_rng(1)
  tasks = [linear_task(4, 30, 10, param_seed=1, data_seed=2),
           balanced_accuracy_tasks(1, rng)[0],
           linear_task(8, 50, 20, param_seed=3, data_seed=4, num_epochs=2)]
  together = evaluate([LINEAR, NO_OP], tasks, **DEMO_MEMORY, dtype="float64")
  for index, task in enumerate(tasks):
    alone = evaluate([LINEAR, NO_OP], [task], **DEMO_MEMORY, dtype="float64")
    np.testing.assert_allclose(together[:, index], alone[:, 0], atol=1e-12)


def test_new_programs_of_one_shape_compile_once():
  rng = np.random.default_rng(2)
  tasks = [linear_task(4, 20, 10, param_seed=i, data_seed=i) for i in range(3)]
  op_sets = ((56,), (27,), (2, 3, 18, 23))
  before = ev._evaluate_batch.num_executables()
  results = []
  for _ in range(10):
    lr = Program.from_text(f"def Setup():\n  s2 = {rng.uniform(0.01, 0.5):.3f}\n"
                           "def Predict():\ndef Learn():\n")
    population = [LINEAR.replace(setup=lr.setup)] * 5 + [NO_OP]
    results.append(evaluate(population, tasks, **DEMO_MEMORY, op_sets=op_sets))
  assert ev._evaluate_batch.num_executables() - before == 1
  assert len({round(float(r[0].mean()), 9) for r in results}) > 5  # really different programs


def test_rejects_bad_arguments():
  task = linear_task(4, 20, 10, param_seed=0, data_seed=0)
  with pytest.raises(ValueError, match="dtype"):
    evaluate([LINEAR], [task], **DEMO_MEMORY, dtype="float16")
  with pytest.raises(ValueError, match="v2.*only 2 vectors"):
    evaluate([LINEAR], [task], num_scalars=4, num_vectors=2, num_matrices=1)


def test_float32_and_float64_agree_on_a_stable_program():
  tasks = [linear_task(4, 200, 50, param_seed=i, data_seed=i) for i in range(4)]
  f32 = evaluate([LINEAR], tasks, **DEMO_MEMORY, dtype="float32")
  f64 = evaluate([LINEAR], tasks, **DEMO_MEMORY, dtype="float64")
  np.testing.assert_allclose(f32, f64, atol=1e-4)


def test_static_loops_match_dynamic_loops():
  """Loops to the padded width (the accelerator default) give the results of loops to the
  longest program, for programs shorter than the width and with random ops."""
  rng = np.random.default_rng(3)
  op_lists = ((56, 59, 62), (27, 2, 3), (2, 3, 18, 23, 57))
  randomizer = Randomizer(op_lists, Memory(4, 3, 1))
  programs = [LINEAR, NO_OP] + [initial_program(InitModel.RANDOM, sizes, randomizer, rng)
                                for sizes in ((3, 1, 5), (6, 2, 2), (1, 3, 7), (5, 1, 1))]
  tasks = ev.stack_tasks([linear_task(4, 12, 6, param_seed=i, data_seed=i) for i in range(3)])
  packed = ev.pack_population(programs, widths=(8, 4, 16))
  op_sets = tuple(ev.normalize_op_set(o) for o in op_lists)
  fitness = {}
  for static in (False, True):
    config = ev.Config(4, 3, 1, op_sets, dtype="float64", static_loops=static)
    result = ev.run_packed(config, packed, tasks, jax.random.key(0))
    fitness[static] = np.asarray(result.fitness)[:len(programs)]
  assert len(np.unique(fitness[False].round(9))) > 4  # the programs really differ
  np.testing.assert_allclose(fitness[True], fitness[False], atol=1e-12)


def test_a_key_folded_inside_the_call_gives_the_draws_of_a_key_folded_before():
  rng = np.random.default_rng(4)
  op_lists = ((56, 59, 62), (27, 2, 3), (2, 3, 18, 23, 57))
  randomizer = Randomizer(op_lists, Memory(4, 3, 1))
  programs = [initial_program(InitModel.RANDOM, (6, 2, 4), randomizer, rng) for _ in range(6)]
  tasks = ev.stack_tasks([linear_task(4, 12, 6, param_seed=i, data_seed=i) for i in range(3)])
  packed = ev.pack_population(programs, widths=(8, 4, 16))
  config = ev.Config(4, 3, 1, tuple(ev.normalize_op_set(o) for o in op_lists), dtype="float64")
  key = jax.random.key(5)
  folded = ev.run_packed(config, packed, tasks, key, fold=7).fitness
  before = ev.run_packed(config, packed, tasks, jax.random.fold_in(key, 7)).fitness
  other = ev.run_packed(config, packed, tasks, jax.random.fold_in(key, 8)).fitness
  np.testing.assert_array_equal(folded, before)
  assert not np.array_equal(before, other)  # the random ops really draw from the key


@pytest.mark.parametrize("execution", ev.EXECUTIONS[1:])
def test_results_do_not_depend_on_the_compiled_batch_size(execution):
  """Sums inside ops are explicit adds in a fixed order (the original's, ops._eigen_sum): XLA:CPU
  picks a reduction or dot kernel by size, which changed last bits with the batch size. Compact
  execution's row lists change with the batch too."""
  op_list = tuple(op.id for op in ops.OPS[1:] if ops.MATRIX in (op.output, *op.inputs))
  randomizer = Randomizer((op_list,) * 3, Memory(4, 3, 3))
  programs = randomizer.programs(initial_program(InitModel.NO_OP, (6, 4, 6)), 16,
                                 np.random.default_rng(3)).packed
  tasks = ev.stack_tasks([linear_task(4, 10, 10, param_seed=i, data_seed=i) for i in range(10)])
  config = ev.Config(4, 3, 3, (ev.normalize_op_set(op_list),) * 3, record_errors=True,
                     execution=execution)
  errors = {}
  for size in (16, 128, 256):
    result = ev.run_packed(config, ev.pad_population(programs, size), tasks, jax.random.key(0))
    errors[size] = np.concatenate([np.asarray(result.train_errors)[:16],
                                   np.asarray(result.valid_errors)[:16]], axis=-1)
  assert np.isfinite(errors[16]).mean() > 0.5  # mostly real errors, not aborted runs
  np.testing.assert_array_equal(errors[128], errors[16])
  np.testing.assert_array_equal(errors[256], errors[16])


ALL_OPS = tuple(range(1, ops.NUM_OPS))
TRANSCENDENTAL = {ops.OP_BY_NAME[f"SCALAR_{name}"].id
                  for name in ("SIN", "COS", "TAN", "ARCSIN", "ARCCOS", "ARCTAN", "EXP", "LOG")}


def all_op_programs(count: int, seed: int):
  """Random programs over all 64 ops (random draws included), with duplicates."""
  randomizer = Randomizer((ALL_OPS,) * 3, Memory(4, 3, 3))
  programs = randomizer.programs(initial_program(InitModel.NO_OP, (5, 6, 7)), count - 2,
                                 np.random.default_rng(seed))
  return [*programs, programs[0], programs[1]]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_compact_execution_gives_the_bits_of_select_execution(dtype):
  """Same fitness, steps and per-example errors, random draws included, for program i on task i
  and for every program on every task: to the last bit, except that XLA:CPU's transcendental
  functions (arctan seen) may round the last bit differently in the other execution's fusion."""
  programs = all_op_programs(24, seed=5)
  tasks = [linear_task(4, 12, 6, param_seed=i, data_seed=i) for i in range(24)]
  packed = ev.pack_population(programs, widths=(8, 8, 8))
  results = {}
  for execution in ("select", "compact"):
    config = ev.Config(4, 3, 3, (ALL_OPS,) * 3, dtype=dtype, record_errors=True,
                       execution=execution)
    for paired, batch in ((True, ev.stack_tasks(tasks + tasks[:8])),
                          (False, ev.stack_tasks(tasks[:3]))):
      result = ev.run_packed(config, packed, batch, jax.random.key(1), paired=paired)
      results[execution, paired] = [np.asarray(field) for field in result]
  transcendental = np.array([bool(p.ops_used() & TRANSCENDENTAL) for p in programs] + [False] * 8)
  assert 0 < transcendental.sum() < len(programs)
  for paired in (True, False):
    for select, compact in zip(results["select", paired], results["compact", paired]):
      np.testing.assert_array_equal(compact[~transcendental], select[~transcendental])
      # NaN (aborts) in the same places, values to the last bits.
      np.testing.assert_allclose(compact[transcendental], select[transcendental],
                                 rtol=1e-6 if dtype == "float32" else 1e-14, atol=0)
  fitness = results["select", False][0][:len(programs)]
  assert len(np.unique(fitness.round(9))) > 5 and (fitness > 0).sum() > 5  # programs differ
  steps = results["select", True][1]
  assert (steps < 12).sum() > 3  # some abort early: the row lists outlive their programs


def test_compact_execution_compiles_once_for_new_programs():
  """Row lists are data: populations with other ops at other slots reuse the compiled call."""
  tasks = ev.stack_tasks([linear_task(4, 8, 4, param_seed=i, data_seed=i) for i in range(2)])
  config = ev.Config(4, 3, 3, (ALL_OPS,) * 3, execution="compact")
  before = ev._evaluate_batch.num_executables()
  fitness = [np.asarray(ev.run_packed(config, ev.pack_population(all_op_programs(16, seed),
                                                                 widths=(8, 8, 8)),
                                      tasks, jax.random.key(0)).fitness)
             for seed in range(4)]
  assert ev._evaluate_batch.num_executables() - before == 1
  assert len({f.tobytes() for f in fitness}) == 4


def test_slot_plans_list_work_items_per_shard():
  text = ("def Setup():\n  m0 = matmul(m1, m2)\n  m1 = m0 + m2\n  s1 = mean(m0)\n"
          "def Predict():\ndef Learn():\n")
  matmul_sum_mean = Program.from_text(text)
  sum_only = Program.from_text("def Setup():\n  m1 = m0 + m2\ndef Predict():\ndef Learn():\n")
  empty = NO_OP
  packed = ev.pack_population([matmul_sum_mean, sum_only, empty, matmul_sum_mean],
                              widths=(3, 1, 1), population_bucket=4)
  op_set = ev.normalize_op_set([43, 39, 51, 2, 27])
  assert ev.op_families(op_set) == ((2,), (27,), (39,), (43,), (51,))
  setup = ev.slot_plans(packed, (op_set, (), ()), num_shards=2)[0]
  chunk = ev.ROWS_PER_CHUNK
  capacity = 1 + 5  # ceil(2 rows / chunk) + 5 families
  assert setup.families.shape == (2, 3, capacity) and setup.rows.shape == (2, 3, capacity, chunk)
  # Shard 0 holds programs 0 and 1, shard 1 programs 2 and 3 (local rows 0 and 1; 2 = dummy).
  np.testing.assert_array_equal(setup.counts, [[2, 1, 1], [1, 1, 1]])
  np.testing.assert_array_equal(setup.families[0, :, :2], [[2, 3], [2, 0], [4, 0]])
  np.testing.assert_array_equal(setup.families[1, :, :1], [[3], [2], [4]])
  np.testing.assert_array_equal(setup.rows[0, :, :2, :2], [[[1, 2], [0, 2]], [[0, 2], [2, 2]],
                                                           [[0, 2], [2, 2]]])
  np.testing.assert_array_equal(setup.rows[1, :, 0, :2], [[1, 2], [1, 2], [1, 2]])
  # A family with more rows than a chunk takes several items.
  many = ev.slot_plans(ev.pack_population([sum_only] * 12, widths=(1, 1, 1),
                                          population_bucket=12), (op_set, (), ()))[0]
  np.testing.assert_array_equal(many.counts, [[2]])
  np.testing.assert_array_equal(many.families[0, 0, :2], [2, 2])
  np.testing.assert_array_equal(many.rows[0, 0, :2], [list(range(8)), [8, 9, 10, 11] + [12] * 4])


def test_cost_model_selects_for_the_demo_and_compacts_all_ops():
  demo = ev.Config(4, 3, 1, (ev.normalize_op_set((56, 27, 2, 3, 18, 23)),) * 3)
  all_ops = ev.Config(4, 3, 3, (ALL_OPS,) * 3)
  chosen = {}
  for name, config, programs, features in (
      ("demo", demo, [LINEAR] * 16, 4), ("all_ops", all_ops, all_op_programs(16, seed=0), 16),
      ("empty demo", demo, [NO_OP] * 16, 4), ("empty all_ops", all_ops, [NO_OP] * 16, 16)):
    packed = ev.pack_population(programs, widths=(8, 8, 8))
    counts = tuple(int(c.length.max()) for c in packed)
    chosen[name] = ev.choose_execution(config, features, packed,
                                       ev.slot_plans(packed, config.op_sets), counts)
  # Empty programs (nothing to run either way) keep the execution the op sets call for, so that
  # a search does not compile the other one for them.
  assert chosen == {"demo": "select", "all_ops": "compact", "empty demo": "select",
                    "empty all_ops": "compact"}
  assert ev.choose_execution(demo, 4) == "select" and ev.choose_execution(all_ops, 16) == "compact"
  with pytest.raises(ValueError, match="execution"):
    ev.run_packed(demo._replace(execution="fast"), ev.pack_population([LINEAR]),
                  ev.stack_tasks([linear_task(4, 8, 4, param_seed=0, data_seed=0)]),
                  jax.random.key(0))
