"""Random instructions (REFERENCE.md §2.3) and every mutation type and rule of §7."""

import collections
import math

import numpy as np
import pytest

from azero_jax import ops
from azero_jax.program import COMPONENTS, Instruction, Program, ProgramBatch, float32, pack
from azero_jax.search.generator import InitModel, initial_program
from azero_jax.search.mutator import (
  MutationType,
  Mutator,
  alter_data,
  alter_param,
  parse_mutation_types,
)
from azero_jax.search.randomizer import (
  Memory,
  Randomizer,
  Streams,
  random_instruction,
  uniform_indices,
)

DEMO_OPS = (56, 27, 2, 3, 18, 23)
SMALL = Memory(4, 3, 1)
LARGE = Memory(20, 20, 20)
ALL_OPS = tuple(range(ops.NUM_OPS))
SET_OPS = tuple(op.id for op in ops.OPS if op.data is not ops.Data.NONE)
T = MutationType


def rng(seed=0):
  return np.random.default_rng(seed)


def randomizer(op_lists=(DEMO_OPS,) * 3, memory=SMALL):
  return Randomizer(op_lists, memory)


def mutator(types, op_lists=(DEMO_OPS,) * 3, memory=SMALL, **kwargs):
  kwargs.setdefault("mutate_prob", 1.0)
  return Mutator(randomizer(op_lists, memory), tuple(types), **kwargs)


def random_program(sizes=(10, 2, 8), op_lists=(DEMO_OPS,) * 3, seed=0):
  return initial_program(InitModel.RANDOM, sizes, randomizer(op_lists), rng(seed))


# ---------------------------------------------------------------------------------------------
# Random instructions.


@pytest.mark.parametrize("memory", [SMALL, LARGE, Memory(2, 2, 1)])
def test_random_addresses_in_range_and_s0_v0_never_written(memory):
  generator = rng(1)
  outputs = {kind: set() for kind in ops.KINDS}
  for _ in range(3000):
    inst = random_instruction(int(generator.integers(1, ops.NUM_OPS)), memory, generator)
    for kind, address in zip(inst.spec.inputs, (inst.in1, inst.in2), strict=False):
      assert 0 <= address < memory.size(kind)
    outputs[inst.spec.output].add(inst.out)
  assert outputs[ops.SCALAR] == set(range(1, memory.num_scalars))
  assert outputs[ops.VECTOR] == set(range(1, memory.num_vectors))
  assert outputs[ops.MATRIX] == set(range(memory.num_matrices))  # m0 is writable


def test_random_inputs_reach_s0_and_v0():
  generator = rng(2)
  seen = {(inst.in1, inst.in2) for inst in (random_instruction(18, SMALL, generator)
                                             for _ in range(200))}
  assert {in1 for in1, _ in seen} == {0, 1, 2, 3}
  assert {in2 for _, in2 in seen} == {0, 1, 2}


def test_random_instruction_leaves_unused_fields_zero():
  generator = rng(3)
  for op_id in ALL_OPS:
    inst = random_instruction(op_id, LARGE, generator)
    spec = ops.OPS[op_id]
    assert inst.op == op_id
    if spec.num_inputs < 2:
      assert inst.in2 == 0
    if spec.num_inputs < 1:
      assert inst.in1 == 0
    if spec.data is not ops.Data.ACTIVATION:
      assert inst.activation == 0.0
  assert random_instruction(0, LARGE, generator) == Instruction()


def _draws(op_id, count=3000, seed=4):
  generator = rng(seed)
  return [random_instruction(op_id, LARGE, generator) for _ in range(count)]


def test_random_data_ranges():
  consts = _draws(56)
  assert all(-1 < inst.activation < 1 for inst in consts)
  assert min(i.activation for i in consts) < -0.9 and max(i.activation for i in consts) > 0.9
  for inst in _draws(57):
    assert 0 <= inst.f0 < 1 and -1 <= inst.f1 < 1 and inst.f2 == 0
  for inst in _draws(58):
    assert 0 <= inst.f0 < 1 and 0 <= inst.f1 < 1 and -1 <= inst.f2 < 1
  for op_id in (62, 63, 64):
    for inst in _draws(op_id, 500):
      assert -1 <= inst.f0 < 1 and 0 <= inst.f1 < 1


