# shellcheck shell=bash disable=SC2034  # sets what host-up.sh reads back
# Style poetry-run: `ExecStart=/usr/local/bin/poetry run gunicorn ...` from the project
# directory /srv/myapp, where pyproject.toml sits next to the in-project venv .venv.
# There is no PyPI here, so /usr/local/bin/poetry is a STAND-IN, not Poetry: it implements
# only `poetry run CMD [ARGS...]` the way Poetry does it on POSIX: find pyproject.toml in
# the working directory or above, take the project's .venv, set VIRTUAL_ENV and put its
# bin/ first on PATH, then exec CMD (the venv's bin/CMD when it exists) in place of itself.
put /usr/local/bin/poetry 755 root:root <<'SH'
#!/bin/sh
# Stand-in for Poetry's `poetry run` (the test hosts have no PyPI); see hostkit/styles/poetry-run.sh.
set -eu
if [ "${1:-}" != run ] || [ $# -lt 2 ]; then
  echo "poetry (stand-in): only 'poetry run CMD [ARGS...]' is implemented" >&2
  exit 1
fi
shift
project=$PWD
while [ ! -f "$project/pyproject.toml" ]; do
  if [ "$project" = / ]; then
    echo "Poetry could not find a pyproject.toml file in $PWD or its parents" >&2
    exit 1
  fi
  project=$(dirname "$project")
done
venv=$project/.venv
[ -x "$venv/bin/python" ] || { echo "poetry (stand-in): no virtualenv at $venv" >&2; exit 1; }
VIRTUAL_ENV=$venv
PATH=$venv/bin:$PATH
export VIRTUAL_ENV PATH
unset PYTHONHOME
if [ -x "$venv/bin/$1" ]; then
  cmd=$venv/bin/$1
  shift
  exec "$cmd" "$@"
fi
exec "$@"
SH
put /srv/myapp/pyproject.toml 644 deploy:deploy <<'TOML'
[tool.poetry]
name = "myapp"
version = "0.1.0"
description = "Flask app served by Gunicorn"
authors = ["Example <ops@example.test>"]
package-mode = false

[tool.poetry.dependencies]
python = "^3.11"
flask = ">=2.2"
gunicorn = ">=20.1"

[build-system]
requires = ["poetry-core"]
build-backend = "poetry.core.masonry.api"
TOML
guide_unit "/usr/local/bin/poetry run gunicorn --workers 3 --chdir /srv/myapp/current --bind unix:/run/myapp/myapp.sock wsgi:app"
