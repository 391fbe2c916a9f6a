# shellcheck shell=bash disable=SC2034  # sets what host-up.sh reads back
# Style celery: the kit's server plus what most Flask apps also run, a Celery worker on
# Redis (Debian's redis-server, python3-celery, python3-redis, in the bookworm and trixie
# images). Redis listens on 127.0.0.1:6379; the app finds it through CELERY_BROKER_URL and
# CELERY_RESULT_BACKEND in /etc/myapp.env. The worker unit myapp-worker.service runs as
# www-data from the release (--workdir /srv/myapp/current), with KillMode=mixed and
# TimeoutStopSec=60 (a stop lets running tasks finish), and the deploy user may
# `sudo systemctl restart myapp-worker`. Release v0 gets the tasks module the worker loads
# (tasks.whoami answers with the release that ran it). CELERY_PYTHON (default the kit's
# venv) is the interpreter the worker runs: celery-blue-green sets the release's own.
[ -x "$R/usr/bin/redis-server" ] && [ -d "$R/usr/lib/python3/dist-packages/celery" ] || {
  echo "style celery needs redis-server and python3-celery in the image (bookworm, trixie)" >&2
  exit 1
}
ln -sfn /lib/systemd/system/redis-server.service "$R/etc/systemd/system/multi-user.target.wants/redis-server.service"
{
  echo "CELERY_BROKER_URL=redis://127.0.0.1:6379/0"
  echo "CELERY_RESULT_BACKEND=redis://127.0.0.1:6379/1"
} >>"$R/etc/myapp.env"
PY=${CELERY_PYTHON:-/srv/myapp/.venv/bin/python}
unit myapp-worker <<UNIT
[Unit]
Description=Celery worker for myapp
After=network.target redis-server.service
Wants=redis-server.service

[Service]
User=www-data
Group=www-data
WorkingDirectory=/srv/myapp
EnvironmentFile=/etc/myapp.env
ExecStart=$PY -m celery --workdir /srv/myapp/current -A tasks worker --concurrency 2 --loglevel INFO --without-gossip --without-mingle --without-heartbeat
KillMode=mixed
TimeoutStopSec=60
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
UNIT
put /etc/sudoers.d/deploy-myapp-worker.new 440 root:root <<'SUDO'
deploy ALL=(root) NOPASSWD: /usr/bin/systemctl restart myapp-worker
SUDO
in_root visudo -cqf /etc/sudoers.d/deploy-myapp-worker.new
mv "$R/etc/sudoers.d/deploy-myapp-worker.new" "$R/etc/sudoers.d/deploy-myapp-worker"
cat >"$R/srv/myapp/releases/v0/tasks.py" <<'PY'
"""Celery tasks of release v0 (the test kit's)."""
import json
import os

from celery import Celery

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, ".zdd-release.json"), encoding="utf-8") as fh:
    RELEASE = json.load(fh)["id"]
app = Celery("tasks", broker=os.environ["CELERY_BROKER_URL"], backend=os.environ["CELERY_RESULT_BACKEND"])


@app.task(name="tasks.whoami")
def whoami(sent_by):
    return {"sent_by": sent_by, "ran_by": RELEASE, "worker_dep": "none"}
PY
in_root chown deploy:deploy /srv/myapp/releases/v0/tasks.py
