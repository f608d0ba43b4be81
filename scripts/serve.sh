#!/usr/bin/env bash
# `make serve`: build/reuse .venv/tf1, make sure models/ has models (tiny test ones if the real ones are
# absent), then run the service.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/venvs.sh
source scripts/venvs.sh
ensure_venv tf1 "$PY37"
models="${TOONIFY_MODELS_DIR:-models}"
if [[ ! -s "$models/stylegan2-ffhq-config-f.pkl" ]]; then
  echo "no real weights in $models: writing tiny TEST models (run preload.sh for the real ones)"
  .venv/tf1/bin/python -m stylegan2 make-tiny --out "$models"
fi
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
exec .venv/tf1/bin/python -m app serve
