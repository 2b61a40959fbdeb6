"""Compiled executables kept on disk, so that a new process skips tracing, lowering and compiling.

JAX's persistent compilation cache skips only XLA's compilation: a process still traces and
lowers a function for every shape it meets, ~0.45 s for the evaluator here, and a demo run meets
~17 shapes. `DiskJit` keeps each executable it compiles, serialized, under a key made of the
static arguments, the other arguments' shapes, dtypes and placements, and what else shapes the
program (the source of the package modules the function's module uses, JAX's version, the
devices, XLA_FLAGS); a process that meets the key again loads the executable (~0.05 s).

The package leaves JAX's own persistent cache off: on XLA:CPU an executable that it gives back
cannot be serialized again (a load of the copy fails with "Function ... not found"), so a
`DiskJit` keeps only what it compiled itself.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import sys
import tempfile
import types
from collections.abc import Callable, Sequence

import jax
import jaxlib
import numpy as np
from jax.experimental import serialize_executable

from azero_jax import device


class DiskJit:
  """`jax.jit(fun, static_argnums=...)` whose executables are kept in `folder` (default:
  `device.cache_folder("executables")`, read when first needed; None, as when
  $AZERO_JAX_CACHE_DIR is set empty, keeps them in memory only).

  A stored file that cannot be read or loaded is compiled again and replaced; a folder that cannot
  be written costs the next process the compilation, nothing more.
  """

  def __init__(self, fun: Callable, static_argnums: Sequence[int], folder: str | None = None):
    functools.update_wrapper(self, fun)
    self._jitted = jax.jit(fun, static_argnums=tuple(static_argnums))
    self._static = frozenset(static_argnums)
    self._folder = folder
    self._executables: dict = {}
    self.loaded = self.compiled = 0  # executables read from disk, compiled by this process

  def __call__(self, *args):
    static = tuple(arg for i, arg in enumerate(args) if i in self._static)
    dynamic = tuple(arg for i, arg in enumerate(args) if i not in self._static)
    leaves, tree = jax.tree.flatten(dynamic)
    signature = (static, tree, tuple(_placement(leaf) for leaf in leaves))
    executable = self._executables.get(signature)
    if executable is None:
      executable = self._executables[signature] = self._load_or_compile(signature, args)
    return executable(*dynamic)

  def num_executables(self) -> int:
    """The executables this process holds, one per signature met."""
    return len(self._executables)

  def _load_or_compile(self, signature, args):
    folder = self._folder or device.cache_folder("executables")
    path = None
    if folder:
      key = repr((self.__qualname__, signature, _environment(self.__module__)))
      key = hashlib.sha256(key.encode())
      path = os.path.join(folder, f"{self.__name__}-{key.hexdigest()[:40]}.pkl")
      try:
        with open(path, "rb") as stored:
          device_ids, *serialized = pickle.load(stored)
        devices = {d.id: d for d in jax.devices()}
        executable = serialize_executable.deserialize_and_load(
            *serialized, execution_devices=[devices[i] for i in device_ids])
        self.loaded += 1
        return executable
      except Exception:  # absent, unreadable or stale: compiled below, and replaced
        pass
    hits = _JAX_CACHE_HITS.count
    executable = self._jitted.lower(*args).compile()
    self.compiled += 1
    if path and _JAX_CACHE_HITS.count == hits:  # not from a JAX cache a user turned on
      _write(path, executable)
    return executable


def _placement(leaf):
  """What a compiled call depends on in an argument besides its values."""
  if isinstance(leaf, jax.Array):
    return leaf.shape, str(leaf.dtype), leaf.sharding if leaf.committed else None
  leaf = np.asarray(leaf)
  return leaf.shape, str(leaf.dtype)


@functools.cache
def _environment(module: str) -> tuple:
  """What else decides a compiled program of `module`: the code of the package modules it uses
  (`_used_modules`), JAX's version, the devices and XLA's flags."""
  source = hashlib.sha256()
  for name in _used_modules(module):
    with open(sys.modules[name].__file__, "rb") as code:
      source.update(name.encode() + code.read())
  return (source.hexdigest(), jax.__version__, jaxlib.__version__, jax.default_backend(),
          tuple(d.device_kind for d in jax.devices()), os.environ.get("XLA_FLAGS", ""),
          bool(jax.config.jax_enable_x64))


def _used_modules(module: str) -> list[str]:
  """`module` and the package's modules it uses, transitively: those its names refer to (a
  module, or a function or class defined in one). An edit elsewhere keeps its executables."""
  package = module.split(".")[0]
  used, todo = set(), [module]
  while todo:
    name = todo.pop()
    if name in used:
      continue
    used.add(name)
    for value in vars(sys.modules[name]).values():
      home = value.__name__ if isinstance(value, types.ModuleType) else getattr(
          value, "__module__", None)
      if isinstance(home, str) and home.startswith(package + ".") and home in sys.modules:
        todo.append(home)
  return sorted(used)


class _CacheHits:
  """Counts the executables JAX's persistent cache gives back (a JAX monitoring listener)."""

  def __init__(self):
    self.count = 0
    jax.monitoring.register_event_listener(self._heard)

  def _heard(self, event: str, **_) -> None:
    self.count += event == "/jax/compilation_cache/cache_hits"


_JAX_CACHE_HITS = _CacheHits()


def _write(path: str, executable) -> None:
  """Saves `executable` at `path` whole or not at all (a temporary file renamed into place)."""
  temporary = None
  try:
    device_ids = [d.id for d in executable.runtime_executable().local_devices()]
    serialized = pickle.dumps((device_ids, *serialize_executable.serialize(executable)))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    with os.fdopen(handle, "wb") as out:
      out.write(serialized)
    os.replace(temporary, path)
  except Exception:  # a backend that cannot serialize, or a folder that cannot be written
    if temporary and os.path.exists(temporary):
      os.remove(temporary)