def test_random_float_data_is_float32():
  for op_id in (57, 58, 60, 63):
    for inst in _draws(op_id, 50):
      assert all(value == float32(value) for value in (inst.f0, inst.f1, inst.f2))


def test_random_uniform_bounds_are_not_sorted():
  draws = _draws(60, 2000)
  assert all(-1 <= inst.f0 < 1 and -1 <= inst.f1 < 1 for inst in draws)
  unsorted = np.mean([inst.f0 > inst.f1 for inst in draws])
  assert 0.45 < unsorted < 0.55


def test_uniform_indices_are_uniform_and_in_range():
  draws = uniform_indices(rng(5).random(7000), np.full(7000, 7))
  assert set(draws) == set(range(7))
  assert np.all(np.abs(np.bincount(draws) / 7000 - 1 / 7) < 0.02)
  mixed = uniform_indices(rng(6).random(3000), np.tile([0, 1, 3], 1000)).reshape(-1, 3)
  assert np.all(mixed[:, :2] == 0) and set(mixed[:, 2]) == {0, 1, 2}


def test_memory_rejects_ops_without_writable_register():
  with pytest.raises(ValueError, match="SCALAR_CONST_SET writes a s register"):
    Randomizer(((56,), (), ()), Memory(1, 3, 1))
  with pytest.raises(ValueError, match="VECTOR_SUM writes a v register"):
    Randomizer(((), (23,), ()), Memory(4, 1, 1))
  with pytest.raises(ValueError, match="reads a m register"):
    Randomizer(((), (51,), ()), Memory(4, 3, 0))
  Randomizer(((56,), (), ()), Memory(2, 1, 0))  # s1 is writable; no vector or matrix op used


def test_randomizer_rejects_bad_op_lists():
  with pytest.raises(ValueError, match="unknown op id 65"):
    Randomizer(((65,), (), ()), LARGE)
  with pytest.raises(ValueError, match="expected 3 op lists"):
    Randomizer(((56,), ()), LARGE)


def test_op_list_duplicates_weight_ops():
  r = randomizer(((56, 56, 2), (27,), (2,)))
  generator = rng(6)
  share = np.mean(r.rows("setup", 3000, generator)[:, 0] == 56)
  assert abs(share - 2 / 3) < 0.03


# ---------------------------------------------------------------------------------------------
# Per-child application, action and component choice (§7.1, §7.2).


@pytest.mark.parametrize("mutate_prob", [0.0, 0.3, 0.9, 1.0])
def test_mutate_prob_frequency(mutate_prob):
  m = mutator([T.RANDOMIZE_ALGORITHM], mutate_prob=mutate_prob)
  parent = random_program()
  generator = rng(7)
  changed = np.mean([m.mutate(parent, generator) != parent for _ in range(2000)])
  assert abs(changed - mutate_prob) < 0.035
  if mutate_prob in (0.0, 1.0):
    assert changed == mutate_prob


def test_unmutated_child_is_the_parent():
  m = mutator([T.RANDOMIZE_ALGORITHM], mutate_prob=0.0)
  parent = random_program()
  assert m.mutate(parent, rng()) is parent


def test_action_choice_is_uniform_over_entries_with_duplicates():
  m = mutator([T.ALTER_PARAM, T.ALTER_PARAM, T.IDENTITY])
  generator = rng(8)
  counts = np.bincount(m.choose_actions(generator.random(6000)), minlength=4)
  assert abs(counts[T.ALTER_PARAM] / 6000 - 2 / 3) < 0.03
  assert counts[T.IDENTITY] + counts[T.ALTER_PARAM] == 6000


def test_insert_and_remove_equally_likely_in_code_mode():
  m = mutator([T.INSERT_INSTRUCTION, T.REMOVE_INSTRUCTION])
  generator = rng(9)
  removes = np.mean(m.choose_actions(generator.random(6000)) == T.REMOVE_INSTRUCTION)
  assert abs(removes - 1 / 2) < 0.03


def test_paper_variant_removal_twice_as_likely_as_insertion():
  m = mutator([T.INSERT_INSTRUCTION, T.REMOVE_INSTRUCTION, T.IDENTITY], paper_variant=True)
  generator = rng(10)
  counts = np.bincount(m.choose_actions(generator.random(8000)), minlength=8)
  assert abs(counts[T.REMOVE_INSTRUCTION] / counts[T.INSERT_INSTRUCTION] - 2) < 0.25
  assert abs(counts[T.IDENTITY] / counts[T.INSERT_INSTRUCTION] - 1) < 0.15


