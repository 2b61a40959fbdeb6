"""The paper_method_ablation entry of experiments.study, end to end at a tiny budget: the variants
add the parts one after another, and the table, results.json and the plot are written."""

import json
import pathlib
import subprocess
import sys

from experiments import study

ROOT = pathlib.Path(__file__).resolve().parent.parent
SEARCH = "linear:features=4,num_tasks=2,num_train_examples=20,num_valid_examples=10"
TINY = f"""\
--flagfile={ROOT}/experiments/configs/integration_linear.flags
--population_size=20
--tournament_size=5
--batch_size=10
--fec
--num_islands=2
--migration_every=20
--migration_size=4
--search_task={SEARCH}
--search_task_mix={SEARCH};affine:features=4,num_tasks=2,num_train_examples=20,num_valid_examples=10
--hurdle_tasks=1
--select_task=linear:features=4,num_tasks=2,num_train_examples=20,num_valid_examples=10,data_seeds=50
--final_task=linear:features=4,num_tasks=2,num_train_examples=20,num_valid_examples=10
--max_train_steps=3000
"""
VARIANTS = ["baseline", "+FEC", "+migration", "+task mix", "+hurdles"]


def test_the_variants_switch_the_parts_on_one_after_another(tmp_path):
  flag_file = tmp_path / "tiny.flags"
  flag_file.write_text(TINY)
  study.FLAGS(["study", f"--method_flags={flag_file}"])
  try:
    full = study.ablation_config(str(flag_file))
  finally:
    study.FLAGS.unparse_flags()
  configs = study.ablation_configs(full)
  assert list(configs) == VARIANTS
  parts = lambda c: (c.fec is not None, c.migration_every > 0, len(c.search_families) > 1,
                     c.hurdle_tasks > 0)
  assert [parts(c) for c in configs.values()] == [
      (False,) * 4, (True, False, False, False), (True, True, False, False),
      (True, True, True, False), (True,) * 4]
  assert configs["+hurdles"] == full and {c.num_islands for c in configs.values()} == {2}


def test_the_ablation_runs_end_to_end(tmp_path):
  flag_file = tmp_path / "tiny.flags"
  flag_file.write_text(TINY)
  output = tmp_path / "out"
  done = subprocess.run(
      [sys.executable, "-m", "experiments.study", "--study=paper_method_ablation",
       f"--method_flags={flag_file}", f"--output_dir={output}", "--seeds=2", "--random_seed=3"],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-2000:]
  results = json.loads((output / "results.json").read_text())
  assert list(results["variants"]) == VARIANTS
  runs = results["runs"]
  assert len(runs) == 10 and {r["seed"] for r in runs} == {3, 4}
  by = {(r["variant"], r["seed"]): r for r in runs}
  for seed in (3, 4):  # FEC hits cost only their fingerprints: more individuals for the steps
    assert by["baseline", seed]["fec_hit_rate"] == 0 < by["+FEC", seed]["fec_hit_rate"]
    assert by["+FEC", seed]["evaluations"] > by["baseline", seed]["evaluations"]
  network = results["baselines"]["network_fitness"]
  for name, summary in results["variants"].items():
    fitness = [r["select_fitness"] for r in runs if r["variant"] == name]
    assert summary["select_fitness"]["mean"] == sum(fitness) / 2
    assert summary["beating_network"] == sum(f > network for f in fitness)
  table = (output / "results.md").read_text()
  assert all(f"| {name} |" in table for name in VARIANTS)
  assert (output / "beating_network.png").stat().st_size > 1000
