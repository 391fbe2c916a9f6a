# shellcheck shell=bash disable=SC2034  # sets what host-up.sh reads back
# Style tls-redirect: HTTPS only. A self-signed certificate for app.example.test made
# for this host (valid 3 days, key root-only), a `listen 443 ssl` server proxying to
# Gunicorn, and a port-80 server that redirects everything to https. The name resolves
# to the host; the certificate is copied to the state directory as CA_CERT.
guide_unit "/srv/myapp/.venv/bin/gunicorn --workers 3 --chdir /srv/myapp/current --bind unix:/run/myapp/myapp.sock wsgi:app"
install -d -m 755 "$R/etc/ssl/certs"
install -d -m 700 "$R/etc/ssl/private"
(umask 077 && in_root openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3 \
  -subj /CN=app.example.test -addext subjectAltName=DNS:app.example.test \
  -keyout /etc/ssl/private/app.example.test.key -out /etc/ssl/certs/app.example.test.crt) 2>/dev/null
chmod 600 "$R/etc/ssl/private/app.example.test.key"
chmod 644 "$R/etc/ssl/certs/app.example.test.crt"
cp "$R/etc/ssl/certs/app.example.test.crt" "$S/ca.crt"
nginx_site app.example.test <<'NGINX'
server {
    listen 80 default_server;
    listen [::]:80 default_server;
    server_name app.example.test;
    return 301 https://$host$request_uri;
}

server {
    listen 443 ssl;
    listen [::]:443 ssl;
    server_name app.example.test;

    ssl_certificate /etc/ssl/certs/app.example.test.crt;
    ssl_certificate_key /etc/ssl/private/app.example.test.key;
    ssl_protocols TLSv1.2 TLSv1.3;

    location / {
        proxy_pass http://unix:/run/myapp/myapp.sock;
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto https;
    }
}
NGINX
add_hosts_name app.example.test
NGINX_URL=https://app.example.test/health
READY=https://app.example.test/health
CA_CERT=$S/ca.crt
