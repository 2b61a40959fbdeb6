"""Task specs, spec strings, absl flags, seeds and task collections (REFERENCE.md §10.1, §10.5)."""

import numpy as np
import pytest
from absl import flags

from azero_jax.tasks import binary, collections, stack_tasks
from azero_jax.tasks.spec import FAMILIES, TaskSpec, define_task_flags, spec_from_flags


def test_family_names():
  assert FAMILIES == ("linear", "affine", "nonlinear", "zeros", "ones", "increment",
                      "binary_digits", "binary_cifar10", "binary_mnist", "arrays")


def test_parse_spec_string():
  spec = TaskSpec.parse("linear:features=4,num_tasks=10,num_train_examples=100,"
                        "num_valid_examples=100")
  assert spec == TaskSpec("linear", features=4, num_tasks=10, num_train_examples=100,
                          num_valid_examples=100)
  assert TaskSpec.parse(" nonlinear ") == TaskSpec("nonlinear")
  lists = TaskSpec.parse("binary_cifar10:dataset_dir=/d,param_seeds=1,2,3,data_seeds=7,"
                         "held_out_pairs=5-0,8-9,features=16")
  assert lists.param_seeds == (1, 2, 3) and lists.data_seeds == (7,)
  assert lists.held_out_pairs == ((0, 5), (8, 9)) and lists.features == 16
  assert lists.dataset_dir == "/d" and lists.resolved_eval_type == "accuracy"
  final = TaskSpec.parse("binary_digits:held_out_pairs=all_but_recommended")
  assert set(binary.complement_pairs(final.held_out_pairs)) == set(
      binary.RECOMMENDED_HELD_OUT_PAIRS)
  assert TaskSpec.parse("binary_digits:held_out_pairs=none").held_out_pairs == ()
  assert TaskSpec.parse("increment:increment=0.5,eval_type=accuracy").increment == 0.5


@pytest.mark.parametrize("text", [
    "linear", "linear:features=8,num_tasks=3,param_seeds=5,6,data_seeds=9",
    "binary_mnist:dataset_dir=/x,held_out_pairs=0-1,2-3,num_epochs=2",
    "binary_digits:held_out_pairs=none,positive_class=3,negative_class=5",
    "ones:eval_type=accuracy,num_train_examples=12",
    "arrays:path=data/x.npz,eval_type=accuracy,features=16,num_tasks=10"])
def test_to_string_round_trip(text):
  spec = TaskSpec.parse(text)
  assert TaskSpec.parse(spec.to_string()) == spec


@pytest.mark.parametrize("text, message", [
    ("lin", "unknown task family 'lin'; expected one of linear, affine"),
    ("linear:feature=4", "unknown key 'feature'; known keys: features"),
    ("linear:features=four", "features='four' is not an integer"),
    ("linear:features", "expected key=value, got 'features'"),
    ("linear:num_tasks=1,num_tasks=2", "key 'num_tasks' given twice"),
    ("linear:num_tasks=0", "num_tasks must be >= 1, got 0"),
    ("linear:features=0", "features must be >= 1, got 0"),
    ("linear:num_train_examples=0", "num_train_examples must be >= 1, got 0"),
    ("linear:param_seeds=1,x", "param_seeds='x' is not an integer"),
    ("linear:eval_type=accuracy", "regression families need eval_type=rms"),
    ("linear:eval_type=mse", "eval_type must be 'rms' or 'accuracy', got 'mse'"),
    ("increment:increment=big", "increment='big' is not a number"),
    ("nonlinear:features=2", "needs features >= 3, got 2"),
    ("binary_cifar10:features=16", "needs dataset_dir"),
    ("arrays:features=16", r"needs path \(an \.npz or \.csv data file\)"),
    ("linear:path=data.npz", "path is for the arrays family only"),
    ("binary_digits:positive_class=3", "give both positive_class and negative_class"),
    ("binary_digits:positive_class=3,negative_class=3", r"two different classes.*\(3, 3\)"),
    ("binary_digits:held_out_pairs=3:5", "'3:5' is not a class pair like 3-5"),
    ("binary_digits:held_out_pairs=0-10", r"0\.\.9, got \(0, 10\)"),
    ("binary_digits:min_data_seed=5,max_data_seed=5", "min_data_seed < max_data_seed"),
])
def test_bad_spec_strings_name_the_problem(text, message):
  with pytest.raises(ValueError, match=message):
    TaskSpec.parse(text)


def test_default_seeds_and_previous_plus_one_rule():
  spec = TaskSpec("linear", num_tasks=10)
  assert spec.seeds()[:8] == list(zip(collections.DEFAULT_PARAM_SEEDS,
                                      collections.DEFAULT_DATA_SEEDS, strict=True))
  assert spec.seeds()[8:] == [(1004, 11004), (1005, 11005)]
  assert collections.fill_seeds([1000000], 3, ()) == (1000000, 1000001, 1000002)
  assert collections.fill_seeds([5, 9], 1, ()) == (5,)
  assert TaskSpec("linear", num_tasks=3, data_seeds=(7,)).seeds() == [
      (1001, 7), (1012, 8), (1010, 9)]


