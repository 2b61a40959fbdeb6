"""Search fitness: FEC in batches, dead-code sharing, train budget and step accounting."""

import jax
import numpy as np
import pytest

from azero_jax import evaluator
from azero_jax.program import Program, ProgramBatch
from azero_jax.search import fitness
from azero_jax.search.budget import TrainBudget
from azero_jax.search.fitness import (
  FecSpec,
  SearchEvaluator,
  combine,
  compact_bucket,
  fingerprint_task,
  finish,
  first_occurrences,
  length_groups,
  search_widths,
)
from azero_jax.search.generator import LINEAR, InitModel, initial_program
from azero_jax.search.mutator import MutationType, Mutator
from azero_jax.search.randomizer import Memory, Randomizer, read_columns
from azero_jax.tasks.spec import TaskSpec

OPS = (56, 27, 2, 3, 18, 23)  # the demo's ops
MEMORY = Memory(4, 3, 1)
SIZES = (10, 2, 8)
TASKS = TaskSpec.parse("linear:features=4,num_tasks=4,num_train_examples=30,"
                       "num_valid_examples=20").build()
NUM_TASKS, NUM_TRAIN = 4, 30
BATCH = 16
FEC = FecSpec()


def make(fec=FEC, **options):
  return SearchEvaluator(TASKS, memory=MEMORY, op_lists=(OPS,) * 3, widths=SIZES,
                         batch_size=BATCH, keys=jax.random.key(0), fec=fec, **options)


def program(setup="", predict="", learn=""):
  body = lambda text: "".join(f"  {line.strip()}\n" for line in text.split(";") if line.strip())
  return Program.from_text(f"def Setup():\n{body(setup)}def Predict():\n{body(predict)}"
                           f"def Learn():\n{body(learn)}")


