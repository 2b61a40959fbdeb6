"""The run directory of a search (--run_dir): what a run was, how it went, and how to continue it.

  flags.txt         the flags given (without --resume / --overwrite), usable as a --flagfile
  run.json          library and JAX versions, device, command line, start time, seed; each resume
  progress.jsonl    one JSON object per progress report: experiment, evaluations, elapsed_secs,
                    mean, stdev, best, fec_hit_rate (on Ray: each worker's, with `worker`)
  best_program.txt  the best program so far (a `#` header says which; readable by Program.from_text)
  result.json       the final result: seed, experiments, select and final fitness, the program
  checkpoints/      ckpt-<n>.npz, the newest two (azero_jax.search.checkpoint)
  workers/<w>/      on Ray: worker w's checkpoints/ and worker.json (azero_jax/search/workers.py)
  lock              the pid and host of the run using the directory, while it runs

Files are replaced atomically; progress.jsonl is appended to a line at a time, and a resumed run
cuts it back to the lines its checkpoint had logged, so it ends as an uninterrupted run's would
(elapsed_secs aside). Nothing is written before every flag is checked, and an existing non-empty
directory is refused unless --resume or --overwrite says what to do with it.

One run at a time uses a directory: a run holds an exclusive `flock` on `lock` from its start to
its end, and a second run (or --resume) on the directory is refused, naming the holder. The kernel
drops the flock when a process ends, however it ends, so a lock file left by a killed run is taken
over, with a warning.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

import jax
from absl import flags

import azero_jax
from azero_jax import device, files
from azero_jax.program import Program
from azero_jax.search import checkpoint
from azero_jax.search.driver import (
  ExperimentResult,
  ProgressReport,
  RunHooks,
  RunResult,
  SearchConfig,
  Snapshot,
)

FILES = ("flags.txt", "run.json", "progress.jsonl", "best_program.txt", "result.json")
CHECKPOINTS = "checkpoints"
WORKERS = "workers"  # the checkpoints of a search's Ray workers (azero_jax/search/workers.py)
LOCK = "lock"
RUN_DIR_FLAGS = ("checkpoint_every", "checkpoint_every_secs", "resume", "overwrite")
_NOT_RECORDED = ("flagfile", "resume", "overwrite")


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
  """Defines --run_dir, --checkpoint_every, --checkpoint_every_secs, --resume and --overwrite."""
  kw = {"flag_values": fv}
  flags.DEFINE_string("run_dir", None, "Run directory: flags, run facts, progress log, best "
                      "program, result and checkpoints (default: a new runs/<time> folder; "
                      "--run_dir= (empty): print only).", **kw)
  flags.DEFINE_integer("checkpoint_every", 0, "Checkpoint after this many evaluations (0 = "
                       "only by time, at the end of each experiment and on a signal).", **kw)
  flags.DEFINE_float("checkpoint_every_secs", 300.0, "Checkpoint after this many seconds (0 = "
                     "only by evaluations, at the end of each experiment and on a signal).", **kw)
  flags.DEFINE_bool("resume", False, "Continue the run found in --run_dir from its newest "
                    "readable checkpoint (give the run's flags, e.g. --flagfile=RUN_DIR/"
                    "flags.txt).", **kw)
  flags.DEFINE_bool("overwrite", False, "Replace the run in a non-empty --run_dir.", **kw)


class Interrupted(Exception):
  """A signal stopped the run after it wrote a checkpoint."""

  def __init__(self, signum: int, path: Path):
    super().__init__(f"stopped by {signal.Signals(signum).name}; checkpoint {path}")
    self.signum = signum
    self.path = path


class StopSignals:
  """SIGINT and SIGTERM ask the run to stop: it checkpoints at the next boundary and ends. A
  second signal ends the process at once (the checkpoints already written stay valid)."""

  def __init__(self):
    self.signum: int | None = None

  def install(self) -> None:
    """Handles SIGINT and SIGTERM in this process from now on."""
    for signum in (signal.SIGINT, signal.SIGTERM):
      signal.signal(signum, self._handle)

  def _handle(self, signum, _frame) -> None:
    if self.signum is not None:
      signal.signal(signum, signal.SIG_DFL)
      os.kill(os.getpid(), signum)
      return
    self.signum = signum
    print(f"run_search: {signal.Signals(signum).name}: stopping at the next batch boundary after "
          "a checkpoint (signal again to stop at once)", file=sys.stderr, flush=True)


class DirectoryInUse(ValueError):
  """A live run holds the lock of the run directory."""

  def __init__(self, path: Path, pid: str, host: str):
    super().__init__(f"--run_dir: {path} is in use by pid {pid} on host {host}")


def _try_flock(file, operation: int) -> bool:
  """Takes `operation` (fcntl.LOCK_SH or LOCK_EX) on `file` without waiting; False if held."""
  try:
    fcntl.flock(file.fileno(), operation | fcntl.LOCK_NB)
  except BlockingIOError:
    return False
  return True


def _holder(file, wait_secs: float = 0.0) -> tuple[str, str] | None:
  """(pid, host) written in a lock file, waiting up to `wait_secs` for a holder that has taken
  the flock but not yet written them; None for an empty or unreadable file."""
  deadline = time.monotonic() + wait_secs
  while True:
    file.seek(0)
    try:
      record = json.loads(file.read())
      return str(record["pid"]), str(record["host"])
    except (ValueError, KeyError, TypeError):
      if time.monotonic() >= deadline:
        return None
    time.sleep(0.01)


def _in_use(directory: Path, file) -> DirectoryInUse:
  pid, host = _holder(file, wait_secs=1.0) or ("unknown", "unknown")
  return DirectoryInUse(directory, pid, host)


class RunLock:
  """The lock of one run directory: an exclusive flock on `<dir>/lock`, a file that names the
  pid and host of the run holding it."""

  def __init__(self, directory: Path):
    self.directory = Path(directory)
    self.path = self.directory / LOCK
    self._file = None

  def check(self) -> None:
    """Raises DirectoryInUse if a live run holds the lock; reads, writes nothing."""
    try:
      file = open(self.path)
    except OSError:
      return  # no lock file: nobody holds it
    with file:
      if not _try_flock(file, fcntl.LOCK_SH):
        raise _in_use(self.directory, file)

  def acquire(self) -> None:
    """Takes the lock of the existing directory, taking over one a run that ended left behind
    (with a one-line warning); raises DirectoryInUse if a live run holds it."""
    while True:
      file = os.fdopen(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644), "r+")
      if not _try_flock(file, fcntl.LOCK_EX):
        with file:
          raise _in_use(self.directory, file)
      try:
        if os.stat(self.path).st_ino == os.fstat(file.fileno()).st_ino:
          break
      except FileNotFoundError:
        pass
      file.close()  # the holder ended and removed the file between our open and flock: again
    left = _holder(file)
    if left:
      sys.stderr.write(f"warning: --run_dir: {self.directory} was locked by pid {left[0]} on "
                       f"host {left[1]}, which has ended; taking the lock over\n")
    file.seek(0)
    file.truncate()
    file.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}) + "\n")
    file.flush()
    self._file = file

  def release(self) -> None:
    """Removes the lock file and drops the flock (nothing if not held)."""
    if self._file is not None:
      self.path.unlink(missing_ok=True)
      self._file.close()
      self._file = None


def _write_text(path: Path, text: str) -> None:
  files.write_atomic(path, text)


def _write_json(path: Path, record: dict) -> None:
  _write_text(path, json.dumps(record, indent=2) + "\n")


def _now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def flags_text(fv: flags.FlagValues) -> str:
  """The flags given on the command line or in flag files, one per line, as a flag file."""
  lines = [fv[name].serialize() for name in sorted(fv)
           if fv[name].name == name and fv[name].present and name not in _NOT_RECORDED]
  return "# Flags of this run: rerun or resume with --flagfile=<this file>.\n" + "\n".join(
      lines) + "\n"


def check_path(path: Path, *, resume: bool, overwrite: bool) -> None:
  """Raises ValueError unless a run can be written (or resumed) in `path` (DirectoryInUse if a
  live run uses it); writes nothing."""
  if resume and overwrite:
    raise ValueError("--resume and --overwrite exclude each other")
  if path.exists() and not path.is_dir():
    raise ValueError(f"--run_dir: {path} is not a directory")
  RunLock(path).check()
  if resume and not checkpoint.checkpoints(path / CHECKPOINTS):
    raise ValueError(f"--resume: no checkpoint in {path / CHECKPOINTS}: nothing to resume "
                     "(start the run again with --overwrite)")
  if not resume and not overwrite and path.is_dir() and any(
      p.name != LOCK for p in path.iterdir()):
    raise ValueError(f"--run_dir: {path} is not empty: pass --resume to continue its run or "
                     "--overwrite to replace it")
  existing = next(p for p in (path, *path.absolute().parents) if p.exists())
  if not os.access(existing, os.W_OK | os.X_OK):
    raise ValueError(f"--run_dir: cannot write in {existing}")


def fresh_path(parent: Path = Path("runs")) -> Path:
  """A new folder name for a run without --run_dir: runs/<UTC date-time>[-n]."""
  stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
  path, number = parent / stamp, 1
  while path.exists():
    path, number = parent / f"{stamp}-{number}", number + 1
  return path


def from_flags(config: SearchConfig, fv: flags.FlagValues = flags.FLAGS) -> RunDirectory | None:
  """The run directory the flags ask for (a fresh one under runs/ without --run_dir, None for an
  empty --run_dir), checked and, with --resume, its checkpoint loaded; nothing is written yet.
  Raises ValueError naming the flag at fault."""
  for name in ("checkpoint_every", "checkpoint_every_secs"):
    if fv[name].value < 0:
      raise ValueError(f"--{name} must be >= 0, got {fv[name].value}")
  if fv.run_dir is None and not fv.resume:
    path = fresh_path()
  elif not fv.run_dir:
    given = [name for name in RUN_DIR_FLAGS if fv[name].present]
    if given:
      raise ValueError(f"--{given[0]} needs --run_dir")
    return None
  else:
    path = Path(fv.run_dir)
  check_path(path, resume=fv.resume, overwrite=fv.overwrite)
  loaded = checkpoint.load_latest(path / CHECKPOINTS, config) if fv.resume else None
  return RunDirectory(path, config, flags_text=flags_text(fv), loaded=loaded,
                      overwrite=fv.overwrite, every=fv.checkpoint_every,
                      every_secs=fv.checkpoint_every_secs)


class RunDirectory(RunHooks):
  """Writes a run's files as the driver reports to it, checkpoints at its boundaries and stops
  the run (raising `Interrupted`) after a checkpoint once `stop` has seen a signal. It holds the
  directory's lock from `started` to `finished` (or `close`, which ends a run that stopped)."""

  def __init__(self, path: Path, config: SearchConfig, *, flags_text: str,
               loaded: checkpoint.Loaded | None = None, overwrite: bool = False, every: int = 0,
               every_secs: float = 0.0):
    self.path = Path(path)
    self.config = config
    self.flags_text = flags_text
    self.loaded = loaded
    self.overwrite = overwrite
    self.every, self.every_secs = every, every_secs
    self.stop = StopSignals()
    self.lock = RunLock(self.path)
    self.progress_lines = loaded.extra["progress_lines"] if loaded else 0
    self.selected = bool(loaded and loaded.snapshot.experiments)  # a candidate was selected
    self.saved_evaluations = loaded.snapshot.evaluations if loaded else 0
    self.saved_time = time.monotonic()
    self.last_checkpoint = loaded.path if loaded else None
    self._candidate: Program | None = None

  @property
  def resume(self) -> Snapshot | None:
    """The snapshot to continue from (None for a new run)."""
    return self.loaded.snapshot if self.loaded else None

  def started(self, seed: int) -> None:
    """Creates the directory (or takes over the resumed one), locks it, names it on stderr and
    records the run; raises DirectoryInUse, having written nothing, if a live run holds it."""
    self.path.mkdir(parents=True, exist_ok=True)
    self.lock.acquire()
    sys.stderr.write(f"run directory: {self.path}\n")
    facts = {"time": _now(), "command": sys.argv, "device": device.describe()}
    self.saved_time = time.monotonic()
    if self.loaded:
      log, facts_file = self.path / "progress.jsonl", self.path / "run.json"
      lines = log.read_text().splitlines(keepends=True) if log.exists() else []
      _write_text(log, "".join(lines[:self.progress_lines]))  # the lines the checkpoint knew
      record = json.loads(facts_file.read_text()) if facts_file.exists() else {}
      record.setdefault("resumes", []).append({**facts, "checkpoint": str(self.loaded.path)})
      _write_json(facts_file, record)
      return
    if self.overwrite:
      self._clear()
    _write_text(self.path / "flags.txt", self.flags_text)
    (self.path / "progress.jsonl").touch()
    _write_json(self.path / "run.json", {
        "library_version": azero_jax.__version__, "jax_version": jax.__version__, "seed": seed,
        **facts})

  def _clear(self) -> None:
    """Deletes the files of an earlier run (only those: nothing else in the directory)."""
    for name in FILES:
      (self.path / name).unlink(missing_ok=True)
    for folder in (CHECKPOINTS, WORKERS):
      shutil.rmtree(self.path / folder, ignore_errors=True)

  def progress(self, experiment: int, report: ProgressReport,
               candidate: tuple[Program, float]) -> None:
    """Appends the report to progress.jsonl; before any selection, the candidate is the best."""
    self.log_progress({"experiment": experiment, **report._asdict()})
    program, fitness = candidate
    if not self.selected and program != self._candidate:
      self._candidate = program
      self._write_best(f"# The best of experiment {experiment} at {report.evaluations} "
                       f"individuals: search fitness {fitness:.6f} (not yet selected)", program)

  def log_progress(self, record: dict) -> None:
    """Appends a progress record (a report's fields and where it comes from) to progress.jsonl."""
    with open(self.path / "progress.jsonl", "a") as file:
      file.write(json.dumps({**record, "elapsed_secs": round(record["elapsed_secs"], 3)}) + "\n")
    self.progress_lines += 1

  def best(self, experiment: int, result: ExperimentResult) -> None:
    """Saves the new best candidate."""
    self.selected = True
    self._write_best(f"# The best so far: the candidate of experiment {experiment}, select "
                     f"fitness {result.select_fitness:.6f}, search fitness "
                     f"{result.search_fitness:.6f}", result.candidate)

  def _write_best(self, header: str, program: Program) -> None:
    _write_text(self.path / "best_program.txt", f"{header}\n{program.to_text()}")

  def boundary(self, evaluations: int, snapshot, force: bool) -> None:
    """Checkpoints when forced, asked to stop, or when the evaluations or seconds are due; then
    stops the run if a signal asked for it."""
    due = (force or self.stop.signum is not None
           or (self.every and evaluations >= self.saved_evaluations + self.every)
           or (self.every_secs and time.monotonic() >= self.saved_time + self.every_secs))
    if due:
      self.last_checkpoint = checkpoint.save(self.path / CHECKPOINTS, snapshot(), self.config,
                                             {"progress_lines": self.progress_lines})
      self.saved_evaluations, self.saved_time = evaluations, time.monotonic()
    if self.stop.signum is not None:
      raise Interrupted(self.stop.signum, self.last_checkpoint)

  def close(self) -> None:
    """Ends the run's use of the directory: releases its lock."""
    self.lock.release()

  def finished(self, result: RunResult) -> None:
    """Writes result.json and releases the directory."""
    _write_json(self.path / "result.json", {
        "seed": result.seed, "select_fitness": result.select_fitness,
        "final_fitness": result.final_fitness, "seconds": round(result.seconds, 3),
        "experiments": [{"search_fitness": e.search_fitness, "select_fitness": e.select_fitness,
                         "individuals": e.num_individuals, "train_steps": e.train_steps,
                         "fec_hit_rate": e.hit_rate, "seconds": round(e.seconds, 3)}
                        for e in result.experiments],
        "program": result.best_program.to_text()})
    self.close()
