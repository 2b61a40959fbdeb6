"""The program explainer: dead code removed, roles recognised from data flow, clear file errors."""

import subprocess
import sys

import pytest

from azero_jax import cli, explain
from azero_jax.analysis.references import AFFINE
from azero_jax.program import Program
from azero_jax.search.generator import LINEAR, NEURAL_NET, pad


def comments(lines):
  return {line.split("  #")[0].strip(): line.split("# ", 1)[1] for line in lines[1:] if "#" in line}


def test_linear_program_with_dead_code():
  lines = explain.explain(pad(LINEAR, (5, 3, 6)))
  assert lines == [
      "# 8 of 14 instructions are dead code (removed); weights: v1",
      "def Setup():",
      "  s2 = 0.01  # learning rate",
      "def Predict():",
      "  s1 = dot(v1, v0)  # prediction (weights v1)",
      "def Learn():",
      "  s3 = s0 - s1  # error",
      "  s3 = s2 * s3  # error x learning rate",
      "  v2 = s3 * v0  # gradient (error x features)",
      "  v1 = v1 + v2  # gradient step on the weights v1"]


def test_roles_follow_data_flow_not_register_numbers():
  program = Program.from_text("""
def Setup():
  s3 = 0.5
  s1 = 0.01
def Predict():
  s1 = dot(v0, v2)
def Learn():
  s2 = s0 - s1
  v1 = s3 * v0
  v1 = s2 * v1
  v2 = v1 + v2
""")
  found = comments(explain.explain(program))
  assert found == {"s3 = 0.5": "learning rate", "s1 = dot(v0, v2)": "prediction (weights v2)",
                   "s2 = s0 - s1": "error", "v1 = s3 * v0": "features x learning rate",
                   "v1 = s2 * v1": "gradient (error x features)",
                   "v2 = v1 + v2": "gradient step on the weights v2"}


def test_evolved_program_with_reused_registers_and_decay():
  program = Program.from_text("""
def Setup():
  v1 = v0 + v0
  v2 = v1 + v1
def Predict():
  s1 = dot(v0, v2)
  v1 = s3 * v2
def Learn():
  v2 = v0 + v0
  s3 = 0.999831
  s2 = s0 - s1
  v2 = s2 * v2
  v2 = s3 * v2
  s2 = 0.136581
  v2 = s2 * v2
  v2 = v2 + v1
""")
  lines = explain.explain(program)
  assert lines[0].endswith("weights: v2")  # s3 is reset to a constant, not learned
  assert lines[-8:] == [
      "  v2 = v0 + v0  # 2 x features",
      "  s3 = 0.999831  # learning rate",
      "  s2 = s0 - s1  # error",
      "  v2 = s2 * v2  # gradient (error x features)",
      "  v2 = s3 * v2  # gradient x learning rate",
      "  s2 = 0.136581  # learning rate",
      "  v2 = s2 * v2  # gradient x learning rate",
      "  v2 = v2 + v1  # gradient step on the weights v1 -> v2"]
  assert "  v1 = s3 * v2  # weights scaled by a constant (decay)" in lines


def test_neural_net_and_affine_roles():
  found = comments(explain.explain(NEURAL_NET))
  assert found["v3 = dot(m0, v0)"] == "hidden layer pre-activation (weights m0)"
  assert found["v4 = maximum(v3, v5)"] == "ReLU (hidden units)"
  assert found["v8 = heaviside(v3, 1.0)"] == "ReLU derivative"
  assert found["m0 = m0 + m1"] == "gradient step on the weights m0"
  assert found["s2 = s2 + s4"] == "gradient step on the bias s2"
  found = comments(explain.explain(AFFINE))
  assert found["s1 = s1 + s3"] == "prediction + bias s3"
  assert found["s3 = s3 + s4"] == "gradient step on the bias s3"


def test_unknown_patterns_get_no_comment():
  program = Program.from_text("def Setup():\ndef Predict():\n  s1 = sin(s0)\ndef Learn():\n")
  assert explain.explain(program)[-2:] == ["  s1 = sin(s0)", "def Learn():"]


def test_bad_files_are_user_errors(tmp_path):
  with pytest.raises(cli.UserError, match="required"):
    cli.load_program(None)
  with pytest.raises(cli.UserError, match="cannot read"):
    cli.load_program(str(tmp_path / "missing.txt"))
  bad = tmp_path / "bad.txt"
  bad.write_text("def Setup():\n  s1 = foo(s2)\n")
  with pytest.raises(cli.UserError, match=r"bad.txt: line 2"):
    cli.load_program(str(bad))
  binary = tmp_path / "binary.txt"
  binary.write_bytes(b"\xff\xfe\x00")
  with pytest.raises(cli.UserError, match="not a text file"):
    cli.load_program(str(binary))


def test_command_line(tmp_path):
  path = tmp_path / "linear.txt"
  path.write_text(LINEAR.to_text())
  run = lambda *args: subprocess.run([sys.executable, "-m", "azero_jax.explain", *args],
                                     capture_output=True, text=True, timeout=120)
  done = run(f"--program={path}")
  assert done.returncode == 0, done.stderr
  assert "  s3 = s0 - s1  # error" in done.stdout.splitlines()
  done = run(f"--program={tmp_path / 'missing.txt'}")
  assert done.returncode == 2
  assert done.stderr.strip().splitlines()[-1].startswith("error: --program: cannot read")
