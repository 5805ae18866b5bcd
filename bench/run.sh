#!/usr/bin/env bash
# Tollway's benchmark: the canned upstream directly, the peer gateway (LiteLLM proxy) and Tollway, measured in one
# run with the same wrk and request body, non-streaming and streaming at 1, 16 and 64 connections. Then checks
# that every request Tollway answered left exactly one usage record, and writes a Markdown table to
# bench/results/<timestamp>.md. See bench/README.md.
#
#   bash bench/run.sh [--transports]     --transports: also run Tollway with TOLLWAY_HTTP_TRANSPORT=httpx (c=16)
#
# Knobs: DURATION (s per point, 8), TOLLWAY_WORKERS (2, as the peer), TOLLWAY_PORT (8100), BENCH_EXACT_REQUESTS
# (2000 per mode in the exact usage check), BENCH_KEEP=1 (keep the scratch directory), DATABASE_URL (default:
# embedded SQLite in the scratch directory), TOLLWAY_* as usual.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
shared=$(cd "$repo/../shared/bench" && pwd)
kit_run=/tmp/tollway-bench            # where ../shared/bench/bench.sh keeps its venv, pid files and logs
py=$repo/.venv/bin/python
export DURATION=${DURATION:-8}
workers=${TOLLWAY_WORKERS:-2}
port=${TOLLWAY_PORT:-8100}
url=http://127.0.0.1:$port/v1/chat/completions
concs=(1 16 64)
exact_requests=${BENCH_EXACT_REQUESTS:-2000}

compare_transports=0
for arg in "$@"; do
  case $arg in
    --transports) compare_transports=1 ;;
    -h | --help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --- (a) tools -------------------------------------------------------------------------------------------------
if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null || [ ! -x "$kit_run/peer-venv/bin/litellm" ]; then
  log "nginx, wrk or the peer venv is missing: running bench.sh setup (apt + pip, a few minutes)"
  timeout 1200 bash "$shared/bench.sh" setup
fi
# Refuse to share ports: stopping someone else's server on exit would be worse than not running.
for p in 9101 4000 "$port"; do
  if port_in_use "$p"; then echo "127.0.0.1:$p is already in use; stop that server first" >&2; exit 1; fi
done

work=$(mktemp -d /tmp/tollway-bench-run.XXXXXX)
started_upstream=0 started_peer=0 tollway_pid=""

# wait_for_exit PID NAME: up to 30 s, then SIGKILL it and its children.
wait_for_exit() {
  for _ in $(seq 1 60); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.5; done
  log "$2 (pid $1) did not stop within 30 s; killing it and its children"
  pkill -KILL -P "$1" 2>/dev/null || true
  kill -KILL "$1" 2>/dev/null || true
}

stop_tollway() {
  [ -n "$tollway_pid" ] || return 0
  kill -TERM "$tollway_pid" 2>/dev/null || true
  # The workers flush pending usage rows on SIGTERM; give them time, but not forever.
  wait_for_exit "$tollway_pid" Tollway
  wait "$tollway_pid" 2>/dev/null || true
  tollway_pid=""
}

