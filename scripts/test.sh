#!/usr/bin/env bash
# The README's test command. From nothing: builds .venv/tf1 (Python 3.7 + TF 1.15) and .venv/torch
# (Python 3.11 + torch 2.13) from requirements/, reusing each while its pinned file and interpreter are
# unchanged; installs the Debian packages the tests drive for real; runs ruff, then the suite in each venv.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/venvs.sh
source scripts/venvs.sh
# shellcheck source=scripts/debs.sh
source scripts/debs.sh
# Debian packages the tests drive for real: linters for the packaging files, redis-server, headless chromium.
read -r -a DEBIAN_PACKAGES <<<"${TOONIFY_TEST_DEBS:-shellcheck docker-compose redis-server chromium}"

((${#DEBIAN_PACKAGES[@]})) && ensure_debs "${DEBIAN_PACKAGES[@]}"
ensure_venv tf1 "$PY37"
ensure_venv torch "$PY311"

echo "== tests read only the repository (tests/fixtures/), nothing beside it"
if grep -rnE "\.\./shared|parent / .shared.|[\"']shared[\"']" tests --include='*.py'; then
  echo "these tests read a folder outside the repository; copy the data into tests/fixtures/" >&2
  exit 1
fi

echo "== ruff"
.venv/torch/bin/ruff check app stylegan2 tests bench clients

export TF_CPP_MIN_LOG_LEVEL=2 PYTHONDONTWRITEBYTECODE=1
# The two suites run side by side: each mostly waits on the servers and processes it starts, so together they take
# about 35 min on 2 cores instead of 45 one after the other. Each writes its own log, shown whole once it ends.
LOGS=.cache/test-logs
mkdir -p "$LOGS"
declare -A suites=()
trap 'kill "${suites[@]}" 2>/dev/null || true' EXIT
for engine in tf1 torch; do
  echo "== pytest, engine $engine (.venv/$engine), side by side; log: $LOGS/pytest-$engine.log"
  TOONIFY_ENGINE=$engine ".venv/$engine/bin/python" -m pytest -q -p no:cacheprovider tests --ignore=tests/containers \
    "$@" >"$LOGS/pytest-$engine.log" 2>&1 &
  suites[$engine]=$!
done
status=0
for engine in tf1 torch; do
  wait "${suites[$engine]}" || status=1
  unset "suites[$engine]"
  echo "== pytest, engine $engine (.venv/$engine)"
  cat "$LOGS/pytest-$engine.log"
done
# Both images built from the Dockerfiles and checked running (Docker engine started here if none answers).
bash scripts/test-containers.sh || status=1
exit $status
