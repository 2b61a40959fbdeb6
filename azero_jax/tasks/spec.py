"""Describing a task collection: `TaskSpec`, its spec-string form and its absl flags.

A spec string is a family name, optionally followed by `:` and comma-separated `key=value` pairs:

  linear:features=4,num_tasks=10,num_train_examples=100,num_valid_examples=100
  nonlinear:features=8,param_seeds=9000,data_seeds=19000
  binary_cifar10:features=16,num_tasks=10,dataset_dir=/data/cifar,held_out_pairs=0-5,0-9
  arrays:path=data.npz,eval_type=accuracy,features=16,num_tasks=10

List values (seeds, class pairs written `i-j`) are comma-separated too: a comma starts a new key
only where `key=` follows. `held_out_pairs` also takes `recommended` (the 9 pairs of REFERENCE.md
§10.3), `none`, and `all_but_recommended` (so tasks come only from the 9 recommended pairs).

A task mix (--search_task_mix) is spec strings separated by `;`:

  binary_digits:features=16,num_tasks=4;binary_digits:features=8,num_tasks=4
"""

from __future__ import annotations

import dataclasses
import re

from absl import flags

from azero_jax.tasks import arrays, binary, datasets, synthetic
from azero_jax.tasks.collections import task_seeds
from azero_jax.tasks.task import Task

REGRESSION_FAMILIES = ("linear", "affine", "nonlinear")
UNIT_TEST_FAMILIES = ("zeros", "ones", "increment")
BINARY_FAMILIES = ("binary_digits", "binary_cifar10", "binary_mnist")
FAMILIES = REGRESSION_FAMILIES + UNIT_TEST_FAMILIES + BINARY_FAMILIES + ("arrays",)
# Synthetic tasks default to the paper's 1000 train / 100 valid; binary tasks to their whole file.
DEFAULT_NUM_TRAIN_EXAMPLES = 1000
DEFAULT_NUM_VALID_EXAMPLES = 100
MIX_SEPARATOR = ";"

_PAIR_KEYWORDS = {"recommended": binary.RECOMMENDED_HELD_OUT_PAIRS, "none": (),
                  "all_but_recommended": binary.complement_pairs(binary.RECOMMENDED_HELD_OUT_PAIRS)}


