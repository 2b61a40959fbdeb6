"""Atomic writes (azero_jax/files.py): results, checkpoints and caches are whole or absent."""

import os
import stat

import numpy as np
import pytest

from azero_jax import files


def test_text_bytes_and_writer_functions_land_whole(tmp_path):
  files.write_atomic(tmp_path / "a.txt", "text")
  files.write_atomic(tmp_path / "b.bin", b"\x00\x01")
  files.write_atomic(tmp_path / "c.npz", lambda file: np.savez(file, x=np.arange(3)))
  assert (tmp_path / "a.txt").read_text() == "text"
  assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
  assert np.load(tmp_path / "c.npz")["x"].tolist() == [0, 1, 2]
  assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin", "c.npz"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
  path = tmp_path / "result.json"
  files.write_atomic(path, b"old")

  def fail(file):
    file.write(b"half of the new")
    raise OSError("disk full")

  with pytest.raises(OSError, match="disk full"):
    files.write_atomic(path, fail)
  assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_files_get_the_usual_permissions(tmp_path):
  umask = os.umask(0o022)
  try:
    files_umask, files._UMASK = files._UMASK, 0o022
    files.write_atomic(tmp_path / "results.md", "x")
  finally:
    files._UMASK = files_umask
    os.umask(umask)
  assert stat.S_IMODE((tmp_path / "results.md").stat().st_mode) == 0o644
