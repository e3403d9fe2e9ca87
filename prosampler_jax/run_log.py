"""Where a run's log lines go: INFO to ``WORKDIR/train.log``, warnings and errors also to the terminal.

The terminal is for what a person watches (progress bars, tables, warnings); the libraries' INFO lines
(checkpoint-manager internals, backend probes, the loop's per-step lines) belong in the run's own file.
Everything goes through absl logging, to which Python's ``logging`` (JAX, orbax, tfds) propagates.
What C and C++ libraries print themselves (TensorFlow's and XLA's start-up lines, oneDNN notices,
"All log messages before absl::InitializeLog()") bypasses Python: :func:`native_output_to` sends the
process's stderr descriptor to the log file while Python's ``sys.stderr`` keeps the terminal.
"""

from __future__ import annotations

import contextlib
import logging as std_logging
import math
import os
import sys
from collections.abc import Iterator

from absl import logging

LOG_FILE = "train.log"


@contextlib.contextmanager
def to_file(workdir: str, *, terminal_level: int = std_logging.WARNING, process_index: int = 0
            ) -> Iterator[str]:
  """Within the block, log records at INFO and above go to ``workdir/train.log`` (appended; a resumed
  run continues its file; process i > 0 of a multi-host run writes ``train.i.log``) and only those at
  ``terminal_level`` (a Python logging level) and above reach the terminal. Restores the previous levels
  afterwards. What C/C++ libraries print to stderr goes to the same file (:func:`native_output_to`).
  Yields the log file's path."""
  os.makedirs(workdir, exist_ok=True)
  name = LOG_FILE if process_index == 0 else LOG_FILE.replace(".log", f".{process_index}.log")
  path = os.path.join(workdir, name)
  logging.use_absl_handler()  # as app.run does: the root logger writes to the terminal through absl
  root, terminal = std_logging.getLogger(), logging.get_absl_handler()
  file_handler = std_logging.FileHandler(path, encoding="utf-8")
  file_handler.setFormatter(logging.PythonFormatter())
  file_handler.setLevel(std_logging.INFO)
  previous = (root.level, terminal.level, logging.get_verbosity())
  root.addHandler(file_handler)
  root.setLevel(std_logging.INFO)
  logging.set_verbosity(logging.INFO)
  terminal.setLevel(terminal_level)
  try:
    with native_output_to(path):
      yield path
  finally:
    root.removeHandler(file_handler)
    file_handler.close()
    root.setLevel(previous[0])
    terminal.setLevel(previous[1])
    logging.set_verbosity(previous[2])




@contextlib.contextmanager
def native_output_to(path: str) -> Iterator[None]:
  """Within the block, what C/C++ code writes to the process's stderr (file descriptor 2) is appended
  to ``path``, while Python's ``sys.stderr`` (progress bars, warnings, absl's terminal handler) goes on
  writing to the terminal through a duplicate of the original descriptor. Restores both afterwards.
  Enter it before creating progress bars: they keep the stream they were given."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  sys.stderr.flush()
  saved_fd = os.dup(2)
  # Nested (a sweep's runs inside the sweep's block): sys.stderr is already the terminal's duplicate.
  nested = _fileno(sys.stderr) not in (None, 2)
  terminal = sys.stderr if nested else open(  # pylint: disable=consider-using-with
      os.dup(2), "w", buffering=1, encoding=getattr(sys.stderr, "encoding", None) or "utf-8",
      errors="backslashreplace")
  log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
  handler = logging.get_absl_handler().python_handler
  previous_stderr, previous_stream = sys.stderr, handler.stream
  os.dup2(log_fd, 2)
  os.close(log_fd)
  sys.stderr = terminal
  handler.setStream(terminal)
  try:
    yield
  finally:
    terminal.flush()
    handler.setStream(previous_stream)
    sys.stderr = previous_stderr
    os.dup2(saved_fd, 2)
    os.close(saved_fd)
    if not nested:
      terminal.close()


def _fileno(stream) -> int | None:
  try:
    return stream.fileno()
  except (AttributeError, OSError, ValueError):  # pytest's capture, StringIO: no descriptor
    return None


# The last window's batch statistics worth a line in the final table (diagnostics.batch_stats).
_BATCH_FIGURES = ("mean_neg_cos", "max_neg_cos", "false_negative_rate", "margin_dropped_rate", "coverage",
                  "loss_gap")


def final_table(results: dict) -> str:
  """A run's final figures as a two-column Markdown table: every number of ``results`` and of its last
  batch statistics, but the bookkeeping (steps, seconds, counters), in the order the run wrote them."""
  skip = ("step", "epoch", "seconds", "num_", "seed")
  stats = results.get("batch_stats") or {}
  figures = {**{k: v for k, v in results.items() if not any(part in k for part in skip)},
             **{k: stats[k] for k in _BATCH_FIGURES if k in stats}}
  rows = [(k, v) for k, v in figures.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
  cell = lambda v: f"{v:.4f}" if isinstance(v, float) and math.isfinite(v) else str(v)
  return "\n".join(["| metric | value |", "|---|---|", *(f"| {k} | {cell(v)} |" for k, v in rows)])