cleanup() {
  local rc=$?
  set +e
  stop_tollway
  if [ "$started_peer" = 1 ]; then
    local peer_pid
    peer_pid=$(cat "$kit_run/peer.pid" 2>/dev/null || true)
    bash "$shared/bench.sh" peer stop >/dev/null
    # bench.sh does not wait, and the peer takes a few seconds to stop its workers.
    [ -n "$peer_pid" ] && wait_for_exit "$peer_pid" peer
  fi
  [ "$started_upstream" = 1 ] && bash "$shared/bench.sh" upstream stop >/dev/null
  if [ "$rc" != 0 ]; then
    log "failed (exit $rc); last lines of the logs in $work:"
    tail -n 20 "$work"/*.log >&2 2>/dev/null
  fi
  if [ "${BENCH_KEEP:-0}" = 1 ] || [ "$rc" != 0 ]; then
    log "scratch directory kept: $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# bench.sh's `load` runs wrk with the post.lua next to it. This directory puts bench/post.lua (the shared one plus
# request counts) next to an unmodified bench.sh, so every target runs through the same load code.
mkdir -p "$work/kit"
ln -s "$shared/bench.sh" "$work/kit/bench.sh"
ln -s "$repo/bench/post.lua" "$work/kit/post.lua"
raw=$work/results.txt
: >"$raw"

# load TARGET MODE URL KEY MODEL STREAM [conc...]: one bench.sh load, its RESULT lines tagged for the table.
load() {
  local target=$1 mode=$2; shift 2
  log "load: $target $mode (${*:5})"
  BENCH_TALLY="$work/tally-$target.txt" bash "$work/kit/bench.sh" load "$@" | sed "s|^|$target $mode |" | tee -a "$raw" >&2
}

# --- (b) the canned upstream and the peer -----------------------------------------------------------------------
started_upstream=1   # before start, as nginx may be up even when bench.sh's check fails
bash "$shared/bench.sh" upstream start >&2
log "starting the peer (LiteLLM proxy, 2 workers; up to 90 s)"
started_peer=1   # before start: a half-started peer must be stopped too
bash "$shared/bench.sh" peer start >&2
curl -sf -m 10 127.0.0.1:4000/v1/chat/completions -H 'Authorization: Bearer sk-bench-master' \
  -H 'Content-Type: application/json' -d '{"model":"mock-gpt","messages":[{"role":"user","content":"hi"}]}' \
  >/dev/null || { echo "the peer does not answer; see $kit_run/peer.log" >&2; exit 1; }

# --- (c) a throwaway Tollway with the bench catalogue and a key --------------------------------------------------
export TOLLWAY_DATA_DIR=$work/data
export TOLLWAY_ALLOW_LOOPBACK_UPSTREAMS=1
manage() { (cd "$repo" && timeout 300 "$py" manage.py "$@"); }
log "migrating ${DATABASE_URL:-the embedded SQLite database in $TOLLWAY_DATA_DIR}"
manage migrate --noinput >"$work/migrate.log"
if [ -f "$repo/routing/management/commands/import_catalogue.py" ]; then
  manage import_catalogue "$repo/bench/catalogue.yaml" >"$work/catalogue.log"
else
  # Older trees have no import_catalogue: create the same rows with the ORM.
  manage shell -c "
from decimal import Decimal
from routing.credentials import encrypt_secret
from routing.models import AliasDeployment, Deployment, ModelAlias, Provider
for name, base_url in [('canned', 'http://127.0.0.1:9101/v1'), ('canned-stream', 'http://127.0.0.1:9101/stream/v1')]:
    provider, _ = Provider.objects.update_or_create(name=name, defaults=dict(
        kind='openai-compatible', base_url=base_url, api_key_encrypted=encrypt_secret('sk-canned-upstream-ignores-it')))
    alias_name = 'bench' if name == 'canned' else 'bench-stream'
    deployment, _ = Deployment.objects.update_or_create(name=alias_name, defaults=dict(
        provider=provider, model='gpt-4o-mini', input_per_1m=Decimal('0.15'), output_per_1m=Decimal('0.60')))
    alias, _ = ModelAlias.objects.get_or_create(name=alias_name)
    AliasDeployment.objects.get_or_create(alias=alias, deployment=deployment, defaults=dict(priority=0))
" >"$work/catalogue.log"
fi
key=$(manage create_api_key --team bench | tail -n 1)
[ -n "$key" ] || { echo "create_api_key printed no key" >&2; exit 1; }

usage_records() {
  manage shell -c "from billing.models import UsageRecord; print(UsageRecord.objects.count())" | tail -n 1
}

# --- (d) Tollway ---------------------------------------------------------------------------------------------------
# start_tollway TRANSPORT: serve in the background and wait until it answers a chat completion of each kind.
smoke_requests=0 tollway_starts=0
start_tollway() {
  tollway_starts=$((tollway_starts + 1))
  local logfile=$work/tollway-$tollway_starts-$1.log
  log "starting Tollway ($workers workers, TOLLWAY_HTTP_TRANSPORT=$1, log $logfile)"
  (cd "$repo" && exec env TOLLWAY_HTTP_TRANSPORT="$1" .venv/bin/uvicorn config.asgi:application \
    --host 127.0.0.1 --port "$port" --workers "$workers" --loop uvloop --http httptools \
    --no-access-log --log-level warning) >"$logfile" 2>&1 &
  tollway_pid=$!
  for _ in $(seq 1 120); do
    curl -sf -m 2 "127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    kill -0 "$tollway_pid" 2>/dev/null || { echo "Tollway exited during startup" >&2; exit 1; }
    sleep 0.5
  done
  curl -sf -m 2 "127.0.0.1:$port/healthz" >/dev/null || { echo "Tollway did not come up within 60 s" >&2; exit 1; }
  sleep 2   # /healthz proves one worker is up; let the other finish its lifespan startup too
  smoke_requests=0
  for body in '{"model":"bench","messages":[{"role":"user","content":"hi"}]}' \
    '{"model":"bench-stream","messages":[{"role":"user","content":"hi"}],"stream":true}'; do
    smoke_requests=$((smoke_requests + 1))
    curl -sf -m 10 "$url" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' -d "$body" \
      >/dev/null || { echo "Tollway does not proxy $body; see $logfile" >&2; exit 1; }
  done
}

# check_usage TARGET BEFORE SENT: after Tollway has stopped, compare its new usage records with the requests sent.
check_usage() {
  local target=$1 before=$2 sent=$3 after
  after=$(usage_records)
  echo "$target records=$((after - before)) sent=$sent smoke=$smoke_requests" >>"$work/usage.txt"
  log "usage check $target: $((after - before)) new usage records for $sent requests counted by the client" \
    "+ $smoke_requests smoke requests"
}
wrk_requests() { awk -F'requests=' '{ sum += $2 } END { print sum + 0 }' "$work/tally-$1.txt"; }

# --- (e) the load, one run ------------------------------------------------------------------------------------------
before=$(usage_records)
start_tollway aiohttp

direct=http://127.0.0.1:9101
peer=http://127.0.0.1:4000/v1/chat/completions
load direct plain "$direct/v1/chat/completions" none gpt-4o-mini 0 "${concs[@]}"
load peer plain "$peer" sk-bench-master mock-gpt 0 "${concs[@]}"
load tollway plain "$url" "$key" bench 0 "${concs[@]}"
load direct stream "$direct/stream/v1/chat/completions" none gpt-4o-mini 1 "${concs[@]}"
load peer stream "$peer" sk-bench-master mock-gpt-stream 1 "${concs[@]}"
load tollway stream "$url" "$key" bench-stream 1 "${concs[@]}"

# --- (g) every request leaves one usage record ----------------------------------------------------------------------
log "stopping Tollway (SIGTERM) to flush usage"
stop_tollway
check_usage tollway "$before" "$(wrk_requests tollway)"

# wrk leaves requests in flight when it stops, so its count can only bound the records. This client finishes
# every request it sends: here the records must match exactly.
before=$(usage_records)
start_tollway aiohttp
sent=0
for spec in "bench" "bench-stream --stream"; do
  # shellcheck disable=SC2086  # spec is the model and, for streaming, a flag
  line=$(timeout 300 "$py" "$repo/bench/send_exactly.py" "$url" "$key" $spec --count "$exact_requests" --connections 16)
  log "exact: $spec: $line"
  case $line in *" failed=0") ;; *) echo "requests failed in the exact-count phase: $line" >&2; exit 1 ;; esac
  sent=$((sent + $(sed 's/.*sent=\([0-9]*\).*/\1/' <<<"$line")))
done
stop_tollway
check_usage tollway-exact "$before" "$sent"

# --- (f) the other HTTP transport --------------------------------------------------------------------------------
if [ "$compare_transports" = 1 ]; then
  before=$(usage_records)
  start_tollway httpx
  load tollway-httpx plain "$url" "$key" bench 0 16
  load tollway-httpx stream "$url" "$key" bench-stream 1 16
  stop_tollway
  check_usage tollway-httpx "$before" "$(wrk_requests tollway-httpx)"
fi

# --- (h) the table ------------------------------------------------------------------------------------------------------
mkdir -p "$repo/bench/results"
out=$repo/bench/results/$(date -u +%Y%m%dT%H%M%SZ).md
commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git -C "$repo" status --porcelain 2>/dev/null)" ] && commit="$commit (with uncommitted changes)"
"$py" "$repo/bench/results_table.py" --results "$raw" --usage "$work/usage.txt" \
  --title "commit $commit; DURATION=${DURATION}s per point; Tollway workers=$workers; $(nproc) cores" | tee "$out"
log "saved $out"
