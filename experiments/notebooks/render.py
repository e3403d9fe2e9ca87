"""Executes the reproduction notebook and writes it as HTML: ``./run.sh notebook``.

Why HTML rather than a Jupyter server: the machines this runs on are headless (no browser, no open port),
and an executed notebook saved as one HTML file opens anywhere, tables and plots included. The executed
``.ipynb`` is written beside it for those who have Jupyter.

  ./run.sh notebook [--results=runs] [--out=runs/reproduce.html]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import nbclient
import nbformat
from nbconvert import HTMLExporter

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOTEBOOK = os.path.join(REPO, "experiments", "notebooks", "reproduce.ipynb")


def render(results: str, out: str) -> tuple[str, str]:
  """Runs the notebook on the sweeps under ``results``; writes ``out`` (HTML) and the executed notebook
  beside it (``.ipynb``). Returns both paths."""
  if not out.endswith(".html"):
    raise ValueError(f"--out={out!r}; allowed: a path ending in .html.")
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  environment = {"PROSAMPLER_RESULTS": os.path.abspath(results), "PROSAMPLER_ROOT": REPO}
  previous = {k: os.environ.get(k) for k in environment}
  os.environ.update(environment)  # the kernel inherits them
  try:
    # The kernel's own start-up chatter (a warning about its TCP transport) stays off the terminal; what
    # the cells print or raise comes back through the notebook.
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": REPO}}).execute(stderr=subprocess.DEVNULL)
  finally:
    for key, value in previous.items():
      if value is None:
        os.environ.pop(key, None)
      else:
        os.environ[key] = value
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  executed = out[:-len(".html")] + ".ipynb"
  nbformat.write(notebook, executed)
  html, _ = HTMLExporter().from_notebook_node(notebook)
  with open(out, "w", encoding="utf-8") as f:
    f.write(html)
  return out, executed


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="./run.sh notebook", description=__doc__.split("\n")[0])
  parser.add_argument("--results", default="runs", help="Directory of sweeps (default runs).")
  parser.add_argument("--out", default="runs/reproduce.html", help="The HTML to write.")
  args = parser.parse_args(argv)
  try:
    html, executed = render(args.results, args.out)
  except ValueError as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  print(f"wrote {html} (open it in a browser) and {executed}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
