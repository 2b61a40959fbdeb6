"""Plots are written as non-empty PNGs; a missing matplotlib gives the install hint."""

import sys

import numpy as np
import pytest

from azero_jax.analysis import plots

pytest.importorskip("matplotlib")
PNG = b"\x89PNG\r\n\x1a\n"


def history(best_end: float, evaluations=(10, 20, 30)) -> np.ndarray:
  best = np.linspace(0.2, best_end, len(evaluations))
  steps = 100 * np.asarray(evaluations)
  return np.stack([evaluations, np.arange(len(evaluations)), steps, best, best / 2], axis=1)


def summary(successes: int, runs: int) -> dict:
  return {"run_successes": successes, "runs": runs, "run_success_rate": successes / runs,
          "run_success_ci95": (max(0.0, successes / runs - 0.2), min(1.0, successes / runs + 0.2))}


def test_fitness_plot_is_a_png(tmp_path):
  path = tmp_path / "fitness.png"
  plots.fitness_plot({"evolution": [history(0.99), history(0.5, (10, 20, 25))],
                      "random": [history(0.3)]}, path, threshold=0.9)
  data = path.read_bytes()
  assert data.startswith(PNG) and len(data) > 5000
  assert [p.name for p in tmp_path.iterdir()] == ["fitness.png"]  # no temporary left


def test_success_plot_is_a_png(tmp_path):
  path = tmp_path / "success.png"
  groups = [("linear", {"evolution": summary(3, 5), "random": summary(0, 5)}),
            ("affine, learn only", {"evolution": summary(1, 5), "random": summary(0, 5)})]
  plots.success_plot(groups, path)
  data = path.read_bytes()
  assert data.startswith(PNG) and len(data) > 5000


def test_on_grid_takes_the_last_point_at_or_before():
  h = history(0.9)
  assert np.array_equal(plots.on_grid(h, np.array([5, 10, 15, 30, 40]))[:, 0], [10, 10, 10, 30, 30])


def test_missing_matplotlib_names_the_extra(monkeypatch):
  monkeypatch.setitem(sys.modules, "matplotlib", None)
  with pytest.raises(plots.PlotsUnavailable, match=r'pip install -e "\.\[plots\]"'):
    plots.pyplot()
