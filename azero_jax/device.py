"""Which device runs the evaluator, and how the CPU's cores are exposed to JAX."""

from __future__ import annotations

import os


def configure_host_devices() -> None:
  """Exposes every CPU core as a JAX host device so the evaluator can split batches over them.

  XLA:CPU runs the evaluator's small ops on one core; a second host device lets the evaluator
  shard the population. Must run before JAX initialises its backends; respects a user's own
  `--xla_force_host_platform_device_count` in XLA_FLAGS.
  """
  flags = os.environ.get("XLA_FLAGS", "")
  if "xla_force_host_platform_device_count" not in flags:
    count = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                else (os.cpu_count() or 1))
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()
  # No fused multiply-adds on XLA:CPU: sums inside ops (the matrix product's sum of outer
  # products) then round like the NumPy interpreter's, and AVX keeps them vectorised.
  if "xla_cpu_max_isa" not in flags:
    os.environ["XLA_FLAGS"] = f"{os.environ['XLA_FLAGS']} --xla_cpu_max_isa=AVX".strip()


def configure_compilation_cache() -> None:
  """Keeps compiled evaluators on disk, so a run after the first skips most compilation.

  JAX's persistent compilation cache in $AZERO_JAX_CACHE_DIR (default ~/.cache/azero_jax/jax;
  set it empty to turn the cache off). A user's own JAX_COMPILATION_CACHE_DIR takes precedence.
  """
  import jax

  if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    return
  folder = os.environ.get("AZERO_JAX_CACHE_DIR",
                          os.path.join(os.path.expanduser("~"), ".cache", "azero_jax", "jax"))
  if folder:
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)


def describe() -> str:
  """One line naming the device the evaluator uses, e.g. ``device: cpu (2 host devices)``."""
  import jax

  devices = jax.devices()
  kind = devices[0].platform
  name = getattr(devices[0], "device_kind", kind)
  if kind == "cpu":
    return f"device: cpu ({len(devices)} host device{'s' if len(devices) > 1 else ''})"
  return f"device: {kind} ({len(devices)} x {name})"
