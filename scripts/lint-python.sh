#!/usr/bin/env bash
# Lints the Python that ships (the remote helper, the server kit's adopt.py) and
# its tests: every file must byte-compile, and pyflakes (Debian: python3-pyflakes, installed by
# scripts/ensure-deps.sh) must report nothing. Without pyflakes only the
# compile check runs, with a warning.
set -euo pipefail
cd "$(dirname "$0")/.."
files=(src/host/remote-helper.py examples/server/adopt.py __tests__/python/*.py)

# Compiled bytecode goes to a throwaway directory, never next to the sources.
cache="$(mktemp -d)"
trap 'rm -rf "$cache"' EXIT
PYTHONPYCACHEPREFIX="$cache" python3 -m py_compile "${files[@]}"

for python in python3 /usr/bin/python3; do
  if "$python" -c 'import pyflakes' >/dev/null 2>&1; then
    PYTHONDONTWRITEBYTECODE=1 "$python" -m pyflakes "${files[@]}"
    exit
  fi
done
echo "lint-python: pyflakes is not installed (apt-get install python3-pyflakes); only byte-compiled" >&2
