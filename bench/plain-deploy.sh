#!/usr/bin/env bash
# The baseline for the benchmark: what a hand-written deploy script does, the
# same steps as the action (upload one archive, install requirements, import
# check, migrations, switch current, reload, wait for health), one `ssh` per step.
#   bench/plain-deploy.sh HOST_ENV_FILE SOURCE_DIR RELEASE_ID
set -euo pipefail
# shellcheck disable=SC1090
. "$1"
SOURCE=$2
ID=$3
R=/srv/myapp
SSH=(ssh -q -i "$HOST_KEY" -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$HOST_KNOWN_HOSTS" -o IdentitiesOnly=yes -o BatchMode=yes "deploy@$HOST_IP")
printf '{"id": "%s"}\n' "$ID" >"$SOURCE/.zdd-release.json"
tar -czf - --mode=u+rwX,go+rX,go-w -C "$SOURCE" . | "${SSH[@]}" "mkdir -p $R/releases/$ID && tar -xzf - -C $R/releases/$ID"
"${SSH[@]}" "$R/.venv/bin/python -m pip install -q --no-index --no-deps -r $R/releases/$ID/requirements.txt"
"${SSH[@]}" "cd $R/releases/$ID && set -a && . /etc/myapp.env && $R/.venv/bin/python -c 'import wsgi'"
"${SSH[@]}" "cd $R/releases/$ID && set -a && . /etc/myapp.env && $R/.venv/bin/python -m flask --app wsgi db upgrade"
"${SSH[@]}" "ln -sfn releases/$ID $R/current.tmp && mv -Tf $R/current.tmp $R/current"
"${SSH[@]}" "sudo -n systemctl reload myapp"
"${SSH[@]}" "for i in \$(seq 1 100); do curl -fsS http://127.0.0.1/health | grep -q '\"release\":\"$ID\"' && exit 0; sleep 0.1; done; exit 1"
