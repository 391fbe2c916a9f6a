#!/usr/bin/env bash
# The baseline for the blue-green benchmark: what a hand-written blue-green deploy
# script does, the same steps as the action with `strategy: blue-green` (upload one
# archive linked to the one venv (the requirements never change here), install
# requirements, import check, migrations, start the release in the
# idle instance, wait for its health on its own socket, switch live.sock and current,
# stop the old instance after a pause), one `ssh` per step, none of the checks.
#   bench/plain-deploy-blue-green.sh HOST_ENV_FILE SOURCE_DIR RELEASE_ID
set -euo pipefail
# shellcheck disable=SC1090
. "$1"
SOURCE=$2
ID=$3
R=/srv/myapp
SSH=(ssh -q -i "$HOST_KEY" -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$HOST_KNOWN_HOSTS" -o IdentitiesOnly=yes -o BatchMode=yes "deploy@$HOST_IP")
printf '{"id": "%s"}\n' "$ID" >"$SOURCE/.zdd-release.json"
tar -czf - --mode=u+rwX,go+rX,go-w -C "$SOURCE" . | "${SSH[@]}" "mkdir -p $R/releases/$ID && tar -xzf - -C $R/releases/$ID && ln -s $R/.venv $R/releases/$ID/.venv"
"${SSH[@]}" "$R/.venv/bin/python -m pip install -q --no-index --no-deps -r $R/releases/$ID/requirements.txt"
"${SSH[@]}" "cd $R/releases/$ID && set -a && . /etc/myapp.env && $R/.venv/bin/python -c 'import wsgi'"
"${SSH[@]}" "cd $R/releases/$ID && set -a && . /etc/myapp.env && $R/.venv/bin/python -m flask --app wsgi db upgrade"
case "$("${SSH[@]}" "readlink $R/live.sock")" in
  */myapp-blue/*) old=blue new=green ;;
  *) old=green new=blue ;;
esac
"${SSH[@]}" "sudo -n systemctl stop myapp@$new && ln -sfn ../releases/$ID $R/slots/$new.tmp && mv -Tf $R/slots/$new.tmp $R/slots/$new && sudo -n systemctl start myapp@$new"
"${SSH[@]}" "for i in \$(seq 1 100); do curl -fsS --unix-socket /run/myapp-$new/gunicorn.sock http://localhost/health 2>/dev/null | grep -q '\"release\":\"$ID\"' && exit 0; sleep 0.1; done; exit 1"
"${SSH[@]}" "ln -sfn /run/myapp-$new/gunicorn.sock $R/live.tmp && mv -Tf $R/live.tmp $R/live.sock && ln -sfn releases/$ID $R/current.tmp && mv -Tf $R/current.tmp $R/current"
"${SSH[@]}" "sleep 1 && sudo -n systemctl stop myapp@$old"
