"""Prints a program without its dead code, each instruction annotated with its role.

  python -m azero_jax.explain --program=FILE

Roles are recognised from data flow, not from register numbers: the weights are the registers
Predict reads and Learn updates; a learning rate is a Setup constant that Learn multiplies by; an
error is label minus prediction; a gradient is an error times the features (or hidden units); a
gradient step adds a gradient to weights. Instructions that match no known pattern are printed
without a comment.
"""

from __future__ import annotations

from pathlib import Path

from absl import flags

from azero_jax import cli, ops
from azero_jax.program import COMPONENTS, Instruction, Program, ProgramSyntaxError
from azero_jax.search.dead_code import strip_dead_code

Register = tuple[str, int]
FEATURES, LABEL, PREDICTION = (ops.VECTOR, 0), (ops.SCALAR, 0), (ops.SCALAR, 1)
_HEADERS = {"setup": "def Setup():", "predict": "def Predict():", "learn": "def Learn():"}


def load_program(path: str | None, flag: str = "program") -> Program:
  """Reads and parses a program file; every problem is a `cli.UserError` naming the file."""
  if not path:
    raise cli.flag_error(flag, "required: a file with the program text (def Setup(): ...)")
  try:
    text = Path(path).read_text()
  except OSError as error:
    raise cli.flag_error(flag, f"cannot read {path}: {error.strerror}") from None
  except UnicodeDecodeError:
    raise cli.flag_error(flag, f"{path} is not a text file") from None
  try:
    return Program.from_text(text)
  except ProgramSyntaxError as error:
    raise cli.flag_error(flag, f"{path}: {error}") from None


def inputs(inst: Instruction) -> list[Register]:
  spec = inst.spec
  return list(zip(spec.inputs, (inst.in1, inst.in2)))[:spec.num_inputs]


def output(inst: Instruction) -> Register | None:
  return None if inst.spec.output is None else (inst.spec.output, inst.out)


def name(register: Register) -> str:
  return f"{register[0]}{register[1]}"


def weights(program: Program) -> set[Register]:
  """Registers Predict reads and Learn writes: the model's parameters."""
  read = {r for inst in program.predict for r in inputs(inst)}
  written = {output(inst) for inst in program.learn}
  return (read & written) - {FEATURES, LABEL, PREDICTION}


def learning_rates(program: Program) -> set[Register]:
  """Scalars set to a constant in Setup, never written later, and multiplied by in Learn."""
  constants = {output(i) for i in program.setup if i.op == ops.OP_BY_NAME["SCALAR_CONST_SET"].id}
  later = {output(i) for i in program.predict + program.learn}
  multiplied = {r for i in program.learn if i.spec.name in ("SCALAR_PRODUCT",
                                                            "SCALAR_VECTOR_PRODUCT")
                for r in inputs(i)}
  return (constants - later) & multiplied


def _is(tags: dict, register: Register, *kinds: str) -> bool:
  return tags.get(register, "").split(" ")[0] in kinds


