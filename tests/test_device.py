"""The XLA flags set at import (azero_jax.device)."""

import os

import jax
import numpy as np
import pytest

from azero_jax import device


def _flags_after(monkeypatch, user_flags: str, machine: str) -> list[str]:
  monkeypatch.setenv("XLA_FLAGS", user_flags)
  monkeypatch.setattr(device.platform, "machine", lambda: machine)
  device.configure_host_devices()
  return os.environ["XLA_FLAGS"].split()


def test_defaults_on_x86(monkeypatch):
  flags = _flags_after(monkeypatch, "", "x86_64")
  assert "--xla_cpu_max_isa=AVX" in flags
  assert any(f.startswith("--xla_force_host_platform_device_count=") for f in flags)


def test_user_flags_win(monkeypatch):
  user = ["--xla_cpu_max_isa=AVX2", "--xla_force_host_platform_device_count=3"]
  assert _flags_after(monkeypatch, " ".join(user), "x86_64") == user


def test_no_isa_cap_off_x86(monkeypatch):
  flags = _flags_after(monkeypatch, "", "aarch64")
  assert not any("xla_cpu_max_isa" in f for f in flags)


@pytest.mark.skipif(jax.default_backend() != "cpu"
                    or "--xla_cpu_max_isa=AVX" not in os.environ.get("XLA_FLAGS", "").split(),
                    reason="the default ISA cap is in force only on x86-64 CPUs, without a "
                           "user's own xla_cpu_max_isa")
def test_compiled_code_rounds_every_product():
  """a * b = 1 - 2^-60 rounds to 1, so a * b + c is 0; a fused multiply-add would keep -2^-60."""
  a, b, c = np.full(16, 1 + 2.0**-30), np.full(16, 1 - 2.0**-30), np.full(16, -1.0)
  assert np.all(a * b + c == 0.0)  # NumPy rounds the product
  np.testing.assert_array_equal(np.asarray(jax.jit(lambda a, b, c: a * b + c)(a, b, c)), 0.0)