def test_component_choice_ignores_functions_with_empty_op_list():
  m = mutator([T.RANDOMIZE_COMPONENT_FUNCTION], op_lists=((56,), (), (2,)))
  generator = rng(11)
  parent = initial_program(InitModel.NO_OP, (3, 3, 3))
  changed = {name: 0 for name in COMPONENTS}
  for _ in range(2000):
    child = m.mutate(parent, generator)
    for name in COMPONENTS:
      changed[name] += child.component(name) != parent.component(name)
  assert changed["predict"] == 0
  assert abs(changed["setup"] / 2000 - 1 / 2) < 0.04
  assert changed["setup"] + changed["learn"] == 2000


def test_component_choice_ignores_current_length():
  # Setup is empty: alter/randomize on it do nothing, but it is still chosen half the time.
  m = mutator([T.RANDOMIZE_INSTRUCTION], op_lists=((56,), (2,), ()))
  generator = rng(12)
  parent = initial_program(InitModel.NO_OP, (0, 1, 4))
  unchanged = np.mean([m.mutate(parent, generator) == parent for _ in range(2000)])
  assert abs(unchanged - 1 / 2) < 0.04


def test_mutator_validation():
  with pytest.raises(ValueError, match="at least one mutation type"):
    mutator([])
  with pytest.raises(ValueError, match="non-empty op list"):
    mutator([T.IDENTITY], op_lists=((), (), ()))
  with pytest.raises(ValueError, match="mutate_prob"):
    mutator([T.IDENTITY], mutate_prob=-0.1)
  with pytest.raises(ValueError, match="max_sizes"):
    mutator([T.IDENTITY], max_sizes=(1, 2))
  with pytest.raises(ValueError):
    mutator([9])


def test_mutation_types_parse():
  assert parse_mutation_types(["ALTER_PARAM_MUTATION_TYPE", "identity", "7", 4]) == (
      T.ALTER_PARAM, T.IDENTITY, T.RANDOMIZE_ALGORITHM, T.INSERT_INSTRUCTION)
  assert mutator(["TRADE_INSTRUCTION"]).mutation_types == (T.TRADE_INSTRUCTION,)
  with pytest.raises(ValueError, match="unknown mutation type 'SWAP'"):
    MutationType.parse("SWAP")


def test_mutation_is_deterministic_given_the_seed():
  m = mutator(list(T), max_sizes=(20, 20, 20), mutate_prob=0.9)
  children = []
  for _ in range(2):
    generator, program = rng(13), random_program()
    for _ in range(200):
      program = m.mutate(program, generator)
    children.append(program)
  assert children[0] == children[1]


# ---------------------------------------------------------------------------------------------
# The mutation types (§7.3).


def _diff_positions(a, b):
  return [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]


def test_identity_changes_nothing():
  parent = random_program()
  assert mutator([T.IDENTITY]).mutate(parent, rng()) is parent


def test_alter_param_changes_at_most_one_instruction_of_one_function():
  m = mutator([T.ALTER_PARAM])
  generator = rng(14)
  parent = random_program()
  altered = 0
  for _ in range(500):
    child = m.mutate(parent, generator)
    assert child.sizes == parent.sizes
    diffs = [(name, _diff_positions(parent.component(name), child.component(name)))
             for name in COMPONENTS]
    changed = [(name, d) for name, d in diffs if d]
    assert len(changed) <= 1 and all(len(d) == 1 for _, d in changed)
    for name, (position,) in changed:
      assert child.component(name)[position].op == parent.component(name)[position].op
    altered += bool(changed)
  # A re-drawn address may repeat the old one: for this parent 68% of the alterations change it
  # (341 +- 10 of 500).
  assert altered > 300


def test_alter_param_leaves_no_op_unchanged():
  m = mutator([T.ALTER_PARAM])
  parent = initial_program(InitModel.NO_OP, (3, 3, 3))
  generator = rng(15)
  assert all(m.mutate(parent, generator) == parent for _ in range(100))
  assert alter_param(Instruction(), LARGE, generator) == Instruction()


