#!/usr/bin/env bash
# `make run`: migrate, load the demo set-up, print how to use it, then serve in the foreground.
set -euo pipefail
cd "$(dirname "$0")/.."
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
WORKERS=${WORKERS:-1}
PY=.venv/bin/python

embedded=1
if [ -n "${DATABASE_URL:-}" ] || [ -n "${REDIS_URL:-}" ]; then embedded=0; fi
# The demo provider answers from this same server over loopback, so the printed calls work at once.
# TOLLWAY_DEMO_UPSTREAM=0 turns it off (and with it the loopback allowance it needs).
export TOLLWAY_DEMO_UPSTREAM=${TOLLWAY_DEMO_UPSTREAM:-1}
if [ "$TOLLWAY_DEMO_UPSTREAM" = 1 ]; then
  export TOLLWAY_ALLOW_LOOPBACK_UPSTREAMS=${TOLLWAY_ALLOW_LOOPBACK_UPSTREAMS:-1}
fi
demo_flag=()
[ "${TOLLWAY_DEMO_UPSTREAM:-0}" = 1 ] && demo_flag=(--with-demo-provider)

$PY manage.py migrate --noinput >/dev/null
$PY manage.py collectstatic --noinput >/dev/null
url_host=$HOST; [ "$HOST" = "0.0.0.0" ] && url_host=127.0.0.1
export TOLLWAY_PUBLIC_URL=${TOLLWAY_PUBLIC_URL:-http://$url_host:$PORT}
out=$($PY manage.py bootstrap_demo --gateway-url "http://$url_host:$PORT" "${demo_flag[@]}")
password=$(sed -n 's/^TOLLWAY_ADMIN_PASSWORD=//p' <<<"$out")
key=$(sed -n 's/^TOLLWAY_DEMO_KEY=//p' <<<"$out")
key_state=$(sed -n 's/^TOLLWAY_DEMO_KEY_STATE=//p' <<<"$out")
key_file=$(sed -n 's/^TOLLWAY_DEMO_KEY_FILE=//p' <<<"$out")
# The demo key is kept across starts (its secret in $key_file, mode 600), so an exported TOLLWAY_KEY keeps
# working; when the kept one was revoked or expired, the new key must not pass unnoticed.
case "$key_state" in
  kept) key_note="(the same key as last start, kept in $key_file)" ;;
  new) key_note="(kept in $key_file and reused on every start)" ;;
  *) key_note="(NEW: the previous demo key was revoked or is no longer valid)" ;;
esac
key_warning=""
if [ "$key_state" = replaced ]; then
  key_warning="
  !!! The demo key has CHANGED: the one kept in $key_file was revoked, expired or belongs to another database.
  !!! Calls with the old key now get 401. Use the new one:   export TOLLWAY_KEY=$key
"
fi

pids=()
cleanup() { for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done; wait || true; }
trap cleanup EXIT INT TERM
# With a broker (the same rule as CELERY_TASK_ALWAYS_EAGER in config/settings.py), tasks go to a Celery worker
# and beat schedules usage aggregation and retention; without one, tasks run inline and the usage summary
# aggregates before it reads.
celery_mode="inline (no broker)"
if [ -n "${REDIS_URL:-}${CELERY_BROKER_URL:-}" ] && [ "${TOLLWAY_CELERY_EAGER:-0}" != 1 ]; then
  .venv/bin/celery --quiet -A config worker --loglevel=warning --concurrency=1 & pids+=($!)
  .venv/bin/celery --quiet -A config beat --loglevel=warning & pids+=($!)
  celery_mode="worker + beat"
fi

cat <<MSG

  Tollway is starting on http://$url_host:$PORT  (workers: $WORKERS, database: ${DATABASE_URL:-embedded SQLite}, Celery: $celery_mode)
  Console:   http://$url_host:$PORT/console/   login: admin@localhost / $password   (Django admin: /admin/, user admin)
  Demo key:  $key     $key_note
$key_warning
  curl http://$url_host:$PORT/v1/chat/completions -H "Authorization: Bearer $key" \\
       -H "Content-Type: application/json" -d '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}'

MSG
.venv/bin/uvicorn config.asgi:application --host "$HOST" --port "$PORT" --workers "$WORKERS" \
  --loop uvloop --http httptools --no-access-log --log-level warning & pids+=($!)
wait "${pids[-1]}"
