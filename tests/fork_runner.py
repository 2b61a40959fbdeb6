"""Runs entry points as `python -m MODULE ARGS` would, each in a process forked from this one,
which has imported JAX and the package once (a fresh interpreter spends ~2 s importing JAX).

Reads one JSON request per line on stdin, {"module", "argv", "cwd", "env"}, and answers each with
one JSON line, {"returncode", "stdout", "stderr"}. The child changes to `cwd`, adds `env` to its
environment (compiled executables then go to its AZERO_JAX_CACHE_DIR), then runs the module
as `__main__`; its exit status is what the interpreter's would be. Modules that define flags when
imported are left for the child to import.
"""

import json
import os
import runpy
import sys
import tempfile
import traceback

import experiments.compare  # noqa: F401  (defines its flags only as __main__)
import experiments.run_search  # noqa: F401


def exit_status(code) -> int:
  """The interpreter's exit status for `sys.exit(code)`."""
  if code is None:
    return 0
  if isinstance(code, int):
    return code
  print(code, file=sys.stderr)
  return 1


def child(request: dict) -> int:
  os.chdir(request["cwd"])
  os.environ.update(request["env"])
  sys.argv = [request["module"], *request["argv"]]
  sys.modules.pop(request["module"], None)  # as in a fresh interpreter: imported only as __main__
  try:
    runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    return 0
  except SystemExit as stop:
    return exit_status(stop.code)
  except BaseException:  # as the interpreter: the traceback on stderr, status 1
    traceback.print_exc()
    return 1


def run(request: dict) -> dict:
  with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
    sys.stdout.flush()
    pid = os.fork()
    if not pid:
      os.dup2(out.fileno(), 1)
      os.dup2(err.fileno(), 2)
      status = child(request)
      sys.stdout.flush()
      sys.stderr.flush()
      os._exit(status)
    _, wait_status = os.waitpid(pid, 0)
    out.seek(0)
    err.seek(0)
    return {"returncode": os.waitstatus_to_exitcode(wait_status), "stdout": out.read(),
            "stderr": err.read()}


if __name__ == "__main__":
  for line in sys.stdin:
    print(json.dumps(run(json.loads(line))), flush=True)
