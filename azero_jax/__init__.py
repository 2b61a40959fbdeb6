"""azero-jax: AutoML-Zero on JAX."""

from azero_jax import device as _device

_device.configure_host_devices()

# The evaluator runs in float32 or float64 on request: 64-bit types must be available.
import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

from azero_jax.evaluator import evaluate  # noqa: E402
from azero_jax.ops import OPS, Op  # noqa: E402
from azero_jax.program import Instruction, Program, ProgramSyntaxError  # noqa: E402
from azero_jax.tasks.task import Task  # noqa: E402

__version__ = "0.1.0"

__all__ = ["OPS", "Instruction", "Op", "Program", "ProgramSyntaxError", "Task", "__version__",
           "evaluate"]
