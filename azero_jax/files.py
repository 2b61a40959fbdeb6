"""Files written whole or not at all: results, checkpoints, run records and data caches."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

_UMASK = os.umask(0)
os.umask(_UMASK)


def write_atomic(path: str | os.PathLike,
                 data: str | bytes | Callable[[BinaryIO], object]) -> None:
  """Writes `data` (text, bytes, or a function that fills a binary file) to `path` atomically.

  A uniquely named temporary file in the same folder is filled, synced and renamed over `path`,
  then the folder is synced, so a crash leaves the old file or the new one, never a part. The
  file gets the usual permissions (0666 less the umask). On an error nothing is left behind.
  """
  path = Path(path)
  handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    with os.fdopen(handle, "wb") as file:
      if callable(data):
        data(file)
      else:
        file.write(data.encode() if isinstance(data, str) else data)
      file.flush()
      os.fsync(file.fileno())
    os.chmod(temporary, 0o666 & ~_UMASK)
    os.replace(temporary, path)
  except BaseException:
    Path(temporary).unlink(missing_ok=True)
    raise
  folder = os.open(path.parent, os.O_RDONLY)
  try:
    os.fsync(folder)  # the rename itself survives a crash
  finally:
    os.close(folder)
