"""Dead-code removal: hand-made cases, a plain reference on random batches, and fitness kept on
many random programs."""

import numpy as np
import pytest

from azero_jax import Task, ops
from azero_jax.interpreter import interpret
from azero_jax.program import COMPONENTS, Program, ProgramBatch, pack
from azero_jax.search.dead_code import live_positions, live_slots, strip_dead_code, strip_packed
from azero_jax.search.generator import LINEAR, NEURAL_NET, InitModel, initial_program
from azero_jax.search.mutator import MutationType, Mutator
from azero_jax.search.randomizer import Memory, Randomizer

MEMORY = Memory(4, 3, 2)
DETERMINISTIC_OPS = tuple(range(59))  # random ops 59-64 excluded; NO_OP included


def program(setup="", predict="", learn=""):
  def body(text):
    return "".join(f"  {line.strip()}\n" for line in text.split(";") if line.strip())
  return Program.from_text(
      f"def Setup():\n{body(setup)}def Predict():\n{body(predict)}def Learn():\n{body(learn)}")


def test_padded_linear_loses_only_its_no_ops():
  assert strip_dead_code(initial_program(InitModel.LINEAR, (10, 2, 8))) == LINEAR


def test_neural_net_is_all_live():
  assert strip_dead_code(NEURAL_NET) == NEURAL_NET


def test_empty_program():
  assert strip_dead_code(Program()) == Program()
  assert live_positions(Program()) == {"setup": frozenset(), "predict": frozenset(),
                                       "learn": frozenset()}


def test_setup_value_overwritten_before_use_is_dead():
  # s3 is written by Learn before anything reads it.
  full = program("s2 = 0.01; s3 = 0.7", "s1 = dot(v1, v0)",
                 "s3 = s0 - s1; s3 = s2 * s3; v2 = s3 * v0; v1 = v1 + v2")
  assert live_positions(full)["setup"] == {0}
  assert strip_dead_code(full) == LINEAR


def test_unread_results_are_dead():
  full = program("s2 = 0.5; v2 = v1 + v1", "s3 = dot(v0, v0); s1 = s2 * s2; s3 = s1 + s1",
                 "m1 = outer(v0, v0); s2 = s2 * s2")
  assert live_positions(full) == {"setup": {0}, "predict": {1}, "learn": {1}}


def test_setup_writing_the_prediction_is_live():
  assert strip_dead_code(program("s1 = 0.5; s1 = 0.25")) == program("s1 = 0.25")


def test_predict_feeds_itself_through_validation_and_epochs():
  # s2 written at the end of Predict is read at the start of the next Predict.
  full = program("", "s1 = s2 + s1; s2 = s1 * s1; s3 = s1 + s1")
  assert live_positions(full)["predict"] == {0, 1}


def test_learn_feeds_learn_through_predict():
  # s3 written at the end of Learn is read at the start of the next Learn; s2 is never read.
  full = program("", "s1 = dot(v1, v0)", "v1 = s3 * v0; s3 = s0 - s1; s2 = s0 + s0")
  assert live_positions(full)["learn"] == {0, 1}


def test_harness_overwrites_s0_and_v0():
  # s0 written at the end of Predict or Learn is replaced by the label before anyone reads it;
  # written earlier in the same function, it is read.
  full = program("s0 = 0.5", "s0 = s1 + s1; s1 = s0 * s0; s0 = s1 - s1",
                 "s2 = s0 - s1; s0 = s2 + s2")
  assert live_positions(full) == {"setup": set(), "predict": {0, 1}, "learn": set()}


def test_const_set_writes_one_element_so_earlier_writes_stay_live():
  full = program("v1[0.1] = 0.5; v1[0.6] = 0.25; m1[0.1, 0.2] = 1; m1[0.5, 0.5] = 2",
                 "v2 = dot(m1, v0); s1 = dot(v2, v1)")
  assert strip_dead_code(full) == full
  overwritten = program("v1[0.1] = 0.5; v1 = v2 + v2", "s1 = dot(v1, v0)")
  assert live_positions(overwritten)["setup"] == {1}


def test_live_positions_match_strip():
  full = program("s2 = 0.5; s3 = 0.25", "s1 = s2 + s1", "s3 = s1 + s1")
  live = live_positions(full)
  assert live == {"setup": {0}, "predict": {0}, "learn": set()}
  assert strip_dead_code(full) == program("s2 = 0.5", "s1 = s2 + s1")


# ---------------------------------------------------------------------------------------------
# Stripping keeps fitness on random programs (the NumPy interpreter is the oracle).