@dataclasses.dataclass(frozen=True)
class TaskSpec:
  """A collection of `num_tasks` tasks of one family (REFERENCE.md §10.1).

  `num_train_examples` / `num_valid_examples` None means 1000 / 100 for synthetic families and
  every example of the cached file for binary ones (and of the data file for `arrays`, read
  from `path`: azero_jax/tasks/arrays.py). `eval_type` None means the family's own ("rms", or
  "accuracy" for binary). Empty seed lists mean the default seeds (§10.5).
  """

  family: str
  features: int = 4
  num_tasks: int = 1
  num_train_examples: int | None = None
  num_valid_examples: int | None = None
  num_epochs: int = 1
  param_seeds: tuple[int, ...] = ()
  data_seeds: tuple[int, ...] = ()
  eval_type: str | None = None
  increment: float = 1.0
  dataset_dir: str | None = None
  cache_dir: str | None = None
  held_out_pairs: tuple[tuple[int, int], ...] = binary.RECOMMENDED_HELD_OUT_PAIRS
  positive_class: int | None = None
  negative_class: int | None = None
  min_data_seed: int = binary.DEFAULT_MIN_DATA_SEED
  max_data_seed: int = binary.DEFAULT_MAX_DATA_SEED
  path: str | None = None

  def __post_init__(self):
    set_ = lambda name, value: object.__setattr__(self, name, value)
    set_("param_seeds", tuple(int(s) for s in self.param_seeds))
    set_("data_seeds", tuple(int(s) for s in self.data_seeds))
    set_("held_out_pairs", binary.normalize_pairs(self.held_out_pairs))
    _validate(self)

  @property
  def is_binary(self) -> bool:
    return self.family in BINARY_FAMILIES

  @property
  def dataset(self) -> str | None:
    """The image dataset of a binary family ("digits", "cifar10", "mnist"), else None."""
    return self.family.removeprefix("binary_") if self.is_binary else None

  @property
  def resolved_eval_type(self) -> str:
    return self.eval_type or ("accuracy" if self.is_binary else "rms")

  def replace(self, **changes) -> TaskSpec:
    return dataclasses.replace(self, **changes)

  def seeds(self) -> list[tuple[int, int]]:
    """(param_seed, data_seed) of every task."""
    return task_seeds(self.param_seeds, self.data_seeds, self.num_tasks)

  def build_task(self, param_seed: int, data_seed: int) -> Task:
    """The task of this family for one (param_seed, data_seed)."""
    if self.is_binary:
      return binary.binary_task(
          self.dataset, self.features, self.num_train_examples, self.num_valid_examples,
          data_seed=data_seed, positive_class=self.positive_class,
          negative_class=self.negative_class, held_out_pairs=self.held_out_pairs,
          min_data_seed=self.min_data_seed, max_data_seed=self.max_data_seed,
          num_epochs=self.num_epochs, dataset_dir=self.dataset_dir, cache_dir=self.cache_dir)
    if self.family == "arrays":
      return arrays.arrays_task(self.path, self.features, self.num_train_examples,
                                self.num_valid_examples, data_seed=data_seed,
                                eval_type=self.resolved_eval_type, num_epochs=self.num_epochs)
    sizes = (self.features, self.num_train_examples or DEFAULT_NUM_TRAIN_EXAMPLES,
             self.num_valid_examples or DEFAULT_NUM_VALID_EXAMPLES)
    if self.family in REGRESSION_FAMILIES:
      make = {"linear": synthetic.linear_task, "affine": synthetic.affine_task,
              "nonlinear": synthetic.nonlinear_task}[self.family]
      return make(*sizes, param_seed=param_seed, data_seed=data_seed, num_epochs=self.num_epochs)
    options = {"eval_type": self.resolved_eval_type, "num_epochs": self.num_epochs,
               "data_seed": data_seed}
    if self.family == "increment":
      return synthetic.increment_task(*sizes, increment=self.increment, **options)
    make = {"zeros": synthetic.zeros_task, "ones": synthetic.ones_task}[self.family]
    return make(*sizes, **options)

  def check_data(self) -> None:
    """Raises DatasetError if a binary family's dataset files are missing (reads none of them)
    or the data file of `arrays` is not as expected (reads and checks it)."""
    if self.is_binary:
      datasets.source_files(self.dataset, self.dataset_dir)
    if self.family == "arrays":
      arrays.check_file(self.path, self.features, self.resolved_eval_type)

  def build(self) -> list[Task]:
    """The `num_tasks` tasks, in seed order."""
    return [self.build_task(p, d) for p, d in self.seeds()]

  @classmethod
  def parse(cls, text: str) -> TaskSpec:
    """Parses a spec string (see the module docstring); raises ValueError naming the bad part."""
    return cls(**parse_fields(text))

  def to_string(self) -> str:
    """The spec string of this spec (fields that differ from the defaults only)."""
    parts = []
    for field in dataclasses.fields(self)[1:]:
      value = getattr(self, field.name)
      if value != field.default:
        parts.append(f"{field.name}={_format_value(value)}")
    return self.family + (":" + ",".join(parts) if parts else "")


