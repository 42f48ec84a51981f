#!/usr/bin/env bash
# Train and evaluate on a synthetic release of 100 classes and print images/s and time to a stated val
# accuracy (scripts/gpu_check.py says what it builds and prints). Full run: one GPU, under 8 minutes.
#   scripts/gpu_check.sh            # full check (CUDA when present; --device cpu forces the CPU)
#   scripts/gpu_check.sh --small    # CPU-sized run, about a minute on 2 cores (CI runs it)
# On a machine without the project's venv (a lent GPU machine: its python3 holds PyTorch), the package runs
# from src/ with that python3; the few pure-Python dependencies it lacks travel as wheels in .whl/
# (`scripts/gpu_check.sh --fetch-wheels` here downloads them for Python 3.12 into .whl/).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--fetch-wheels" ]; then
  mkdir -p .whl
  for pkg in sqlalchemy==2.0.* greenlet alembic mako simplejpeg typer rich click shellingham; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d .whl "$pkg" || python3 -m pip download -q --no-deps -d .whl "$pkg"
  done
  ls .whl
  exit 0
fi

if [ -x .venv/bin/python ]; then
  PY=.venv/bin/python
else
  PY=python3
  export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
  if ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
  fi
fi
export PYTHONUNBUFFERED=1
exec "$PY" scripts/gpu_check.py "$@"