def _tasks():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(60, 4))
  w = rng.normal(size=4)
  labels = (x @ w > 0).astype(float)
  return [Task.from_arrays(x[:30], x[:30] @ w, x[30:], x[30:] @ w, num_epochs=2),
          Task.from_arrays(x[:30], labels[:30], x[30:], labels[30:], eval_type="accuracy",
                           num_epochs=2, shuffle_seed=3)]


def _fitness(prog, task):
  return interpret(prog, task, num_scalars=MEMORY.num_scalars, num_vectors=MEMORY.num_vectors,
                   num_matrices=MEMORY.num_matrices)


def _random_programs(count, seed):
  """Random programs over all deterministic ops, a learning linear model with random instructions
  inserted, and a chain of its mutants."""
  randomizer = Randomizer((DETERMINISTIC_OPS,) * 3, MEMORY)
  rng = np.random.default_rng(seed)
  programs = [initial_program(InitModel.RANDOM, (5, 4, 6), randomizer, rng)
              for _ in range(count // 3)]
  linear = LINEAR.replace(setup=program("s2 = 0.1").setup)
  insert = Mutator(randomizer, (MutationType.INSERT_INSTRUCTION,), 1.0, max_sizes=(9, 9, 9))
  for _ in range(count // 3):
    grown = linear
    for _ in range(rng.integers(1, 10)):
      grown = insert.mutate(grown, rng)
    programs.append(grown)
  anything = Mutator(randomizer, tuple(MutationType), 1.0, max_sizes=(9, 9, 9))
  mutant = linear
  while len(programs) < count:
    mutant = anything.mutate(mutant if rng.random() < 0.8 else linear, rng)
    programs.append(mutant)
  return programs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stripping_keeps_fitness_of_random_programs(seed):
  tasks = _tasks()
  removed, fitnesses = 0, set()
  for prog in _random_programs(240, seed):
    stripped = strip_dead_code(prog)
    removed += sum(prog.sizes) - sum(stripped.sizes)
    for task in tasks:
      fitness = _fitness(prog, task)
      assert _fitness(stripped, task) == fitness, prog.to_text()
      fitnesses.add(fitness)
  assert removed > 500 and len(fitnesses) > 50  # the check is not vacuous


def reference_live(prog):
  """Live positions per function by plain set liveness over (kind, address) registers."""
  def registers(inst):
    spec = inst.spec
    written = set() if spec.output is None else {(spec.output, inst.out)}
    read = set(zip(spec.inputs, (inst.in1, inst.in2)))
    partial = spec.data in (ops.Data.VECTOR_CONST, ops.Data.MATRIX_CONST)
    return written, read | (written if partial else set())

  def backward(instructions, live):
    kept = set()
    for position in reversed(range(len(instructions))):
      written, read = registers(instructions[position])
      if written & live:
        kept.add(position)
        live = (live - written) | read
    return live, kept

  harness = {(ops.SCALAR, 0), (ops.VECTOR, 0)}
  predict_in = learn_in = set()
  while True:
    (new_predict_in, predict), (new_learn_in, learn) = (
        backward(prog.predict, ((predict_in | learn_in) - harness) | {(ops.SCALAR, 1)}),
        backward(prog.learn, predict_in - harness))
    if (new_predict_in, new_learn_in) == (predict_in, learn_in):
      return backward(prog.setup, predict_in - harness)[1], predict, learn
    predict_in, learn_in = new_predict_in, new_learn_in


@pytest.mark.parametrize("memory, live_share", [
    (Memory(4, 3, 2), 0.1), (Memory(20, 20, 20), 0.01), (Memory(24, 3, 2), 0.01)])  # int bits
def test_batched_liveness_matches_a_plain_reference(memory, live_share):
  randomizer = Randomizer((tuple(range(ops.NUM_OPS)),) * 3, memory)
  rng = np.random.default_rng(4)
  programs = [initial_program(InitModel.RANDOM, tuple(rng.integers(0, 12, 3)), randomizer, rng)
              for _ in range(400)]
  packed = pack(programs, (12, 12, 12))
  kept = live_slots(packed)
  stripped = ProgramBatch(strip_packed(packed))
  for index, prog in enumerate(programs):
    expected = reference_live(prog)
    for name, slots, positions in zip(COMPONENTS, kept, expected):
      assert set(np.nonzero(slots[index])[0]) == positions, (name, prog.to_text())
    assert stripped[index] == Program(*(
        tuple(inst for position, inst in enumerate(prog.component(name)) if position in live)
        for name, live in zip(COMPONENTS, expected)))
  assert stripped.packed.widths == (12, 12, 12)
  live = sum(s.sum() for s in kept) / sum(sum(p.sizes) for p in programs)
  assert live_share < live < 0.9  # neither everything nor nothing is live
