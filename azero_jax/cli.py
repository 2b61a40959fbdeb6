"""Shared command-line plumbing: user mistakes end with one clear message, never a traceback."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from absl import app, flags


class UserError(Exception):
  """A mistake in what the user handed us (a flag, a file): reported as one line, exit code 2."""


def flag_error(name: str, message: str) -> UserError:
  return UserError(f"--{name}: {message}")


def run(main: Callable[[list[str]], None]) -> None:
  """`absl.app.run(main)`, turning user mistakes into `error: ...` on stderr and exit code 2."""

  def guarded(argv):
    try:
      main(argv)
    except (UserError, flags.IllegalFlagValueError, flags.ValidationError) as error:
      print(f"error: {error}", file=sys.stderr)
      sys.exit(2)

  # JAX logs at INFO that it found no TPU library, which is noise on a CPU or GPU machine.
  logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
  app.run(guarded)
