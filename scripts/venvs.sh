# shellcheck shell=bash disable=SC2034  # PY37/PY311 are used by the scripts that source this
# Sourced by test.sh, serve.sh and test-containers.sh: build a venv from requirements/NAME.txt, reused while that
# file and the interpreter's version are unchanged. The engines' interpreters: tf1 needs Python 3.7 (pyenv's
# 3.7.16, or TOONIFY_PY37), torch Python 3.11 (or 3.12/3.10; TOONIFY_PY311).
PYENV_ROOT="$(pyenv root 2>/dev/null || echo "${HOME}/.pyenv")"
PY37="${TOONIFY_PY37:-${PYENV_ROOT}/versions/3.7.16/bin/python3.7}"
PY311="${TOONIFY_PY311:-$(command -v python3.11 || command -v python3.12 || command -v python3.10 || true)}"

# What to do when the interpreter for a venv is missing, by venv name.
declare -A PYTHON_HINT=(
  [tf1]="install Python 3.7 (pyenv install 3.7.16) or set TOONIFY_PY37 to a python3.7"
  [torch]="install Python 3.11 (or 3.10/3.12) or set TOONIFY_PY311 to one"
)

# True when $1 names an interpreter that runs.
python_runs() {
  [[ -n $1 ]] && "$1" --version >/dev/null 2>&1
}

ensure_venv() {
  local name=$1 python=$2 req="requirements/$1.txt"
  local stamp=".venv/$name/.requirements.sha256" want
  if ! python_runs "$python"; then
    echo "error: .venv/$name needs a Python interpreter and '${python:-<none found>}' does not run: ${PYTHON_HINT[$name]}" >&2
    return 1
  fi
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
