"""Shared command-line plumbing: every entry point runs through `run(main)`.

A user mistake (a flag, a flag file, a program file, a dataset directory, an output folder) ends
with one line on stderr, `error: <the flag or file>: <what was expected>`, and exit status 2:
never a traceback, and nothing written, since the entry points check everything first.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from absl import app, flags

from azero_jax.program import Program, ProgramSyntaxError
from azero_jax.tasks.datasets import DatasetError

EXIT_USER_ERROR = 2


class UserError(Exception):
  """A mistake in what the user handed us (a flag, a file): reported as one line, exit status 2."""


def flag_error(name: str, message: str) -> UserError:
  return UserError(f"--{name}: {message}")


def fail(message: str) -> NoReturn:
  """Prints `error: <message>` as one line on stderr and exits with status 2."""
  line = "; ".join(part.strip() for part in str(message).splitlines() if part.strip())
  print(f"error: {line}", file=sys.stderr, flush=True)
  sys.exit(EXIT_USER_ERROR)


def load_program(path: str | None, flag: str = "program",
                 memory: tuple[int, int, int] | None = None) -> Program:
  """Reads and parses the program file of --`flag`, checking its addresses against `memory`
  (scalars, vectors, matrices) when given; every problem is a `UserError` naming the file."""
  if not path:
    raise flag_error(flag, "required: a file with the program text (def Setup(): ...)")
  try:
    program = Program.from_text(Path(path).read_text())
  except OSError as error:
    raise flag_error(flag, f"cannot read {path}: {error.strerror}") from None
  except UnicodeDecodeError:
    raise flag_error(flag, f"{path} is not a text file") from None
  except ProgramSyntaxError as error:
    raise flag_error(flag, f"{path}: {error}") from None
  if memory:
    try:
      program.check_addresses(*memory)
    except ValueError as error:
      raise flag_error(flag, f"{path}: {error}; raise --num_scalars, --num_vectors or "
                       "--num_matrices") from None
  return program


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a bad flag or flag file reported by `fail`."""
  try:
    return flags.FLAGS(argv)
  except flags.CantOpenFlagFileError as error:
    fail(f"--flagfile: {str(error).removeprefix('ERROR:: ')}")
  except flags.Error as error:
    fail(str(error))


def run(main: Callable[[list[str]], int | None]) -> None:
  """`absl.app.run(main)`, with positional arguments, bad flags and user mistakes reported by
  `fail`; main's return value is the exit status."""

  def guarded(argv):
    if len(argv) > 1:
      fail(f"unexpected arguments {' '.join(argv[1:])} (flags start with --)")
    try:
      return main(argv)
    except (UserError, DatasetError, flags.Error) as error:
      fail(str(error))

  # JAX logs at INFO that it found no TPU library, which is noise on a CPU or GPU machine.
  logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
  app.run(guarded, flags_parser=parse_flags)
