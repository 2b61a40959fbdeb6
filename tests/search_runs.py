"""What the search tests share: a SearchConfig from `experiments.run_search`'s flags, and output
lines with the wall-clock seconds masked (they differ between runs of identical work)."""

from __future__ import annotations

import pathlib
import re

from absl import flags

from azero_jax.search import driver
from experiments import run_search

CONFIGS = pathlib.Path(__file__).resolve().parent.parent / "experiments" / "configs"


def search_config(*args: str) -> driver.SearchConfig:
  """The SearchConfig of a `run_search` command line's flags (e.g. a --flagfile, then overrides)."""
  fv = flags.FlagValues()
  run_search.define_flags(fv)
  fv(["run_search", *args])
  return run_search.config_from_flags(fv)


def masked(lines: list[str]) -> list[str]:
  """`lines` with each progress line's elapsed seconds replaced by S."""
  return [re.sub(r"elapsed_secs=\d+", "elapsed_secs=S", line) for line in lines]
