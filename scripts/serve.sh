#!/usr/bin/env bash
# `make serve`: pick the engine this machine can run (TOONIFY_ENGINE, else tf1 when Python 3.7 is there, else
# torch), build/reuse its venv, serve the weights in models/ (TOONIFY_MODELS_DIR) when all three are there, or
# else tiny test models kept in .cache/tiny-models — never written where the real weights go.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/venvs.sh
source scripts/venvs.sh
TINY_MODELS=.cache/tiny-models
MODEL_NAMES=(stylegan2-ffhq-config-f.pkl ffhq-cartoon-blended-64.pkl vgg16_zhang_perceptual.pkl)
MARKER=TINY-TEST-MODELS.txt

# The engine to serve with, and its interpreter; says why on stderr when it is not the default.
choose_engine() {
  case "${TOONIFY_ENGINE:-}" in
    tf1) ENGINE=tf1 PYTHON=$PY37 ;;
    torch) ENGINE=torch PYTHON=$PY311 ;;
    "")
      if python_runs "$PY37"; then
        ENGINE=tf1 PYTHON=$PY37
      elif python_runs "$PY311"; then
        ENGINE=torch PYTHON=$PY311
        echo "no Python 3.7 at $PY37 (the tf1 engine needs it: pyenv install 3.7.16, or set TOONIFY_PY37):" \
          "serving with the torch engine on $("$PY311" --version 2>&1) ($PY311)" >&2
      else
        echo "error: no Python to serve with: the tf1 engine needs Python 3.7 (none runs at $PY37: pyenv install" \
          "3.7.16, or set TOONIFY_PY37), the torch engine Python 3.11 (none runs at '${PY311:-<no python3.11>}':" \
          "install it, or set TOONIFY_PY311)" >&2
        exit 1
      fi
      ;;
    *) echo "error: TOONIFY_ENGINE must be tf1 or torch; got '$TOONIFY_ENGINE'" >&2 && exit 1 ;;
  esac
}

# True when $1 holds the three model files and no make-tiny marker.
has_real_weights() {
  local name
  [[ -e $1/$MARKER ]] && return 1
  for name in "${MODEL_NAMES[@]}"; do
    [[ -s $1/$name ]] || return 1
  done
}

choose_engine
ensure_venv "$ENGINE" "$PYTHON"
models="${TOONIFY_MODELS_DIR:-models}"
if ! has_real_weights "$models"; then
  why="no real weights in $models"
  [[ -e $models/$MARKER ]] && why="$models holds tiny test models ($MARKER)"
  echo "$why: serving tiny TEST models from $TINY_MODELS (noise, not faces). For the real weights run" \
    "./preload.sh (it fills $models), then make serve again." >&2
  if [[ ! -e $TINY_MODELS/$MARKER ]]; then
    ".venv/$ENGINE/bin/python" -m stylegan2 make-tiny --out "$TINY_MODELS"
  fi
  models=$TINY_MODELS
fi
export TOONIFY_ENGINE=$ENGINE TOONIFY_MODELS_DIR=$models TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
exec ".venv/$ENGINE/bin/python" -m app serve
