"""Compiled executables kept on disk (azero_jax/executables.py)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from azero_jax.executables import DiskJit

ROOT = Path(__file__).resolve().parent.parent
traced = []


def scaled(factor, x):
  traced.append(factor)
  return jnp.sin(x) * factor


@pytest.fixture(autouse=True)
def no_traces_yet():
  traced.clear()


def test_a_second_instance_loads_what_the_first_compiled(tmp_path):
  x = np.linspace(0, 1, 8, dtype=np.float32)
  first = DiskJit(scaled, static_argnums=(0,), folder=str(tmp_path))
  expected = np.asarray(first(2.0, x))
  assert (first.compiled, first.loaded, len(traced)) == (1, 0, 1)
  assert np.asarray(first(2.0, x + 1)).tolist() != expected.tolist()  # same shape: no new trace
  assert (first.compiled, len(traced)) == (1, 1)
  assert len(list(tmp_path.iterdir())) == 1

  second = DiskJit(scaled, static_argnums=(0,), folder=str(tmp_path))
  np.testing.assert_array_equal(np.asarray(second(2.0, x)), expected)
  assert (second.compiled, second.loaded, len(traced)) == (0, 1, 1)  # neither traced nor compiled

  second(3.0, x)  # another static argument, and another shape: new executables
  second(2.0, np.zeros(4, np.float32))
  assert (second.compiled, second.num_executables(), len(list(tmp_path.iterdir()))) == (2, 3, 3)


def test_an_unreadable_file_is_compiled_again_and_replaced(tmp_path):
  x = np.arange(4, dtype=np.float32)
  expected = np.asarray(DiskJit(scaled, static_argnums=(0,), folder=str(tmp_path))(5.0, x))
  (stored,) = tmp_path.iterdir()
  stored.write_bytes(b"not an executable")
  again = DiskJit(scaled, static_argnums=(0,), folder=str(tmp_path))
  np.testing.assert_array_equal(np.asarray(again(5.0, x)), expected)
  assert (again.compiled, again.loaded) == (1, 0)
  third = DiskJit(scaled, static_argnums=(0,), folder=str(tmp_path))
  np.testing.assert_array_equal(np.asarray(third(5.0, x)), expected)
  assert (third.compiled, third.loaded) == (0, 1)


def test_placement_is_part_of_the_key(tmp_path):
  x = np.ones(4, np.float32)
  function = DiskJit(scaled, static_argnums=(0,), folder=str(tmp_path))
  function(1.0, x)
  function(1.0, jax.device_put(x, jax.devices()[-1]))  # committed to a device
  assert function.num_executables() == 2


def test_an_executable_from_jax_s_own_cache_is_not_kept(tmp_path):
  """XLA:CPU cannot serialize again what JAX's persistent cache loaded: a copy fails to run."""
  script = textwrap.dedent(f"""
      import sys
      sys.path.insert(0, {str(ROOT / "tests")!r})
      import numpy as np
      from test_executables import DiskJit, scaled
      function = DiskJit(scaled, static_argnums=(0,), folder={str(tmp_path / "ours")!r})
      print(float(function(2.0, np.ones(3, np.float32)).sum()), function.loaded)
  """)
  env = {**os.environ, "PYTHONPATH": str(ROOT),
         "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax"),
         "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
         "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
  run = lambda: subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                               text=True, check=True).stdout.split()
  first = run()  # compiled: kept in both caches
  assert first[1] == "0" and list((tmp_path / "jax").iterdir())
  for stored in (tmp_path / "ours").iterdir():
    stored.unlink()
  assert run() == first  # from JAX's cache: not kept in ours
  assert not list((tmp_path / "ours").iterdir())
  assert run() == first


def test_the_evaluator_s_key_covers_the_modules_it_uses_and_no_others():
  from azero_jax import evaluator  # noqa: F401  (imported: its modules are in sys.modules)
  from azero_jax.executables import _used_modules
  used = _used_modules("azero_jax.evaluator")
  assert {"azero_jax.evaluator", "azero_jax.ops", "azero_jax.program",
          "azero_jax.tasks.task"} <= set(used)
  assert not any(name.startswith(("azero_jax.search", "azero_jax.analysis")) for name in used)
