"""PNG plots of a comparison (matplotlib, the optional `plots` extra, imported lazily).

`fitness_plot`: best-so-far and population-mean fitness over evaluations, evolution and random
search on one chart (median over seeds, the band spans the seeds' best). `success_plot`: the run
success rate per task family (or setting) for both strategies, with 95% Wilson intervals.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from azero_jax.analysis.report import STRATEGY_NAMES
from azero_jax.files import write_atomic

COLORS = {"evolution": "tab:blue", "random": "tab:orange"}


class PlotsUnavailable(RuntimeError):
  """matplotlib is not installed."""


def pyplot():
  """matplotlib.pyplot on the Agg backend; PlotsUnavailable with the install hint if missing."""
  try:
    import matplotlib
  except ImportError:
    raise PlotsUnavailable('plots need matplotlib, which the plain install leaves out: '
                           'pip install -e ".[plots]" (or pass --noplots)') from None
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def _save(figure, path) -> None:
  buffer = io.BytesIO()
  figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
  pyplot().close(figure)
  write_atomic(path, buffer.getvalue())


BEST, MEAN = 3, 4  # columns of a history: evaluations, seconds, train steps, best, mean


def on_grid(history: np.ndarray, grid: np.ndarray) -> np.ndarray:
  """A run's history [k, 5] (`comparison.Point` rows) at the evaluation counts `grid`:
  the last point at or before each count (the first point before it starts)."""
  index = np.searchsorted(history[:, 0], grid, side="right") - 1
  return history[np.clip(index, 0, len(history) - 1)]


def fitness_plot(histories: dict[str, Sequence[np.ndarray]], path, *, title: str = "",
                 threshold: float | None = None) -> None:
  """Best and mean fitness over evaluations per strategy (median over runs)."""
  plt = pyplot()
  figure, axes = plt.subplots(figsize=(7, 4.2))
  for strategy, runs in histories.items():
    grid = np.unique(np.concatenate([np.asarray(h)[:, 0] for h in runs]))
    values = np.stack([on_grid(np.asarray(h), grid) for h in runs])  # [runs, k, 5]
    color, name = COLORS.get(strategy), STRATEGY_NAMES.get(strategy, strategy)
    axes.plot(grid, np.median(values[:, :, BEST], axis=0), color=color, label=f"{name}: best")
    axes.fill_between(grid, values[:, :, BEST].min(axis=0), values[:, :, BEST].max(axis=0),
                      color=color, alpha=0.15, linewidth=0)
    axes.plot(grid, np.median(values[:, :, MEAN], axis=0), color=color, linestyle="--",
              label=f"{name}: population mean")
  if threshold is not None:
    axes.axhline(threshold, color="gray", linestyle=":", linewidth=1,
                 label=f"threshold {threshold:g}")
  axes.set_xlabel("evaluations")
  axes.set_ylabel("fitness on T_search")
  axes.set_title(title or "Fitness over evaluations (median over seeds; band: range of best)")
  axes.grid(alpha=0.3)
  axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3)
  _save(figure, path)


def success_plot(groups: Sequence[tuple[str, dict[str, dict]]], path, *, title: str = "") -> None:
  """Bars of the run success rate per group (task family or setting) and strategy.

  `groups` holds (label, {strategy: summary}) with the summaries of `comparison.summarize`.
  """
  plt = pyplot()
  strategies = list(dict.fromkeys(s for _, summaries in groups for s in summaries))
  width = 0.8 / max(1, len(strategies))
  figure, axes = plt.subplots(figsize=(max(4.5, 1.6 * len(groups) + 2), 4))
  positions = np.arange(len(groups))
  for offset, strategy in enumerate(strategies):
    summaries = [summaries.get(strategy) for _, summaries in groups]
    rates = np.array([s["run_success_rate"] if s else np.nan for s in summaries])
    low = np.array([s["run_success_ci95"][0] if s else np.nan for s in summaries])
    high = np.array([s["run_success_ci95"][1] if s else np.nan for s in summaries])
    x = positions + (offset - (len(strategies) - 1) / 2) * width
    axes.bar(x, rates, width, color=COLORS.get(strategy),
             label=STRATEGY_NAMES.get(strategy, strategy),
             yerr=np.stack([rates - low, high - rates]), capsize=3,
             error_kw={"ecolor": "dimgray", "elinewidth": 1})
    for xi, top, s in zip(x, high, summaries):
      if s:
        axes.annotate(f"{s['run_successes']}/{s['runs']}", (xi, top), ha="center",
                      va="bottom", fontsize=8, xytext=(0, 3), textcoords="offset points")
  axes.set_xticks(positions, [label for label, _ in groups])
  axes.set_xlim(-0.8, len(groups) - 0.2)
  axes.set_ylim(0, 1.15)
  axes.set_ylabel("run success rate")
  axes.set_title(title or "Runs whose best program beats the threshold (95% Wilson CI)")
  axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=len(strategies))
  _save(figure, path)
