"""Python's cyclic garbage collector, tuned for search loops.

A search allocates millions of small tuples (instructions, programs, cache keys) that form no
reference cycles, while the population, the FEC cache and the fingerprint memo keep about a
million objects alive. With the default thresholds the collector rescans those over and over:
measured 16.5 s of a 62 s demo experiment (BUILD_NOTES.md). `relaxed_gc` raises the thresholds
while a search runs; young cycles are still collected; a full collection waits for about
2.5e9 allocations (effectively the end of the search).
"""

from __future__ import annotations

import contextlib
import gc

SEARCH_THRESHOLDS = (50_000, 50, 1_000)


@contextlib.contextmanager
def relaxed_gc(thresholds: tuple[int, int, int] = SEARCH_THRESHOLDS):
  """Runs the body (a `with` block or, as a decorator, a function) with raised GC thresholds."""
  previous = gc.get_threshold()
  gc.set_threshold(*thresholds)
  try:
    yield
  finally:
    gc.set_threshold(*previous)
