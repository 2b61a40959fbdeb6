"""Which device runs the evaluator, and how the CPU's cores are exposed to JAX."""

from __future__ import annotations

import functools
import os
import platform


def configure_host_devices() -> None:
  """Sets the XLA:CPU flags the evaluator relies on; must run before JAX initialises its backends.

  A flag the user already names in XLA_FLAGS is left as it is.
  - `--xla_force_host_platform_device_count`: every CPU core is a JAX host device, so that the
    evaluator can shard the population (XLA:CPU runs the evaluator's small ops on one core).
  - `--xla_cpu_max_isa=AVX` (x86-64 only): no fused multiply-adds. XLA:CPU contracts `a * b + c`
    into one FMA wherever the CPU has them (AVX2 and later) and has no flag to stop only that;
    the original's default build (SSE2) and the NumPy interpreter round every product, and the
    contraction decides whether a std of equal entries is NaN (REFERENCE.md Appendix B).
  """
  flags = os.environ.get("XLA_FLAGS", "")
  defaults = []
  if "xla_force_host_platform_device_count" not in flags:
    count = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                else (os.cpu_count() or 1))
    defaults.append(f"--xla_force_host_platform_device_count={count}")
  if "xla_cpu_max_isa" not in flags and platform.machine().lower() in ("x86_64", "amd64"):
    defaults.append("--xla_cpu_max_isa=AVX")
  os.environ["XLA_FLAGS"] = " ".join([flags, *defaults]).strip()


def cache_folder(name: str) -> str | None:
  """$AZERO_JAX_CACHE_DIR/name (default ~/.cache/azero_jax/name), or None where the variable is
  set empty (caches off). Compiled executables live in `cache_folder("executables")`."""
  root = os.environ.get("AZERO_JAX_CACHE_DIR",
                        os.path.join(os.path.expanduser("~"), ".cache", "azero_jax"))
  return os.path.join(root, name) if root else None


@functools.cache
def overlaps_host() -> bool:
  """Whether host work gains from running beside the evaluator's calls: on accelerators and on
  one host device. On several XLA:CPU host devices the search thread would take a core from a
  call that needs all of them (BUILD_NOTES.md, "Overlap")."""
  import jax

  return jax.default_backend() != "cpu" or jax.device_count() == 1


def describe() -> str:
  """One line naming the device the evaluator uses, e.g. ``device: cpu (2 host devices)``."""
  import jax

  devices = jax.devices()
  kind = devices[0].platform
  name = getattr(devices[0], "device_kind", kind)
  if kind == "cpu":
    return f"device: cpu ({len(devices)} host device{'s' if len(devices) > 1 else ''})"
  return f"device: {kind} ({len(devices)} x {name})"
