"""Where a run's log lines go: INFO to ``WORKDIR/train.log``, warnings and errors also to the terminal.

The terminal is for what a person watches (progress bars, tables, warnings); the libraries' INFO lines
(checkpoint-manager internals, backend probes, the loop's per-step lines) belong in the run's own file.
Everything goes through absl logging, to which Python's ``logging`` (JAX, orbax, tfds) propagates.
"""

from __future__ import annotations

import contextlib
import logging as std_logging
import os
from collections.abc import Iterator

from absl import logging

LOG_FILE = "train.log"


@contextlib.contextmanager
def to_file(workdir: str, *, terminal_level: int = std_logging.WARNING, process_index: int = 0
            ) -> Iterator[str]:
  """Within the block, log records at INFO and above go to ``workdir/train.log`` (appended; a resumed
  run continues its file; process i > 0 of a multi-host run writes ``train.i.log``) and only those at
  ``terminal_level`` (a Python logging level) and above reach the terminal. Restores the previous levels
  afterwards. Yields the log file's path."""
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
    yield path
  finally:
    root.removeHandler(file_handler)
    file_handler.close()
    root.setLevel(previous[0])
    terminal.setLevel(previous[1])
    logging.set_verbosity(previous[2])


