"""Prints a program without its dead code, each instruction annotated with its role.

  python -m azero_jax.explain --program=FILE

Roles are recognised from data flow, not from register numbers: the weights are the registers
Predict reads and Learn updates; a learning rate is a Setup constant that Learn multiplies by; an
error is label minus prediction; a gradient is an error times the features (or hidden units); a
gradient step adds a gradient to weights. Instructions that match no known pattern are printed
without a comment.
"""

from __future__ import annotations

from absl import flags

from azero_jax import cli, ops
from azero_jax.program import COMPONENTS, Instruction, Program
from azero_jax.search.dead_code import strip_dead_code

Register = tuple[str, int]
FEATURES, LABEL, PREDICTION = (ops.VECTOR, 0), (ops.SCALAR, 0), (ops.SCALAR, 1)
_HEADERS = {"setup": "def Setup():", "predict": "def Predict():", "learn": "def Learn():"}


def inputs(inst: Instruction) -> list[Register]:
  spec = inst.spec
  return list(zip(spec.inputs, (inst.in1, inst.in2)))[:spec.num_inputs]


def output(inst: Instruction) -> Register | None:
  return None if inst.spec.output is None else (inst.spec.output, inst.out)


def name(register: Register) -> str:
  return f"{register[0]}{register[1]}"


PRODUCTS = ("SCALAR_PRODUCT", "SCALAR_VECTOR_PRODUCT")
SUMS = ("SCALAR_SUM", "VECTOR_SUM", "MATRIX_SUM")


def weights(program: Program) -> set[Register]:
  """Registers Predict reads and Learn updates (not merely resets to a constant): the model's
  parameters."""
  read = {r for inst in program.predict for r in inputs(inst)}
  updated = {output(inst) for inst in program.learn if inst.spec.name != "SCALAR_CONST_SET"}
  return (read & updated) - {FEATURES, LABEL, PREDICTION}


def rate_constants(program: Program) -> set[tuple[str, int]]:
  """(function, position) of the scalar constants whose value is next read by a product in Learn
  (running Setup, then Predict and Learn over and over): learning rates."""
  order = [(c, i, inst) for c in COMPONENTS for i, inst in enumerate(program.component(c))]
  loop = [entry for entry in order if entry[0] != "setup"]
  found = set()
  for index, (component, position, inst) in enumerate(order):
    if inst.spec.name != "SCALAR_CONST_SET":
      continue
    register = output(inst)
    after = order[index + 1:] + (loop if component == "setup" else loop[:index - len(
        program.setup)])
    for later_component, _, later in after:
      if register in inputs(later):
        if later_component == "learn" and later.spec.name in PRODUCTS:
          found.add((component, position))
        break
      if output(later) == register:
        break
  return found


def _is(tags: dict, register: Register, *kinds: str) -> bool:
  return tags.get(register, "") in kinds


def _prediction(op: str, args: list[Register], tagged) -> str | None:
  """The comment for an instruction that writes s1."""
  used = [name(r) for r in tagged("weights")]
  if op == "VECTOR_INNER_PRODUCT" and used and tagged("features"):
    return f"prediction (weights {used[0]})"
  if op == "VECTOR_INNER_PRODUCT" and used and tagged("hidden"):
    return f"prediction (output weights {used[0]})"
  if op == "SCALAR_SUM" and PREDICTION in args and used:
    return f"prediction + bias {used[0]}"
  return "prediction" if used or tagged("hidden") else None


