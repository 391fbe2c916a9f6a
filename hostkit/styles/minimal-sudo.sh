# shellcheck shell=bash disable=SC2034  # sets what host-up.sh reads back
# Style minimal-sudo: the least-privilege setup. sudoers grants only reload, restart,
# start and status of myapp; the deploy user reads the journal (systemd-journal) but is
# in neither www-data nor adm, so /etc/myapp.env (root:www-data 0640, with the SECRET_KEY
# the app reads at import) and the Nginx error log are unreadable to it.
guide_unit "/srv/myapp/.venv/bin/gunicorn --workers 3 --chdir /srv/myapp/current --bind unix:/run/myapp/myapp.sock wsgi:app"
sudoers deploy-myapp <<'SUDO'
deploy ALL=(root) NOPASSWD: /usr/bin/systemctl reload myapp, /usr/bin/systemctl restart myapp, /usr/bin/systemctl start myapp, /usr/bin/systemctl status myapp
SUDO
in_root gpasswd -d deploy www-data >/dev/null
in_root gpasswd -d deploy adm >/dev/null
in_root usermod -aG systemd-journal deploy
v0_module /srv/myapp/releases/v0/wsgi.py app reads-secret
in_root chown deploy:deploy /srv/myapp/releases/v0/wsgi.py
in_root chown root:www-data /etc/myapp.env
chmod 640 "$R/etc/myapp.env"
grep -q '^SECRET_KEY=.' "$R/etc/myapp.env"