def test_alter_param_on_empty_function_does_nothing():
  m = mutator([T.ALTER_PARAM], op_lists=((56,), (), ()))
  parent = initial_program(InitModel.NO_OP, (0, 2, 2))
  assert m.mutate(parent, rng()) == parent


def _altered_field(before, after):
  """Which field AlterParam changed: in1, in2, out, data or none (a re-draw may repeat a value)."""
  changed = {f for f in Instruction._fields if getattr(before, f) != getattr(after, f)}
  if changed & {"activation", "f0", "f1", "f2"}:
    assert changed <= {"activation", "f0", "f1", "f2"}
    return "data"
  assert len(changed) <= 1
  return changed.pop() if changed else "none"


def _field_frequencies(op_id, count=6000, memory=LARGE, seed=16):
  generator = rng(seed)
  inst = random_instruction(op_id, memory, generator)
  fields = collections.Counter(
      _altered_field(inst, alter_param(inst, memory, generator)) for _ in range(count))
  return {field: n / count for field, n in fields.items()}


def test_alter_param_two_input_op_picks_in1_in2_out_one_third_each():
  freq = _field_frequencies(23)  # VECTOR_SUM: in1, in2 from 20 addresses, out from 19
  assert abs(freq["in1"] - 1 / 3 * 19 / 20) < 0.03
  assert abs(freq["in2"] - 1 / 3 * 19 / 20) < 0.03
  assert abs(freq["out"] - 1 / 3 * 18 / 19) < 0.03


def test_alter_param_one_input_op_picks_in1_or_out():
  freq = _field_frequencies(21)  # VECTOR_NORM: in1 from 20 vectors, out from 19 scalars
  assert abs(freq["in1"] - 1 / 2 * 19 / 20) < 0.03
  assert abs(freq["out"] - 1 / 2 * 18 / 19) < 0.03
  assert "in2" not in freq


@pytest.mark.parametrize("op_id", SET_OPS)
def test_alter_param_set_op_picks_out_or_data(op_id):
  freq = _field_frequencies(op_id, count=3000)
  assert abs(freq.get("data", 0) - 1 / 2) < 0.04
  assert abs(freq.get("out", 0) - 1 / 2 * 18 / 19) < 0.04
  assert set(freq) <= {"data", "out", "none"}


def test_altered_outputs_never_s0_or_v0():
  generator = rng(17)
  for op_id in ALL_OPS[1:]:
    inst = random_instruction(op_id, SMALL, generator)
    for _ in range(100):
      inst = alter_param(inst, SMALL, generator)
      if inst.spec.output != ops.MATRIX:
        assert inst.out >= 1


def _alter_data_chain(inst, count, paper_variant=False, seed=18):
  generator = rng(seed)
  return [alter_data(inst, generator, paper_variant) for _ in range(count)]


def test_scalar_const_sign_flip_frequency_and_log_normal_scaling():
  inst = Instruction(op=56, out=1, activation=0.37)
  altered = [a.activation for a in _alter_data_chain(inst, 20000)]
  flips = [a for a in altered if a == -0.37]
  assert abs(len(flips) / 20000 - 0.1) < 0.006
  logs = np.log(np.array([a for a in altered if a != -0.37]) / 0.37)
  assert abs(logs.mean()) < 0.03 and abs(logs.std() - 1) < 0.03
  assert all(a > 0 for a in altered if a != -0.37)  # the sign is kept when scaling


def test_scalar_const_keeps_float64_precision():
  value = _alter_data_chain(Instruction(op=56, out=1, activation=0.37), 1, seed=2)[0].activation
  assert value != float32(value)


def test_paper_variant_scales_by_half_to_two():
  inst = Instruction(op=56, out=1, activation=-0.5)
  altered = [a.activation for a in _alter_data_chain(inst, 5000, paper_variant=True)]
  flips = sum(a == 0.5 for a in altered)
  assert abs(flips / 5000 - 0.1) < 0.015
  factors = np.array([a / -0.5 for a in altered if a != 0.5])
  assert factors.min() >= 0.5 and factors.max() <= 2.0
  assert abs(factors.mean() - 1.25) < 0.03