def test_random_seeds_follow_the_experiment_seed():
  a = collections.random_seeds(50, experiment_seed=3)
  assert a == collections.random_seeds(50, experiment_seed=3)
  assert a != collections.random_seeds(50, experiment_seed=4)
  assert a[0] != a[1] and all(2 <= s <= 2**32 - 2 for s in a[0] + a[1])
  spec = collections.randomize_seeds(TaskSpec("linear", num_tasks=50), 3)
  assert (spec.param_seeds, spec.data_seeds) == a


@pytest.mark.parametrize("family", ["linear", "affine", "nonlinear", "zeros", "ones",
                                    "increment"])
def test_build_synthetic_families(family):
  spec = TaskSpec(family, features=3, num_tasks=4, num_train_examples=20, num_valid_examples=6,
                  num_epochs=2)
  tasks = spec.build()
  assert len(tasks) == 4 and all(t.shape_key == (3, 20, 6, 2, "rms") for t in tasks)
  batch = stack_tasks(tasks)
  assert batch.x_train.shape == (4, 20, 3) and batch.orders.shape == (4, 2, 20)
  again = spec.build()
  np.testing.assert_array_equal(stack_tasks(again).x_valid, batch.x_valid)


def test_synthetic_defaults_and_unit_test_eval_type():
  task = TaskSpec("linear").build()[0]
  assert (task.num_train_examples, task.num_valid_examples) == (1000, 100)
  assert task.name == "linear(F=4,param_seed=1001,data_seed=11001)"
  assert TaskSpec("zeros", eval_type="accuracy").build()[0].eval_type == "accuracy"


def test_build_binary_digits(tmp_path):
  pytest.importorskip("sklearn")
  spec = TaskSpec.parse(f"binary_digits:features=16,num_tasks=3,num_train_examples=100,"
                        f"num_valid_examples=40,cache_dir={tmp_path}")
  tasks = spec.build()
  assert all(t.shape_key == (16, 100, 40, 1, "accuracy") for t in tasks)
  assert stack_tasks(tasks).y_train.shape == (3, 100)
  fixed = spec.replace(positive_class=3, negative_class=8, num_tasks=1).build()[0]
  assert fixed.name.startswith("binary_digits(pos=3,neg=8,F=16,seed=1,")  # 11001 mod 100


def test_collections_for_regression():
  search = TaskSpec("linear", num_tasks=10, num_train_examples=100, num_valid_examples=100)
  colls = collections.make_collections(search, num_select_tasks=5, num_final_tasks=3,
                                       eval_train_examples=1000)
  assert colls.final.seeds() == [(2000000, 1000000), (2000001, 1000001), (2000002, 1000002)]
  assert colls.select.num_train_examples == 1000 and colls.select.num_tasks == 5
  first, second = colls.search_tasks(1), colls.search_tasks(2)
  assert len(first) == 10 and first[0].name != second[0].name
  assert first[0].name == colls.search_tasks(1)[0].name
  assert colls.select_tasks(1)[0].num_train_examples == 1000
  assert [t.name for t in colls.final_tasks()] == [t.name for t in colls.final.build()]
  with pytest.raises(ValueError, match="explicit seed"):
    colls.search_tasks()
  fixed = collections.make_collections(search, randomize=False)
  assert fixed.search_tasks()[0].name == search.build()[0].name


def test_collections_for_binary_hold_out_pairs():
  search = TaskSpec("binary_digits", num_tasks=10)
  colls = collections.make_collections(search)
  assert search.held_out_pairs == binary.RECOMMENDED_HELD_OUT_PAIRS
  for spec in (colls.select, colls.final):
    allowed = binary.complement_pairs(spec.held_out_pairs)
    assert set(allowed) == set(binary.RECOMMENDED_HELD_OUT_PAIRS)


def _flag_values(prefix=""):
  fv = flags.FlagValues()
  define_task_flags(prefix, fv)
  return fv


def test_spec_from_absl_flags():
  fv = _flag_values()
  fv(["prog", "--task=linear", "--features=8", "--num_tasks=3", "--num_train_examples=50",
      "--num_valid_examples=20", "--num_epochs=2", "--param_seeds=1,2", "--data_seeds=9"])
  assert spec_from_flags(flag_values=fv) == TaskSpec(
      "linear", features=8, num_tasks=3, num_train_examples=50, num_valid_examples=20,
      num_epochs=2, param_seeds=(1, 2), data_seeds=(9,))
  fv = _flag_values("final_")
  fv(["prog", "--final_task=binary_cifar10:features=16,num_tasks=4",
      "--final_dataset_dir=/data", "--final_num_tasks=100"])
  spec = spec_from_flags("final_", fv)
  assert (spec.family, spec.features, spec.num_tasks, spec.dataset_dir) == (
      "binary_cifar10", 16, 100, "/data")


def test_absl_flag_errors():
  fv = _flag_values()
  fv(["prog"])
  with pytest.raises(ValueError, match="--task is required"):
    spec_from_flags(flag_values=fv)
  fv = _flag_values()
  fv(["prog", "--task=linear", "--param_seeds=1,a"])
  with pytest.raises(ValueError, match="--param_seeds='a' is not an integer"):
    spec_from_flags(flag_values=fv)