def random_programs(count, seed):
  """Random demo programs and chains of mutants of the padded linear model (varied fitness)."""
  randomizer = Randomizer((OPS,) * 3, MEMORY)
  mutator = Mutator(randomizer, (MutationType.ALTER_PARAM,), 1.0)
  rng = np.random.default_rng(seed)
  programs = [initial_program(InitModel.RANDOM, SIZES, randomizer, rng) for _ in range(count // 4)]
  while len(programs) < count:
    programs.append(mutator.mutate(programs[-1] if rng.random() < 0.5 else LINEAR, rng))
  return programs


def direct_fitness(programs):
  per_task = evaluator.evaluate(programs, TASKS, num_scalars=4, num_vectors=3, num_matrices=1,
                                op_sets=(OPS,) * 3)
  return per_task.mean(axis=1)


def test_without_fec_fitness_equals_the_evaluator_on_unstripped_programs():
  programs = random_programs(BATCH, seed=0)
  result = make(fec=None).evaluate(programs)
  np.testing.assert_allclose(result.fitness, direct_fitness(programs), atol=1e-6)
  assert len(set(np.round(result.fitness, 6))) > 5  # not vacuous


def test_first_evaluation_costs_fingerprint_and_full_steps_then_hits_cost_fingerprints_only():
  search = make()
  first = search.evaluate([LINEAR])
  assert first.train_steps.tolist() == [NUM_TASKS * (10 + NUM_TRAIN)]
  assert len(search.caches) == 1  # one island
  assert search.caches[0].misses == NUM_TASKS and search.caches[0].hits == 0
  again = search.evaluate([LINEAR])
  assert again.train_steps.tolist() == [NUM_TASKS * 10]
  assert search.caches[0].hits == NUM_TASKS and search.full_evaluations == 1
  assert again.fitness[0] == first.fitness[0]
  assert first.fitness[0] == pytest.approx(direct_fitness([LINEAR])[0], abs=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])  # errors hashed in their own bits
def test_programs_differing_only_in_dead_code_share_one_entry(dtype):
  padded = initial_program(InitModel.LINEAR, SIZES)  # LINEAR plus NO_OPs
  dead = LINEAR.replace(learn=LINEAR.learn + program(learn="s3 = s0 * s0").learn,
                        predict=program(predict="s3 = dot(v0, v0)").predict + LINEAR.predict)
  search = make(dtype=dtype)
  result = search.evaluate([LINEAR, padded, dead])
  assert search.full_evaluations == 1 and search.fingerprint_runs == 1
  assert search.caches[0].hits == 2 * NUM_TASKS
  assert len(set(result.fitness)) == 1
  # Each program pays its fingerprint steps; only the first (the miss) pays a full run.
  assert result.train_steps.tolist() == [NUM_TASKS * (10 + NUM_TRAIN), NUM_TASKS * 10,
                                         NUM_TASKS * 10]


def test_programs_differing_only_in_columns_no_op_reads_share_one_memo_entry():
  """The memo hashes the table columns the search's ops can read (`read_columns`: the demo's
  ops have no f0-f2); a value left in another column changes nothing the evaluator computes."""
  assert read_columns(OPS) == 5 and read_columns([56]) == 5 and read_columns([2]) == 4
  packed = ProgramBatch.of([LINEAR, LINEAR], SIZES).packed
  packed.learn.table[1, 0, 6] = 0.5  # f1 of a SCALAR_DIFF
  search = make()
  result = search.evaluate(ProgramBatch(packed))
  assert search.fingerprint_runs == 1 and search.full_evaluations == 1
  assert result.fitness[0] == result.fitness[1]


def test_duplicates_in_a_batch_are_evaluated_once_and_count_as_hits():
  programs = random_programs(8, seed=1)
  batch = programs + programs[:4]
  search = make()
  result = search.evaluate(batch)
  np.testing.assert_array_equal(result.fitness[8:], result.fitness[:4])
  assert search.fingerprint_runs <= 8 and search.full_evaluations <= 8
  assert search.caches[0].hits >= 4 * NUM_TASKS


def test_forget_every_forces_a_new_evaluation():
  search = make(fec=FecSpec(forget_every=2))
  result = search.evaluate([LINEAR, LINEAR, LINEAR])
  # miss (count 1), hit (count 2: forgotten), miss again.
  assert (search.caches[0].misses, search.caches[0].hits) == (2 * NUM_TASKS, NUM_TASKS)
  assert search.full_evaluations == 2
  assert result.train_steps.tolist() == [NUM_TASKS * (10 + NUM_TRAIN), NUM_TASKS * 10,
                                         NUM_TASKS * (10 + NUM_TRAIN)]
  assert len(set(result.fitness)) == 1


def test_fec_fitness_matches_the_full_evaluation_on_misses():
  programs = random_programs(BATCH, seed=2)
  search = make()
  result = search.evaluate(programs)
  direct = direct_fitness(programs)
  # Lanes that missed are evaluated in full; hits reuse a fitness with the same fingerprint.
  assert np.mean(np.abs(result.fitness - direct) < 1e-6) > 0.5
  assert 0 < search.hit_rate < 1


def test_budget_is_decided_on_the_unstripped_program():
  # Six dead scalar products in Learn push the unstripped program's per-example cost past twice
  # LINEAR's, although its stripped form is LINEAR itself.
  budget = TrainBudget(LINEAR, threshold_factor=2.0)
  heavy = LINEAR.replace(learn=LINEAR.learn + (program(learn="s3 = s3 * s3").learn[0],) * 6)
  search = make(budget=budget)
  result = search.evaluate([heavy, LINEAR])
  assert result.fitness[0] == 0.0 and result.fitness[1] > 0.4
  # Both are fingerprinted; the rejected one trains 0 steps in its full run (and hashes N = 0).
  assert result.train_steps.tolist() == [NUM_TASKS * 10, NUM_TASKS * (10 + NUM_TRAIN)]
  assert search.caches[0].misses == 2 * NUM_TASKS


def test_aborted_runs_count_the_failing_step():
  # The prediction 1000 is off by more than 100 at the first step: both runs stop there.
  diverging = program(setup="s1 = 1000")
  for fec in (FEC, None):
    result = make(fec=fec).evaluate([diverging])
    assert result.fitness[0] == 0.0
    assert result.train_steps.tolist() == [NUM_TASKS * (2 if fec else 1)]


def test_batches_larger_than_batch_size_are_refused():
  with pytest.raises(ValueError, match="batch_size"):
    make().evaluate([LINEAR] * (BATCH + 1))


def test_combine_mean_and_upper_median():
  per_task = np.array([[0.1, 0.9, 0.5, 0.3], [1.0, 0.0, 0.0, 0.0]])
  np.testing.assert_allclose(combine(per_task, "mean"), [0.45, 0.25])
  np.testing.assert_allclose(combine(per_task, "median"), [0.5, 0.0])
  with pytest.raises(ValueError, match="combination"):
    make(combination="max")


def test_combine_with_a_mask_combines_each_row_over_its_tasks():
  per_task = np.array([[0.1, 0.9, 0.5, 0.3], [1.0, 0.0, 0.5, 0.0], [0.2, 0.4, 0.6, 0.8]])
  same = np.ones((3, 4), dtype=bool)
  np.testing.assert_array_equal(combine(per_task, "mean", same), combine(per_task, "mean"))
  np.testing.assert_allclose(combine(per_task, "mean", same & [True, True, False, False]),
                             [0.5, 0.5, 0.3])
  mixed = np.array([[True, True, False, False], [False, True, True, True],
                    [True, True, False, False]])
  np.testing.assert_allclose(combine(per_task, "mean", mixed), [0.5, 0.5 / 3, 0.3])
  np.testing.assert_allclose(combine(per_task, "median", mixed), [0.9, 0.0, 0.4])


def test_first_occurrences_in_order_of_appearance():
  keys = np.random.default_rng(0).integers(0, 4, (200, 2)).astype(np.uint64)
  first_seen = {}
  for row, key in enumerate(map(tuple, keys)):
    first_seen.setdefault(key, row)
  first, source = first_occurrences(keys)
  np.testing.assert_array_equal(first, sorted(first_seen.values()))
  np.testing.assert_array_equal(keys[first[source]], keys)
  assert [len(a) for a in first_occurrences(keys[:0])] == [0, 0]


def test_median_combination_in_the_evaluator():
  result = make(combination="median").evaluate([LINEAR, Program()])
  per_task = evaluator.evaluate([LINEAR, Program()], TASKS, num_scalars=4, num_vectors=3,
                                num_matrices=1, op_sets=(OPS,) * 3)
  np.testing.assert_allclose(result.fitness, np.sort(per_task, axis=1)[:, 2], atol=1e-6)


def test_compact_buckets_halve_the_batch_down_to_the_minimum():
  assert [compact_bucket(n, 1024) for n in (1, 16, 17, 33, 64, 65, 300, 513, 1024)] == [
      16, 16, 32, 64, 64, 128, 512, 1024, 1024]
  assert compact_bucket(3, 8) == 8
  assert (compact_bucket(50, 100), compact_bucket(51, 100)) == (50, 100)


def test_length_groups_split_the_rows_by_length_where_that_saves_work():
  rng = np.random.default_rng(0)
  empty = np.zeros((300, 3), np.int64)  # no Predict, no Learn
  full = np.tile([10, 2, 8], (300, 1))
  lengths = np.concatenate([empty, full])[rng.permutation(600)]
  groups = length_groups(lengths, (100, 100), 10, 1024)
  assert len(groups) == 2 and sorted(np.concatenate(groups)) == list(range(600))
  assert (lengths[groups[0]] == 0).all() and (lengths[groups[1]] == [10, 2, 8]).all()
  # Few rows: a second call would cost more than the slots it saves.
  assert len(length_groups(lengths[:20], (100, 100), 10, 1024)) == 1
  assert len(length_groups(full, (100, 100), 10, 1024)) == 1  # one length: one call
  mixed = rng.integers(0, [11, 3, 9], size=(900, 3))
  groups = length_groups(mixed, (100, 100), 10, 1024, max_groups=3)
  assert 2 <= len(groups) <= 3 and sorted(np.concatenate(groups)) == list(range(900))
  loops = [mixed[g, 1:].sum(axis=1) * 100 + mixed[g, 1] * 100 for g in groups]
  assert all(a.max() <= b.min() for a, b in zip(loops, loops[1:]))  # shortest first


def test_full_runs_split_by_length_give_what_one_call_gives(monkeypatch):
  """Each row keeps its island's key and call count whichever call runs it: with random draws
  in Learn, two islands' programs split into calls by length get the fitness of one call."""
  ops_ = (56, 27, 2, 3, 18, 23, 62)  # and SCALAR_GAUSSIAN_SET
  randomizer = Randomizer((ops_,) * 3, MEMORY)
  rng = np.random.default_rng(3)
  count = 64  # calls of 16 rows (the smallest bucket) then save work
  programs = [initial_program(InitModel.RANDOM, SIZES, randomizer, rng) for _ in range(count)]
  programs[:20] = [Program()] * 20  # empty: a class of their own
  islands = np.arange(count) % 2

  def evaluate():
    search = SearchEvaluator(TASKS, memory=MEMORY, op_lists=(ops_,) * 3, widths=SIZES,
                             batch_size=count, keys=jax.random.split(jax.random.key(1), 2))
    return [search.evaluate(programs, islands).fitness for _ in range(2)]  # two call counts

  monkeypatch.setattr(fitness, "ITERATION_LANES", 0)  # splitting costs only padding
  monkeypatch.setattr(fitness, "EXAMPLE_LANES", 0)
  calls, grouped = [], length_groups
  monkeypatch.setattr(fitness, "length_groups", lambda *args: calls.append(
      grouped(*args)) or calls[-1])
  split = evaluate()
  assert [len(groups) > 1 for groups in calls] == [True, True]
  monkeypatch.setattr(fitness, "length_groups", lambda lengths, *_: [np.arange(len(lengths))])
  whole = evaluate()
  for a, b in zip(split, whole):
    np.testing.assert_array_equal(a, b)
  assert len(set(np.round(whole[0], 6))) > 5 and not np.array_equal(whole[0], whole[1])


def test_fingerprint_task_takes_the_first_examples_in_stored_order():
  task = TASKS[0]
  short = fingerprint_task(task, 10, 10)
  np.testing.assert_array_equal(short.x_train, task.x_train[:10])
  np.testing.assert_array_equal(short.y_valid, task.y_valid[:10])
  assert short.num_epochs == 1 and list(short.orders[0]) == list(range(10))


def test_search_widths_cover_the_initial_program_and_insertions():
  assert search_widths(LINEAR, (0, 0, 0)) == (1, 1, 4)
  assert search_widths(LINEAR, (7, 11, 23)) == (6, 10, 22)


def test_a_fingerprint_does_not_depend_on_the_batch_that_computes_it():
  """Fingerprint runs use the batch's compact bucket, which is safe only because no result
  depends on the compiled batch size (BUILD_NOTES.md, "Summation order and shape-independent
  bits"): the same program gets the same errors (their keys' sums on the device) and steps alone
  (16 lanes) and in a batch of 250 (256 lanes)."""
  tasks = TaskSpec.parse("linear:features=4,num_tasks=10,num_train_examples=10,"
                         "num_valid_examples=10").build()
  search = SearchEvaluator(tasks, memory=MEMORY, op_lists=(OPS,) * 3, widths=SIZES,
                           batch_size=256, keys=jax.random.key(0), fec=FEC)
  randomizer = Randomizer((OPS,) * 3, MEMORY)
  batch = randomizer.programs(initial_program(InitModel.NO_OP, SIZES), 250,
                              np.random.default_rng(4)).packed
  run = lambda packed: search._collect_fingerprints(search._dispatch_fingerprints(packed),
                                                     packed.size)
  together = run(batch)
  alone = [run(batch.take(slice(row, row + 1))) for row in (0, 130, 249)]
  for row, (sums, steps) in zip((0, 130, 249), alone):
    np.testing.assert_array_equal(together[0][row], sums[0])
    np.testing.assert_array_equal(together[1][row], steps[0])
  assert (together[1] == 10).mean() > 0.5  # mostly whole runs, not aborted ones
  assert np.unique(together[0]).size > 100  # distinct programs, distinct errors


def test_interleaved_batches_keep_the_fingerprints_they_found_in_the_memo():
  """Stages of two batches interleave as the driver's halves do: the second batch's memo hits
  stand although the first batch's new fingerprints then take their places (a memo of 2)."""
  diverging = program(setup="s1 = 1000")  # its fingerprint runs stop at the first step
  search = make(fec=FecSpec(cache_size=2))
  search.evaluate([LINEAR])
  first = search.stages([diverging, program(setup="s1 = 999")])
  second = search.stages([LINEAR])
  next(first)
  next(second)  # LINEAR found in the memo
  assert finish(first).train_steps.tolist() == [NUM_TASKS * 2] * 2
  assert search.fingerprint_runs == 3  # LINEAR, then the two others; LINEAR's entry is gone
  assert finish(second).train_steps.tolist() == [NUM_TASKS * (10 + NUM_TRAIN)]