def test_zero_constant_stays_zero():
  inst = Instruction(op=56, out=1, activation=0.0)
  altered = [a.activation for a in _alter_data_chain(inst, 200)]
  assert all(a == 0.0 for a in altered)
  assert any(math.copysign(1, a) < 0 for a in altered)  # the original yields -0.0


def test_vector_const_alters_index_or_value_half_each():
  inst = Instruction(op=57, out=1, f0=float32(0.3), f1=float32(0.7))
  altered = _alter_data_chain(inst, 6000)
  index_changes = np.mean([a.f0 != inst.f0 for a in altered])
  value_changes = np.mean([a.f1 != inst.f1 for a in altered])
  assert abs(index_changes - 1 / 2) < 0.03 and abs(value_changes - 1 / 2) < 0.03
  assert all((a.f0 != inst.f0) + (a.f1 != inst.f1) == 1 for a in altered)
  assert all(0 <= a.f0 < 1 and a.f0 == float32(a.f0) and a.f1 == float32(a.f1) for a in altered)


def test_matrix_const_alters_row_column_or_value_one_third_each():
  inst = Instruction(op=58, out=0, f0=float32(0.3), f1=float32(0.6), f2=float32(-0.7))
  altered = _alter_data_chain(inst, 6000)
  for field in ("f0", "f1", "f2"):
    share = np.mean([getattr(a, field) != getattr(inst, field) for a in altered])
    assert abs(share - 1 / 3) < 0.03
  assert all(0 <= a.f0 < 1 and 0 <= a.f1 < 1 for a in altered)


@pytest.mark.parametrize("op_id", [62, 63, 64])
def test_gaussian_sigma_scaled_only_and_stays_positive(op_id):
  generator = rng(19)
  inst = Instruction(op=op_id, out=1, f0=float32(0.2), f1=float32(0.1))
  sigma_changes = mean_flips = 0
  for _ in range(3000):
    new = alter_data(inst, generator)
    sigma_changes += new.f1 != inst.f1
    mean_flips += new.f0 == -inst.f0
    inst = new
    assert inst.f1 > 0
  assert abs(sigma_changes / 3000 - 1 / 2) < 0.04
  assert abs(mean_flips / 1500 - 0.1) < 0.03


@pytest.mark.parametrize("op_id", [59, 60, 61])
def test_uniform_bounds_sorted_after_alter(op_id):
  generator = rng(20)
  inst = Instruction(op=op_id, out=1, f0=float32(0.5), f1=float32(-0.25))  # unsorted
  for _ in range(2000):
    inst = alter_data(inst, generator)
    assert inst.f0 <= inst.f1
    assert inst.f0 == float32(inst.f0) and inst.f1 == float32(inst.f1)


def test_randomize_instruction_replaces_one_instruction_with_allowed_op():
  m = mutator([T.RANDOMIZE_INSTRUCTION], op_lists=((56,), (27,), (2, 3)))
  generator = rng(21)
  parent = initial_program(InitModel.NO_OP, (4, 4, 4))
  for _ in range(300):
    child = m.mutate(parent, generator)
    assert child.sizes == parent.sizes
    diffs = {name: _diff_positions(parent.component(name), child.component(name))
             for name in COMPONENTS}
    assert sum(len(d) for d in diffs.values()) == 1
    name = next(name for name, d in diffs.items() if d)
    assert child.component(name)[diffs[name][0]].op in m.randomizer.ops_for(name)


def test_randomize_component_function_keeps_size_and_other_functions():
  m = mutator([T.RANDOMIZE_COMPONENT_FUNCTION], op_lists=((56,), (27,), (2, 3)))
  generator = rng(22)
  parent = initial_program(InitModel.NO_OP, (3, 2, 5))
  for _ in range(100):
    child = m.mutate(parent, generator)
    assert child.sizes == parent.sizes
    changed = [name for name in COMPONENTS if child.component(name) != parent.component(name)]
    assert len(changed) == 1
    assert all(inst.op in m.randomizer.ops_for(changed[0])
               for inst in child.component(changed[0]))


def test_randomize_algorithm_randomizes_every_function_with_ops():
  m = mutator([T.RANDOMIZE_ALGORITHM], op_lists=((56,), (), (2, 3)))
  parent = initial_program(InitModel.NO_OP, (3, 2, 5))
  child = m.mutate(parent, rng(23))
  assert child.sizes == parent.sizes
  assert child.predict == parent.predict
  assert all(inst.op == 56 for inst in child.setup)
  assert all(inst.op in (2, 3) for inst in child.learn)


