#!/usr/bin/env bash
# STUB until the packaging issue: will fetch and verify the three model files into TOONIFY_MODELS_DIR.
# Today it only says what is missing and how to get test models.
set -euo pipefail
dir="${TOONIFY_MODELS_DIR:-models}"
missing=0
for f in stylegan2-ffhq-config-f.pkl ffhq-cartoon-blended-64.pkl vgg16_zhang_perceptual.pkl; do
  if [ ! -s "$dir/$f" ]; then echo "missing: $dir/$f"; missing=1; fi
done
if [ "$missing" = 1 ]; then
  echo "preload.sh cannot download yet (stub). For test models: python -m stylegan2 make-tiny --out $dir" >&2
  exit 1
fi
echo "all model files present in $dir"