def _validate(spec: TaskSpec) -> None:
  def check(ok: bool, message: str):
    if not ok:
      raise ValueError(f"task spec {spec.family!r}: {message}")

  if spec.family not in FAMILIES:
    raise ValueError(f"unknown task family {spec.family!r}; expected one of {', '.join(FAMILIES)}")
  check(spec.features >= 1, f"features must be >= 1, got {spec.features}")
  check(spec.family != "nonlinear" or spec.features >= 3,
        f"the nonlinear (teacher network) family needs features >= 3, got {spec.features}")
  check(spec.num_tasks >= 1, f"num_tasks must be >= 1, got {spec.num_tasks}")
  for name in ("num_train_examples", "num_valid_examples"):
    value = getattr(spec, name)
    check(value is None or value >= 1, f"{name} must be >= 1, got {value}")
  check(spec.num_epochs >= 1, f"num_epochs must be >= 1, got {spec.num_epochs}")
  check(all(s >= 0 for s in spec.param_seeds + spec.data_seeds), "seeds must be >= 0")
  check(spec.eval_type in (None, "rms", "accuracy"),
        f"eval_type must be 'rms' or 'accuracy', got {spec.eval_type!r}")
  if spec.family in REGRESSION_FAMILIES:
    check(spec.resolved_eval_type == "rms", "regression families need eval_type=rms")
  check((spec.family == "arrays") == (spec.path is not None),
        "needs path (an .npz or .csv data file)" if spec.family == "arrays" else
        "path is for the arrays family only")
  if spec.is_binary:
    check(spec.resolved_eval_type == "accuracy", "binary families need eval_type=accuracy")
    check(spec.family == "binary_digits" or spec.dataset_dir is not None,
          "needs dataset_dir (the folder with the dataset's files)")
    check((spec.positive_class is None) == (spec.negative_class is None),
          "give both positive_class and negative_class, or neither")
    if spec.positive_class is not None:
      binary.normalize_pairs([(spec.positive_class, spec.negative_class)])
    else:
      check(bool(binary.complement_pairs(spec.held_out_pairs)), "every class pair is held out")
    check(0 <= spec.min_data_seed < spec.max_data_seed,
          f"need 0 <= min_data_seed < max_data_seed, got {spec.min_data_seed} and "
          f"{spec.max_data_seed}")


# --- spec strings -----------------------------------------------------------------------------

_INT_FIELDS = ("features", "num_tasks", "num_train_examples", "num_valid_examples", "num_epochs",
               "positive_class", "negative_class", "min_data_seed", "max_data_seed")
_FIELDS = tuple(f.name for f in dataclasses.fields(TaskSpec))[1:]
_KEY_SPLIT = re.compile(r",(?=\s*[A-Za-z_]\w*\s*=)")


def _parse_int(key: str, text: str) -> int:
  try:
    return int(text)
  except ValueError:
    raise ValueError(f"{key}={text!r} is not an integer") from None


def _parse_pairs(key: str, text: str) -> tuple[tuple[int, int], ...]:
  if text in _PAIR_KEYWORDS:
    return _PAIR_KEYWORDS[text]
  pairs = []
  for item in filter(None, (t.strip() for t in text.split(","))):
    match = re.fullmatch(r"(\d+)\s*-\s*(\d+)", item)
    if not match:
      raise ValueError(f"{key}: {item!r} is not a class pair like 3-5 (or use one of "
                       f"{', '.join(_PAIR_KEYWORDS)})")
    pairs.append((int(match[1]), int(match[2])))
  return binary.normalize_pairs(pairs)


def parse_value(key: str, text: str):
  """The typed value of one `key=text` field of a spec string."""
  text = text.strip()
  if key not in _FIELDS:
    raise ValueError(f"unknown key {key!r}; known keys: {', '.join(_FIELDS)}")
  if key in ("param_seeds", "data_seeds"):
    return tuple(_parse_int(key, s.strip()) for s in text.split(",") if s.strip())
  if key == "held_out_pairs":
    return _parse_pairs(key, text)
  if key in _INT_FIELDS:
    return _parse_int(key, text)
  if key == "increment":
    try:
      return float(text)
    except ValueError:
      raise ValueError(f"{key}={text!r} is not a number") from None
  return text or None


def parse_fields(text: str) -> dict:
  """The TaskSpec fields of a spec string, as a dict."""
  family, _, rest = text.strip().partition(":")
  family = family.strip()
  if family not in FAMILIES:
    raise ValueError(f"task spec {text!r}: unknown task family {family!r}; expected one of "
                     f"{', '.join(FAMILIES)}")
  fields = {"family": family}
  for item in filter(None, (i.strip() for i in _KEY_SPLIT.split(rest))):
    key, eq, value = item.partition("=")
    key = key.strip()
    if not eq:
      raise ValueError(f"task spec {text!r}: expected key=value, got {item!r}")
    if key in fields:
      raise ValueError(f"task spec {text!r}: key {key!r} given twice")
    try:
      fields[key] = parse_value(key, value)
    except ValueError as e:
      raise ValueError(f"task spec {text!r}: {e}") from None
  return fields


