#!/bin/sh
# Fetch and verify the model files into TOONIFY_MODELS_DIR (default: models/).
#   TOONIFY_MODEL_MIRROR=https://host/path   base URL holding all three files
#   TOONIFY_URL_FFHQ / TOONIFY_URL_TOON / TOONIFY_URL_VGG   per-file URLs
#   TOONIFY_LOCAL_MODELS=DIR   copy from DIR instead of downloading (the Docker build uses this)
# Resumable, idempotent, atomic; sha256 recorded in models/manifest.json. Options: --verify-only, --no-structural,
# --style NAME URL SHA256 (repeatable: a style into models/styles/NAME.pkl, kept only with that sha256).
# make-tiny's test models (TINY-TEST-MODELS.txt beside them) are replaced here, and never copied from
# TOONIFY_LOCAL_MODELS.
set -eu
cd "$(dirname "$0")"
PYTHON="${TOONIFY_PYTHON:-}"
if [ -z "$PYTHON" ]; then
  for candidate in .venv/tf1/bin/python .venv/torch/bin/python python3; do
    if command -v "$candidate" >/dev/null 2>&1; then PYTHON="$candidate"; break; fi
  done
fi
exec "$PYTHON" -m app.preload "$@"
