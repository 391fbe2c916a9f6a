# shellcheck shell=bash disable=SC2034  # sets what host-up.sh reads back
# Style upstream-multiline: a named upstream over several lines with max_fails and
# keepalive (so HTTP/1.1 and an empty Connection header), the proxy settings in an
# included snippet, and comments and quoted strings holding `;`, `{` and `}`.
guide_unit "/srv/myapp/.venv/bin/gunicorn --workers 3 --bind unix:/run/myapp/myapp.sock --chdir /srv/myapp/current wsgi:app"

put /etc/nginx/snippets/myapp-proxy.conf 644 root:root <<'NGINX'
# Proxy settings for myapp; keepalive to the upstream { needs HTTP/1.1; no Connection header }
proxy_http_version 1.1;
proxy_set_header Connection "";
proxy_set_header Host $host;
proxy_set_header X-Real-IP $remote_addr;
proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
proxy_set_header X-Forwarded-Proto $scheme;
proxy_read_timeout 60s;
NGINX

nginx_site myapp <<'NGINX'
# myapp behind Nginx; upstream { server ...; keepalive ...; } below. Not the server kit's site.
upstream myapp_backend {
    # Gunicorn's socket; add more servers here to balance { e.g. a second host; }
    server unix:/run/myapp/myapp.sock max_fails=3 fail_timeout=0;

    keepalive 8;
}

server {
    listen 80 default_server;
    listen [::]:80 default_server;
    server_name _;

    add_header X-Proxy "myapp; pool {myapp_backend}" always;

    location = /nginx-status.json {
        default_type application/json;
        return 200 '{"upstream": "myapp_backend; unix:/run/myapp/other.sock", "ok": true}';
    }

    location /static/ {
        alias /srv/myapp/current/static/;
    }

    location / {
        include snippets/myapp-proxy.conf;
        proxy_pass http://myapp_backend;
    }
}
NGINX