def parse_mix(text: str, overrides: dict | None = None) -> tuple[TaskSpec, ...]:
  """The specs of a task mix: spec strings separated by `;`, with the fields in `overrides`
  replacing theirs; raises ValueError naming the bad part."""
  parts = [part.strip() for part in text.split(MIX_SEPARATOR)]
  if not all(parts):
    raise ValueError(f"expected task specs separated by {MIX_SEPARATOR!r}, got {text!r}")
  return tuple(TaskSpec(**{**parse_fields(part), **(overrides or {})}) for part in parts)


def _format_value(value) -> str:
  if isinstance(value, tuple) and value and isinstance(value[0], tuple):
    return ",".join(f"{i}-{j}" for i, j in value)
  if isinstance(value, tuple):
    return ",".join(str(v) for v in value) if value else "none"
  return "none" if value is None else str(value)


# --- absl flags -------------------------------------------------------------------------------

def define_task_flags(prefix: str = "", flag_values: flags.FlagValues = flags.FLAGS,
                      task: str | None = None) -> None:
  """Defines --{prefix}task, --{prefix}features, ... (read them back with `spec_from_flags`).

  --task takes a family name or a whole spec string; the other flags, when given, override the
  spec string's values.
  """
  fv = {"flag_values": flag_values}
  flags.DEFINE_string(f"{prefix}task", task, f"Task family ({', '.join(FAMILIES)}) or a spec "
                      "string like 'linear:features=4,num_tasks=10'.", **fv)
  flags.DEFINE_integer(f"{prefix}features", None, "Feature size F (default 4).", **fv)
  flags.DEFINE_integer(f"{prefix}num_tasks", None, "Number of tasks (default 1).", **fv)
  flags.DEFINE_integer(f"{prefix}num_train_examples", None,
                       "Train examples per task (default 1000; binary: all).", **fv)
  flags.DEFINE_integer(f"{prefix}num_valid_examples", None,
                       "Validation examples per task (default 100; binary: all).", **fv)
  flags.DEFINE_integer(f"{prefix}num_epochs", None, "Training epochs (default 1).", **fv)
  flags.DEFINE_string(f"{prefix}dataset_dir", None,
                      "Folder with CIFAR-10 (cifar-10-batches-py) or MNIST idx files.", **fv)
  flags.DEFINE_list(f"{prefix}param_seeds", None,
                    "Param seeds (default list, then previous + 1).", **fv)
  flags.DEFINE_list(f"{prefix}data_seeds", None,
                    "Data seeds (default list, then previous + 1).", **fv)


_FLAG_FIELDS = ("features", "num_tasks", "num_train_examples", "num_valid_examples", "num_epochs",
                "dataset_dir", "param_seeds", "data_seeds")


def _flag_fields(prefix: str, flag_values: flags.FlagValues) -> dict:
  """The TaskSpec fields given as --{prefix}features, --{prefix}num_tasks, ..."""
  fields = {}
  for name in _FLAG_FIELDS:
    value = flag_values[f"{prefix}{name}"].value
    if value is None:
      continue
    if name.endswith("_seeds"):
      value = tuple(_parse_int(f"--{prefix}{name}", s.strip()) for s in value)
    fields[name] = value
  return fields


def mix_from_flags(prefix: str, mix: str, flag_values: flags.FlagValues = flags.FLAGS
                   ) -> tuple[TaskSpec, ...]:
  """The specs of the task mix `mix` with the --{prefix}features, ... flags of
  `define_task_flags(prefix)` applied to each; errors name the flag --{prefix}task_mix."""
  try:
    return parse_mix(mix, _flag_fields(prefix, flag_values))
  except ValueError as error:
    raise ValueError(f"--{prefix}task_mix: {error}") from None


def spec_from_flags(prefix: str = "", flag_values: flags.FlagValues = flags.FLAGS) -> TaskSpec:
  """The TaskSpec described by the flags of `define_task_flags(prefix)`; errors name the flag."""
  text = flag_values[f"{prefix}task"].value
  if not text:
    raise ValueError(f"--{prefix}task is required: a family ({', '.join(FAMILIES)}) or a spec "
                     "string")
  overrides = _flag_fields(prefix, flag_values)
  try:
    return TaskSpec(**{**parse_fields(text), **overrides})
  except ValueError as error:
    raise ValueError(f"--{prefix}task: {error}") from None
