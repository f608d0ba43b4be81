#!/usr/bin/env bash
# The README's test command. From nothing: builds .venv/tf1 (Python 3.7 + TF 1.15) and .venv/torch
# (Python 3.11 + torch 2.13) from requirements/, reusing each while its pinned file and interpreter are
# unchanged; installs the Debian packages the tests drive for real; runs ruff, then the suite in each venv.
set -euo pipefail
cd "$(dirname "$0")/.."

PYENV_ROOT="$(pyenv root 2>/dev/null || echo "${HOME}/.pyenv")"
PY37="${TOONIFY_PY37:-${PYENV_ROOT}/versions/3.7.16/bin/python3.7}"
PY311="${TOONIFY_PY311:-$(command -v python3.11)}"
DEBIAN_PACKAGES=(${TOONIFY_TEST_DEBS:-})

ensure_venv() {
  local name=$1 python=$2 req="requirements/$1.txt"
  local stamp=".venv/$name/.requirements.sha256" want
  want=$( { sha256sum "$req"; "$python" --version 2>&1; } | sha256sum | cut -d' ' -f1)
  if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
    echo "== reusing .venv/$name"
    return
  fi
  echo "== building .venv/$name from $req"
  rm -rf ".venv/$name"
  "$python" -m venv ".venv/$name"
  ".venv/$name/bin/python" -m pip install -q --upgrade "pip==23.3.2"
  ".venv/$name/bin/python" -m pip install -q -r "$req"
  echo "$want" >"$stamp"
}

ensure_debs() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  if ((${#missing[@]})); then
    echo "== installing Debian packages: ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

((${#DEBIAN_PACKAGES[@]})) && ensure_debs "${DEBIAN_PACKAGES[@]}"
ensure_venv tf1 "$PY37"
ensure_venv torch "$PY311"

echo "== ruff"
.venv/torch/bin/ruff check app stylegan2 tests bench

export TF_CPP_MIN_LOG_LEVEL=2 PYTHONDONTWRITEBYTECODE=1
status=0
for engine in tf1 torch; do
  echo "== pytest, engine $engine (.venv/$engine)"
  TOONIFY_ENGINE=$engine ".venv/$engine/bin/python" -m pytest -q -p no:cacheprovider tests "$@" || status=1
done
exit $status
