# shellcheck shell=bash disable=SC2034  # PY37/PY311 are used by the scripts that source this
# Sourced by test.sh and serve.sh: build a venv from requirements/NAME.txt, reused while that file and the
# interpreter's version are unchanged.
PYENV_ROOT="$(pyenv root 2>/dev/null || echo "${HOME}/.pyenv")"
PY37="${TOONIFY_PY37:-${PYENV_ROOT}/versions/3.7.16/bin/python3.7}"
PY311="${TOONIFY_PY311:-$(command -v python3.11)}"

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
