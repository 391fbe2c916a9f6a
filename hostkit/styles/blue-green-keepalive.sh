# shellcheck shell=bash disable=SC2034  # sets what host-up.sh reads back
# Style blue-green-keepalive: the blue-green layout (styles/blue-green.sh), but Nginx
# reaches live.sock through a named upstream with `keepalive 16` (HTTP/1.1, empty
# Connection header): Nginx keeps cached connections to the instance that was live when
# they opened, so a switch of live.sock does not move them. The action must refuse a
# blue-green deploy here.
# shellcheck source=hostkit/styles/blue-green.sh
. "$KIT/styles/blue-green.sh"

nginx_site myapp <<'NGINX'
upstream myapp_live {
    server unix:/srv/myapp/live.sock fail_timeout=0;
    keepalive 16;
}

server {
    listen 80 default_server;
    listen [::]:80 default_server;
    server_name _;

    location /static/ {
        alias /srv/myapp/current/static/;
    }

    location / {
        proxy_pass http://myapp_live;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
    }
}
NGINX