def _one_function_mutator(types, min_size=0, max_size=0):
  return mutator(types, op_lists=((), (), (2, 3)), min_sizes=(0, 0, min_size),
                 max_sizes=(0, 0, max_size))


def _learn(size, seed=0):
  return initial_program(InitModel.RANDOM, (0, 0, size), randomizer(((), (), (2, 3))), rng(seed))


def test_insert_at_every_position_including_append():
  m = _one_function_mutator([T.INSERT_INSTRUCTION], max_size=10)
  parent = _learn(3)
  generator = rng(24)
  positions = set()
  for _ in range(400):
    child = m.mutate(parent, generator)
    assert len(child.learn) == 4
    position = next(i for i in range(4) if child.learn[:i] + child.learn[i + 1:] == parent.learn)
    positions.add(position)
  assert positions == {0, 1, 2, 3}


def test_insert_into_empty_function():
  m = _one_function_mutator([T.INSERT_INSTRUCTION], max_size=3)
  child = m.mutate(_learn(0), rng())
  assert len(child.learn) == 1 and child.learn[0].op in (2, 3)


def test_insert_keeps_size_below_max_minus_one():
  m = _one_function_mutator([T.INSERT_INSTRUCTION], max_size=5)
  generator = rng(25)
  program = _learn(0)
  sizes = []
  for _ in range(50):
    program = m.mutate(program, generator)
    sizes.append(len(program.learn))
  assert sizes[:4] == [1, 2, 3, 4] and max(sizes) == 4  # [min, max - 1]
  assert m.mutate(_learn(7), generator).learn == _learn(7).learn  # already above: refused


def test_remove_every_position_and_never_below_min():
  m = _one_function_mutator([T.REMOVE_INSTRUCTION], min_size=2)
  parent = _learn(4)
  generator = rng(26)
  positions = set()
  for _ in range(300):
    child = m.mutate(parent, generator)
    assert len(child.learn) == 3
    positions.add(next(i for i in range(4)
                       if parent.learn[:i] + parent.learn[i + 1:] == child.learn))
  assert positions == {0, 1, 2, 3}
  program = parent
  for _ in range(20):
    program = m.mutate(program, generator)
    assert len(program.learn) >= 2
  assert len(program.learn) == 2


def test_insert_and_remove_stay_in_min_to_max_minus_one():
  m = _one_function_mutator([T.INSERT_INSTRUCTION, T.REMOVE_INSTRUCTION], min_size=2, max_size=6)
  generator = rng(27)
  program = _learn(3)
  sizes = set()
  for _ in range(1000):
    program = m.mutate(program, generator)
    sizes.add(len(program.learn))
  assert sizes == {2, 3, 4, 5}


def test_trade_keeps_size_ignores_bounds_and_may_delete_the_added_one():
  m = _one_function_mutator([T.TRADE_INSTRUCTION], min_size=5, max_size=3)  # bounds ignored
  parent = _learn(3)
  generator = rng(28)
  unchanged = 0
  for _ in range(2000):
    child = m.mutate(parent, generator)
    assert len(child.learn) == 3
    unchanged += child == parent
  # The new instruction is deleted again with probability 1/(size + 1) = 1/4 (or the parent
  # comes back by chance).
  assert abs(unchanged / 2000 - 1 / 4) < 0.04
  assert m.mutate(_learn(0), generator) == _learn(0)  # size 0: insert then delete


def test_trade_changes_one_position_window():
  m = _one_function_mutator([T.TRADE_INSTRUCTION])
  parent = _learn(5)
  generator = rng(29)
  for _ in range(200):
    child = m.mutate(parent, generator)
    # Insert at i and delete at j: the child's multiset differs from the parent's by at most one.
    kept = sum(min(child.learn.count(x), parent.learn.count(x)) for x in set(parent.learn))
    assert kept >= 4


def test_program_types_survive_mutation():
  m = mutator(list(T), max_sizes=(12, 4, 10))
  generator = rng(30)
  program = random_program()
  for _ in range(300):
    program = m.mutate(program, generator)
    assert isinstance(program, Program)
    program.check_addresses(4, 3, 1)


