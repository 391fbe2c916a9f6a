# shellcheck shell=bash disable=SC2034  # sets what host-up.sh reads back
# Style gunicorn-docs-nginx: the Nginx configuration of Gunicorn's deployment docs
# ("Deploying Gunicorn", examples/nginx.conf) as the whole /etc/nginx/nginx.conf: Nginx
# as nobody, `upstream app_server { server unix:/tmp/gunicorn.sock fail_timeout=0; }`, a
# default server that closes connections for unknown Host names (return 444), the app's
# server only for example.com and www.example.com, static files from `root
# .../current/public` tried first (try_files $uri @proxy_to_app), error_page to
# /500.html. Gunicorn comes from a virtualenv in the deploy user's home (the docs'
# "Using virtual environments": ~/venvs/webapp) and runs under the docs' gunicorn.service
# without its socket unit: Type=notify, `kill -s HUP $MAINPID`, KillMode=mixed, user
# someuser, `--bind unix:/tmp/gunicorn.sock`. Not PrivateTmp=true: a private /tmp would
# hide the socket from Nginx.
# Adapted to the release layout only: /path/to/app is /srv/myapp, --chdir
# /srv/myapp/current and wsgi:app; plus --workers 3 (as the docs' gunicorn -w 3).
in_root useradd --create-home --shell /bin/bash someuser

# ~deploy/venvs/webapp: the kit's venv (over Debian's Flask and Gunicorn, no PyPI here)
# moved there, faster than a new one; its scripts' #! lines name its path. someuser must
# reach it: homes are 0700 on newer Debian (sid), so the deploy user's is made searchable.
chmod 711 "$R/home/deploy"
install -d -o "$(stat -c %u "$R/home/deploy")" -g "$(stat -c %g "$R/home/deploy")" "$R/home/deploy/venvs"
cp -a "$R/srv/myapp/.venv" "$R/home/deploy/venvs/webapp"
find "$R/home/deploy/venvs/webapp" -name __pycache__ -prune -exec rm -rf {} +
grep -rlI '/srv/myapp/.venv' "$R/home/deploy/venvs/webapp/bin" "$R/home/deploy/venvs/webapp/pyvenv.cfg" |
  xargs -r sed -i 's|/srv/myapp/.venv|/home/deploy/venvs/webapp|g'
head -n1 "$R/home/deploy/venvs/webapp/bin/gunicorn" | grep -qx '#!/home/deploy/venvs/webapp/bin/python3'

gunicorn_docs_unit "/home/deploy/venvs/webapp/bin/gunicorn --workers 3 --chdir /srv/myapp/current --bind unix:/tmp/gunicorn.sock wsgi:app"

nginx_only
rm -f "$R/etc/nginx/sites-available/myapp"
# The example, its two locations from style-lib.sh.
{
  cat <<'NGINX'
worker_processes 1;

user nobody nogroup;
# 'user nobody nobody;' for systems with 'nobody' as a group instead
error_log  /var/log/nginx/error.log warn;
pid /var/run/nginx.pid;

events {
  worker_connections 1024; # increase if you have lots of clients
  accept_mutex off; # set to 'on' if nginx worker_processes > 1
  # 'use epoll;' to enable for Linux 2.6+
  # 'use kqueue;' to enable for FreeBSD, OSX
}

http {
  include mime.types;
  # fallback in case we can't determine a type
  default_type application/octet-stream;
  access_log /var/log/nginx/access.log combined;
  sendfile on;

  upstream app_server {
    # fail_timeout=0 means we always retry an upstream even if it failed
    # to return a good HTTP response

    # for UNIX domain socket setups
    server unix:/tmp/gunicorn.sock fail_timeout=0;

    # for a TCP configuration
    # server 192.168.0.7:8000 fail_timeout=0;
  }

  server {
    # if no Host match, close the connection to prevent host spoofing
    listen 80 default_server;
    return 444;
  }

  server {
    # use 'listen 80 deferred;' for Linux
    # use 'listen 80 accept_filter=httpready;' for FreeBSD
    listen 80;
    client_max_body_size 4G;

    # set the correct host(s) for your site
    server_name example.com www.example.com;

    keepalive_timeout 5;

    # path for static files
    root /srv/myapp/current/public;

NGINX
  gunicorn_docs_locations app_server '    '
  echo
  cat <<'NGINX'
    error_page 500 502 503 504 /500.html;
    location = /500.html {
      root /srv/myapp/current/public;
    }
  }
}
NGINX
} | put /etc/nginx/nginx.conf 644 root:root

SERVICE=gunicorn
HEALTH_URL=http://unix:/tmp/gunicorn.sock:/health
NGINX_URL=http://example.com/health
READY=http://example.com/health