def annotate(inst: Instruction, tags: dict[Register, str],
             model: set[Register]) -> tuple[str | None, str | None]:
  """(comment, tag of the output) for one instruction, given the tags of the registers."""
  op, args, out = inst.spec.name, inputs(inst), output(inst)
  tagged = lambda *kinds: [r for r in args if _is(tags, r, *kinds)]
  others = lambda r: [a for a in args if a != r]
  if op == "SCALAR_DIFF" and args == [LABEL, PREDICTION]:
    return "error", "error"
  if op == "SCALAR_DIFF" and args == [PREDICTION, LABEL]:
    return "error (negated: prediction - label)", "error"
  if op in ("SCALAR_PRODUCT", "SCALAR_VECTOR_PRODUCT") and tagged("rate") and tagged(
      "error", "gradient", "backprop", "features"):
    what = tags[tagged("error", "gradient", "backprop", "features")[0]].split(" ")[0]
    return f"{what} x learning rate", what
  if op in ("SCALAR_VECTOR_PRODUCT", "VECTOR_OUTER_PRODUCT", "VECTOR_PRODUCT") and tagged(
      "error", "backprop") and tagged("features", "hidden"):
    source = "features" if tagged("features") else "hidden units"
    return f"gradient (error x {source})", "gradient"
  if op == "SCALAR_VECTOR_PRODUCT" and tagged("error") and [r for r in args if r in model]:
    return "error sent back through the output weights", "backprop"
  if op == "VECTOR_PRODUCT" and tagged("relu'") and tagged("backprop", "error"):
    return "backpropagated error through the ReLU", "backprop"
  if op == "VECTOR_HEAVYSIDE" and tagged("pre-activation"):
    return "ReLU derivative", "relu'"
  if op in ("VECTOR_SUM", "SCALAR_SUM", "MATRIX_SUM") and out in model and out in args:
    step = [r for r in others(out) if _is(tags, r, "gradient", "error", "backprop")]
    if step:
      kind = "bias" if out[0] == ops.SCALAR else "weights"
      return f"gradient step on the {kind} {name(out)}", f"weights {name(out)}"
  if out == PREDICTION:
    used = [name(r) for r in args if r in model]
    if op == "VECTOR_INNER_PRODUCT" and FEATURES in args and used:
      return f"prediction (weights {used[0]})", "prediction"
    if op == "VECTOR_INNER_PRODUCT" and tagged("hidden") and used:
      return f"prediction (output weights {used[0]})", "prediction"
    if op == "SCALAR_SUM" and PREDICTION in args and used:
      return f"prediction + bias {used[0]}", "prediction"
    if used or tagged("hidden"):
      return "prediction", "prediction"
  if op == "MATRIX_VECTOR_PRODUCT" and FEATURES in args and [r for r in args if r in model]:
    return f"hidden layer pre-activation (weights {name(args[0])})", "pre-activation"
  if op == "VECTOR_SUM" and tagged("pre-activation") and [r for r in args if r in model]:
    bias = [name(r) for r in args if r in model][0]
    return f"hidden layer pre-activation + bias {bias}", "pre-activation"
  if op == "VECTOR_MAX" and tagged("pre-activation"):
    return "ReLU (hidden units)", "hidden"
  if out in model and op.endswith(("GAUSSIAN_SET", "UNIFORM_SET", "CONST_SET")):
    return f"initialise the weights {name(out)}", None
  if op == "SCALAR_CONST_SET" and tags.get(out) == "rate":
    return "learning rate", "rate"
  return None, None


def explain(program: Program) -> list[str]:
  """The program's lines without dead code, with `# role` comments where a pattern matches."""
  stripped = strip_dead_code(program)
  model, rates = weights(stripped), learning_rates(stripped)
  removed = sum(program.sizes) - sum(stripped.sizes)
  lines = [f"# {removed} of {sum(program.sizes)} instructions are dead code (removed); "
           f"weights: {', '.join(sorted(map(name, model))) or 'none'}"]
  tags: dict[Register, str] = {FEATURES: "features", **{r: "rate" for r in rates}}
  for component in COMPONENTS:
    lines.append(_HEADERS[component])
    for inst in stripped.component(component):
      comment, tag = annotate(inst, tags, model)
      out = output(inst)
      if out is not None:
        tags[out] = tag or ("weights" if out in model else "")
      text = "  " + inst.to_text()
      lines.append(f"{text}  # {comment}" if comment else text)
  return lines


def main(argv):
  if len(argv) > 1:
    raise cli.UserError(f"unexpected arguments: {' '.join(argv[1:])}")
  print("\n".join(explain(load_program(flags.FLAGS.program))))


if __name__ == "__main__":
  flags.DEFINE_string("program", None, "File with the program in its readable text form.")
  cli.run(main)