# ---------------------------------------------------------------------------------------------
# Batches: many parents, mixed actions and functions in one call.


def test_batch_children_are_single_mutations_of_their_parents():
  types = [t for t in T if t is not T.RANDOMIZE_ALGORITHM]
  m = mutator(types, min_sizes=(1, 1, 1), max_sizes=(12, 5, 10), mutate_prob=0.8)
  generator = rng(31)
  parents = [random_program(tuple(generator.integers(1, (11, 4, 9))), seed=i) for i in range(600)]
  children = ProgramBatch(m.mutate_batch(pack(parents, (11, 4, 9)), Streams.of(generator, 600)))
  assert children.packed.widths == (11, 4, 9)
  changed = collections.Counter()
  for parent, child in zip(parents, children):
    differing = [name for name in COMPONENTS if child.component(name) != parent.component(name)]
    assert len(differing) <= 1
    for name in differing:
      size, low, high = len(parent.component(name)), 1, dict(zip(COMPONENTS, (12, 5, 10)))[name]
      assert abs(len(child.component(name)) - size) <= 1
      assert low <= len(child.component(name)) <= high - 1
      changed[name] += 1
    child.check_addresses(4, 3, 1)
  # 80% mutated, 6 of 7 types act, some actions leave the program as it was (bounds, a redrawn
  # address equal to the old one); the function is uniform among the three.
  assert 0.45 < sum(changed.values()) / 600 < 0.8 * 6 / 7
  assert all(abs(changed[name] / sum(changed.values()) - 1 / 3) < 0.07 for name in COMPONENTS)


def test_unmutated_batch_is_the_parents():
  m = mutator(list(T), mutate_prob=0.0, max_sizes=(12, 4, 10))
  parents = pack([random_program(seed=i) for i in range(5)], (11, 3, 9))
  assert ProgramBatch(m.mutate_batch(parents, Streams.of(rng(), 5))) == ProgramBatch(parents)


def _one_removed(longer, shorter):
  return any(longer[:i] + longer[i + 1:] == shorter for i in range(len(longer)))


def test_full_functions_widen_by_one_slot_for_an_insertion_only():
  parents = [_learn(3, seed=1), _learn(1, seed=2)]
  packed = pack(parents, (0, 0, 3))  # the first is full
  grown = _one_function_mutator([T.INSERT_INSTRUCTION], max_size=10).mutate_batch(
      packed, Streams.of(rng(32), 2))
  assert grown.widths == (0, 0, 4) and grown.learn.length.tolist() == [4, 2]
  assert all(_one_removed(child.learn, parent.learn)
             for parent, child in zip(parents, ProgramBatch(grown)))
  for types, sizes in (([T.REMOVE_INSTRUCTION], [2, 0]), ([T.TRADE_INSTRUCTION], [3, 1])):
    for seed in range(20):  # every removal and insertion position of the full function
      changed = _one_function_mutator(types).mutate_batch(packed, Streams.of(rng(seed), 2))
      assert changed.widths == (0, 0, 3) and changed.learn.length.tolist() == sizes
      assert np.all(changed.learn.table[0, sizes[0]:] == 0.0)  # NO_OP padding
      child = ProgramBatch(changed)[0]
      if types == [T.REMOVE_INSTRUCTION]:
        assert _one_removed(parents[0].learn, child.learn)


def test_batch_groups_draw_from_their_own_generators():
  """Children of several groups (islands) in one batch are what each group makes alone."""
  m = mutator(list(T), min_sizes=(1, 1, 1), max_sizes=(12, 5, 10), mutate_prob=0.9)
  packed = pack([random_program(seed=i) for i in range(30)], (11, 4, 9))
  counts = (10, 15, 5)
  together = m.mutate_batch(packed, Streams(tuple(rng(40 + g) for g in range(3)),
                                            np.array(counts)))
  alone, start = [], 0
  for group, count in enumerate(counts):
    alone += ProgramBatch(m.mutate_batch(packed.take(slice(start, start + count)),
                                         Streams.of(rng(40 + group), count)))
    start += count
  assert list(ProgramBatch(together)) == alone
  assert sum(a != b for a, b in zip(alone, ProgramBatch(packed))) > 15
