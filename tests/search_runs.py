"""What the search tests share: a SearchConfig from `experiments.run_search`'s flags, output lines
with the wall-clock seconds masked (they differ between runs of identical work), and a batch of
programs of varied fitness made from the demo's ops."""

from __future__ import annotations

import pathlib
import re

import numpy as np
from absl import flags

from azero_jax.program import Program
from azero_jax.search import driver
from azero_jax.search.generator import LINEAR, InitModel, initial_program
from azero_jax.search.mutator import MutationType, Mutator
from azero_jax.search.randomizer import Memory, Randomizer
from experiments import run_search

CONFIGS = pathlib.Path(__file__).resolve().parent.parent / "experiments" / "configs"
DEMO_OPS = (56, 27, 2, 3, 18, 23)  # the demo's ops: no random draws, so fitness ignores the key
DEMO_MEMORY = Memory(4, 3, 1)
DEMO_SIZES = (10, 2, 8)


def search_config(*args: str) -> driver.SearchConfig:
  """The SearchConfig of a `run_search` command line's flags (e.g. a --flagfile, then overrides)."""
  fv = flags.FlagValues()
  run_search.define_flags(fv)
  fv(["run_search", *args])
  return run_search.config_from_flags(fv)


def masked(lines: list[str]) -> list[str]:
  """`lines` with each progress line's elapsed seconds replaced by S."""
  return [re.sub(r"elapsed_secs=\d+", "elapsed_secs=S", line) for line in lines]


def varied_programs(count: int) -> list[Program]:
  """Four random programs of the demo's ops, then distinct mutants of them and of the linear
  model, `count` in all (the same ones on every call)."""
  randomizer = Randomizer((DEMO_OPS,) * 3, DEMO_MEMORY)
  mutator = Mutator(randomizer, (MutationType.ALTER_PARAM,), 1.0)
  rng = np.random.default_rng(3)
  programs = [initial_program(InitModel.RANDOM, DEMO_SIZES, randomizer, rng) for _ in range(4)]
  while len(programs) < count:
    programs.append(mutator.mutate(programs[-1] if rng.random() < 0.5 else LINEAR, rng))
  return programs
