#!/usr/bin/env bash
# One entry point for people and CI:
#   ./dev.sh run     set up (first time) and run the assistant on its embedded defaults
#   ./dev.sh test    set up (first time) and run the checks and the tests
#   ./dev.sh shell   chat in the terminal
#   ./dev.sh <cmd>   any `python -m bot` command, e.g. ./dev.sh content check
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=.venv

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
  fi
  # Reinstall only when the project's dependencies changed.
  if [ ! -f "$VENV/.installed" ] || [ pyproject.toml -nt "$VENV/.installed" ]; then
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e '.[test]'
    touch "$VENV/.installed"
  fi
}

command=${1:-run}
[ $# -gt 0 ] && shift
setup
case "$command" in
  run)   exec "$VENV/bin/python" -m bot run "$@" ;;
  shell) exec "$VENV/bin/python" -m bot shell "$@" ;;
  test)
    "$VENV/bin/ruff" check .
    "$VENV/bin/python" -m bot content check
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  *)     exec "$VENV/bin/python" -m bot "$command" "$@" ;;
esac
