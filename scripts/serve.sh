#!/usr/bin/env bash
# `make serve`: build/reuse .venv/tf1, make sure models/ has models (tiny test ones if the real ones are
# absent), then run the service.
set -euo pipefail
cd "$(dirname "$0")/.."
PYENV_ROOT="$(pyenv root 2>/dev/null || echo "${HOME}/.pyenv")"
PY37="${TOONIFY_PY37:-${PYENV_ROOT}/versions/3.7.16/bin/python3.7}"
stamp=.venv/tf1/.requirements.sha256
want=$( { sha256sum requirements/tf1.txt; "$PY37" --version 2>&1; } | sha256sum | cut -d' ' -f1)
if [[ ! -f $stamp || "$(cat "$stamp")" != "$want" ]]; then
  rm -rf .venv/tf1 && "$PY37" -m venv .venv/tf1
  .venv/tf1/bin/python -m pip install -q --upgrade "pip==23.3.2"
  .venv/tf1/bin/python -m pip install -q -r requirements/tf1.txt
  echo "$want" >"$stamp"
fi
models="${TOONIFY_MODELS_DIR:-models}"
if [[ ! -s "$models/stylegan2-ffhq-config-f.pkl" ]]; then
  echo "no real weights in $models: writing tiny TEST models (run preload.sh for the real ones)"
  .venv/tf1/bin/python -m stylegan2 make-tiny --out "$models"
fi
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
exec .venv/tf1/bin/python -m app serve
