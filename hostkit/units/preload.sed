# The preload variant: the corrected unit (examples/server/myapp.service) plus --preload.
s|^ExecStart=/srv/myapp/.venv/bin/gunicorn \\$|ExecStart=/srv/myapp/.venv/bin/gunicorn --preload \\|
