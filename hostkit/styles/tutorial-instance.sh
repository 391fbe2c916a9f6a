# shellcheck shell=bash disable=SC2034  # sets what host-up.sh reads back
# Style tutorial-instance: an app with state beside its code, as Flask's own tutorial keeps
# it. The user `ubuntu` owns /home/ubuntu/notes: the package notes/ (an app factory),
# wsgi.py, the venv .venv/, a .env the app reads at import (SECRET_KEY; 640 ubuntu:www-data)
# and instance/notes.sqlite, which every request to / writes a visit to. The unit runs ONE
# worker (`--workers 1`, which adopt.sh must raise to two) on a relative socket, as
# ubuntu:www-data, no ExecReload. No health route. host.env describes the server as
# `adopt.sh --service notes --release-path /srv/notes` leaves it.
# shellcheck source=hostkit/tutorial-lib.sh
. "$KIT/tutorial-lib.sh"
tutorial_base
tutorial_user ubuntu
D=/home/ubuntu/notes
mkdir -p "$R$D/notes" "$R$D/instance"
cat >"$R$D/notes/__init__.py" <<'PY'
"""Notes: counts visits in the instance folder's SQLite database."""
import os
import sqlite3

from flask import Flask


def read_dotenv(path):
    """KEY=value lines into os.environ, as python-dotenv's load_dotenv() does."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                os.environ.setdefault(key.strip(), value.strip().strip("'\""))


def create_app():
    read_dotenv(os.path.join(os.path.dirname(os.path.dirname(__file__)), ".env"))
    app = Flask(__name__, instance_relative_config=True)
    app.config["SECRET_KEY"] = os.environ["SECRET_KEY"]
    database = os.path.join(app.instance_path, "notes.sqlite")

    @app.route("/")
    def index():
        with sqlite3.connect(database, timeout=10) as db:
            db.execute("CREATE TABLE IF NOT EXISTS visits (at TEXT)")
            db.execute("INSERT INTO visits VALUES (datetime('now'))")
            count = db.execute("SELECT count(*) FROM visits").fetchone()[0]
        return f"Hello from notes, visit {count}\n", 200, {"X-Visits": str(count)}

    return app
PY
cat >"$R$D/wsgi.py" <<'PY'
from notes import create_app

app = create_app()
PY
printf 'flask\ngunicorn\n' >"$R$D/requirements.txt"
printf '.venv/\n*.sock\n__pycache__/\n.env\ninstance/\n' >"$R$D/.gitignore"
printf '# secrets of the notes app\nSECRET_KEY=%s\n' "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$R$D/.env"
in_root chown -hR ubuntu:ubuntu "$D"
in_root chown ubuntu:www-data "$D/.env" "$D/instance"
chmod 640 "$R$D/.env"
chmod 2770 "$R$D/instance"
tutorial_venv "$D/.venv" ubuntu:ubuntu
tutorial_unit notes ubuntu www-data "$D" \
  "$D/.venv/bin/gunicorn --workers 1 --bind unix:notes.sock -m 007 wsgi:app"

tutorial_site notes "80 default_server" _ /home/ubuntu/notes/notes.sock

SERVICE=notes
RELEASE_PATH=/srv/notes
HEALTH_URL=http://unix:/run/notes/notes.sock:/health
READY=http://$IP/