def annotate(inst: Instruction, tags: dict[Register, str]) -> tuple[str | None, str | None]:
  """(comment, new tag of the output) for one instruction, given what the registers hold."""
  op, args, out = inst.spec.name, inputs(inst), output(inst)
  tagged = lambda *kinds: [r for r in args if _is(tags, r, *kinds)]
  signal = tagged("error", "gradient", "backprop", "features")
  if op == "SCALAR_DIFF" and args == [LABEL, PREDICTION]:
    return "error", "error"
  if op == "SCALAR_DIFF" and args == [PREDICTION, LABEL]:
    return "error (negated: prediction - label)", "error"
  if op in PRODUCTS and tagged("rate") and signal:
    what = tags[signal[0]]
    return f"{what} x learning rate", what
  if op in ("SCALAR_VECTOR_PRODUCT", "VECTOR_OUTER_PRODUCT", "VECTOR_PRODUCT") and tagged(
      "error", "backprop") and tagged("features", "hidden"):
    return f"gradient (error x {'features' if tagged('features') else 'hidden units'})", \
        "gradient"
  if op == "SCALAR_VECTOR_PRODUCT" and tagged("error") and tagged("weights"):
    return "error sent back through the output weights", "backprop"
  if op == "VECTOR_PRODUCT" and tagged("relu'") and tagged("backprop", "error"):
    return "backpropagated error through the ReLU", "backprop"
  if op == "VECTOR_HEAVYSIDE" and tagged("pre-activation"):
    return "ReLU derivative", "relu'"
  if op in SUMS and tagged("weights") and tagged("gradient", "error", "backprop"):
    kind = "bias" if out[0] == ops.SCALAR else "weights"
    source = name(tagged("weights")[0])
    target = name(out) if out in tagged("weights") else f"{source} -> {name(out)}"
    return f"gradient step on the {kind} {target}", "weights"
  if op == "VECTOR_SUM" and tagged("features") == args:
    return "2 x features", "features"
  if op in PRODUCTS and tagged("rate") and tagged("weights"):
    return "weights scaled by a constant (decay)", "weights"
  if out == PREDICTION:
    comment = _prediction(op, args, tagged)
    return (comment, "prediction") if comment else (None, None)
  if op == "MATRIX_VECTOR_PRODUCT" and tagged("weights") and tagged("features"):
    return f"hidden layer pre-activation (weights {name(args[0])})", "pre-activation"
  if op == "VECTOR_SUM" and tagged("pre-activation") and tagged("weights"):
    return f"hidden layer pre-activation + bias {name(tagged('weights')[0])}", "pre-activation"
  if op == "VECTOR_MAX" and tagged("pre-activation"):
    return "ReLU (hidden units)", "hidden"
  return None, None


def comments(program: Program) -> dict[tuple[str, int], str]:
  """The comment of each (function, position) of a dead-code-free program.

  Tags follow the data flow through Setup and then Predict and Learn twice; the second pass (what
  registers hold once training is under way) gives Predict's and Learn's comments.
  """
  model, rates = weights(program), rate_constants(program)
  tags: dict[Register, str] = {FEATURES: "features", LABEL: "label"}
  found = {}
  for component in ("setup",) + ("predict", "learn") * 2:
    if component != "setup":  # what Predict and Learn receive in the model's registers
      tags.update({r: "weights" for r in model})
    for position, inst in enumerate(program.component(component)):
      out = output(inst)
      if (component, position) in rates:
        comment, tag = "learning rate", "rate"
      elif component == "setup" and out in model:
        comment, tag = f"initialise the weights {name(out)}", "weights"
      else:
        comment, tag = annotate(inst, tags)
      if out is not None:
        tags[out] = tag or ""
      found[(component, position)] = comment
  return {key: comment for key, comment in found.items() if comment}


def explain(program: Program) -> list[str]:
  """The program's lines without dead code, with `# role` comments where a pattern matches."""
  stripped = strip_dead_code(program)
  removed = sum(program.sizes) - sum(stripped.sizes)
  lines = [f"# {removed} of {sum(program.sizes)} instructions are dead code (removed); "
           f"weights: {', '.join(sorted(map(name, weights(stripped)))) or 'none'}"]
  notes = comments(stripped)
  for component in COMPONENTS:
    lines.append(_HEADERS[component])
    for position, inst in enumerate(stripped.component(component)):
      comment = notes.get((component, position))
      lines.append(f"  {inst.to_text()}  # {comment}" if comment else f"  {inst.to_text()}")
  return lines


def main(argv):
  print("\n".join(explain(cli.load_program(flags.FLAGS.program))))


if __name__ == "__main__":
  flags.DEFINE_string("program", None, "File with the program in its readable text form.")
  cli.run(main)
