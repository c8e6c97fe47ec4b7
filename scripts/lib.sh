# Shared by scripts/run and scripts/test: make sure PostgreSQL, Redis (and the browser, for
# tests) are there. Uses DATABASE_URL / REDIS_URL when set; otherwise starts private servers
# under .data/ (installing Debian's packages when missing). PostgreSQL refuses to run as
# root, so a private cluster runs as the `postgres` user.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="$ROOT/.data"
mkdir -p "$DATA"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

pg_bin() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

# ensure_postgres NAME PORT FSYNC(on|off) [VAR]: exports VAR (default DATABASE_URL, the
# owner on database sigmaai) unless already set.
ensure_postgres() {
  local var="${4:-DATABASE_URL}"
  if [ -n "${!var:-}" ]; then log "using $var from the environment"; return; fi
  local name="$1" port="$2" fsync="$3"
  local bin; bin=$(pg_bin || true)
  if [ -z "$bin" ]; then log "installing PostgreSQL"; apt_install postgresql postgresql-contrib; bin=$(pg_bin); fi
  local dir="$DATA/$name" sock="$DATA/$name-sock"
  local pwfile="$DATA/$name.password"
  id postgres >/dev/null 2>&1 || as_root useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  run_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
  if [ ! -s "$dir/PG_VERSION" ]; then
    log "creating a private PostgreSQL cluster in $dir"
    rm -rf "$dir"; mkdir -p "$dir" "$sock"
    [ -s "$pwfile" ] || head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' > "$pwfile"
    if [ "$(id -u)" = 0 ]; then chown postgres "$dir" "$sock"; chown postgres "$pwfile"; fi
    chmod 700 "$dir"
    run_pg "$bin/initdb" -D "$dir" -U postgres --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
      -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  mkdir -p "$sock"; [ "$(id -u)" = 0 ] && chown postgres "$sock"
  if ! run_pg "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
    log "starting private PostgreSQL on 127.0.0.1:$port"
    local opts="-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$sock -c max_connections=300"
    if [ "$fsync" = off ]; then opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"; fi
    # The bench cluster only: shared_buffers sized for the 1M-message seed (its tables and
    # indexes are ~0.5 GB; the default 128 MB made the conversation page read its heap pages
    # from the OS cache). SIGMAAI_BENCH_SHARED_BUFFERS overrides (e.g. 128MB to compare); it
    # applies when the cluster starts.
    if [ "$name" = pg-bench ]; then opts="$opts -c shared_buffers=${SIGMAAI_BENCH_SHARED_BUFFERS:-1GB}"; fi
    # The bench cluster only: pg_stat_statements, so `scripts/bench pages` can say which
    # statements a page's time goes to (server-side, per call). Applies when the cluster starts.
    if [ "$name" = pg-bench ]; then opts="$opts -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=top"; fi
    run_pg "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -o "$opts" -w -t 60 start >/dev/null
  fi
  local pw; pw=$(cat "$pwfile")
  export "$var=postgres://postgres:$pw@127.0.0.1:$port/sigmaai"
  # Create the database (and the key store beside it) if missing.
  for db in sigmaai sigmaai_keys; do
    if ! PGPASSWORD="$pw" "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname='$db'" | grep -q 1; then
      PGPASSWORD="$pw" "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc "CREATE DATABASE $db" >/dev/null
    fi
  done
}

# ensure_redis NAME PORT: exports REDIS_URL unless already set.
ensure_redis() {
  if [ -n "${REDIS_URL:-}" ]; then log "using REDIS_URL from the environment"; return; fi
  local name="$1" port="$2"
  command -v redis-server >/dev/null || { log "installing Redis"; apt_install redis-server; }
  local dir="$DATA/$name"; mkdir -p "$dir"
  if ! redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then
    log "starting private Redis on 127.0.0.1:$port"
    redis-server --port "$port" --bind 127.0.0.1 --daemonize yes --dir "$dir" --save "" --appendonly no \
      --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
    for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  export REDIS_URL="redis://127.0.0.1:$port/0"
}

ensure_browser() {
  if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then return; fi
  log "installing Chromium and ChromeDriver (browser tests)"
  apt_install chromium chromium-driver || { log "could not install chromium: the browser tests will fail"; return 1; }
}

# ensure_axe: axe-core (from the npm registry) for the accessibility tests, under .data/axe.
# It is injected into pages by the tests only; the product never serves it. Exports
# SIGMAAI_AXE_JS.
AXE_VERSION=4.10.3
ensure_axe() {
  local dir="$DATA/axe" js="$DATA/axe/node_modules/axe-core/axe.min.js"
  if [ ! -f "$js" ] || [ "$(cat "$dir/version" 2>/dev/null)" != "$AXE_VERSION" ]; then
    if ! command -v npm >/dev/null; then log "installing npm (for axe-core)"; apt_install npm; fi
    log "installing axe-core $AXE_VERSION (accessibility tests)"
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error "axe-core@$AXE_VERSION" >/dev/null
    echo "$AXE_VERSION" >"$dir/version"
  fi
  export SIGMAAI_AXE_JS="$js"
}

# stop_private_services: stops every PostgreSQL cluster and Redis the scripts started under
# .data/ (their data stays; the next scripts/run or scripts/test starts them again).
stop_private_services() {
  local bin; bin=$(pg_bin || true)
  local dir
  for dir in "$DATA"/*/; do
    dir="${dir%/}"
    if [ -s "$dir/PG_VERSION" ] && [ -n "$bin" ] && [ -f "$dir/postmaster.pid" ]; then
      log "stopping PostgreSQL in $dir"
      if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null || true
      else "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null || true; fi
    fi
    if [ -f "$dir/redis.pid" ]; then
      local pid; pid=$(cat "$dir/redis.pid")
      if kill -0 "$pid" 2>/dev/null; then log "stopping Redis in $dir"; kill "$pid"; fi
      rm -f "$dir/redis.pid"
    fi
    local f
    for f in "$dir"/mailsink.pid "$dir"/s3.pid; do
      if [ -f "$f" ]; then
        local spid; spid=$(cat "$f")
        if kill -0 "$spid" 2>/dev/null; then log "stopping $(basename "$f" .pid) in $dir"; kill "$spid"; fi
        rm -f "$f"
      fi
    done
  done
}

# ensure_venv PACKAGE…: a Python virtualenv under .data/venv (made once, reused by every run)
# holding the given PyPI packages; prints nothing, sets VENV.
VENV="$DATA/venv"
ensure_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    command -v python3 >/dev/null || { log "installing Python"; apt_install python3 python3-venv; }
    log "creating a Python virtualenv in $VENV"
    python3 -m venv "$VENV" || { apt_install python3-venv; python3 -m venv "$VENV"; }
  fi
  local missing=() p
  for p in "$@"; do
    "$VENV/bin/python" -m pip show -q "${p%%[*}" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]} from PyPI into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${missing[@]}"
  fi
}

# ensure_smtp NAME PORT: a local SMTP server (aiosmtpd) writing every message it accepts as
# an .eml file under .data/NAME/maildir; exports SIGMAAI_TEST_SMTP_URL and
# SIGMAAI_TEST_MAILDIR.
ensure_smtp() {
  local name="$1" port="$2"
  local dir="$DATA/$name"; mkdir -p "$dir/maildir"
  # Earlier runs' messages: kept a day for a look, then dropped so the directory stays small.
  find "$dir/maildir" -name '*.eml' -mmin +1440 -delete 2>/dev/null || true
  ensure_venv aiosmtpd
  local pid=""; [ -f "$dir/mailsink.pid" ] && pid=$(cat "$dir/mailsink.pid")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ "$(cat "$dir/mailsink.port" 2>/dev/null)" = "$port" ]; then
    :  # ours, already running on this port
  elif (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is taken by another program: set SIGMAAI_TEST_SMTP_PORT to a free one" >&2; return 1
  else
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    log "starting the mail sink on 127.0.0.1:$port"
    nohup "$VENV/bin/python" "$ROOT/scripts/mailsink.py" 127.0.0.1 "$port" "$dir/maildir" \
      >"$dir/mailsink.log" 2>&1 &
    echo $! >"$dir/mailsink.pid"; echo "$port" >"$dir/mailsink.port"
    local ok=""
    for _ in $(seq 100); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then ok=1; break; fi
      sleep 0.1
    done
    [ -n "$ok" ] || { cat "$dir/mailsink.log" >&2; echo "the mail sink did not start" >&2; return 1; }
  fi
  export SIGMAAI_TEST_SMTP_URL="smtp://127.0.0.1:$port"
  export SIGMAAI_TEST_MAILDIR="$dir/maildir"
}

# ensure_openapi_validator: the reference OpenAPI validator (openapi-spec-validator, from
# PyPI) in the shared venv, for the API spec test; exports SIGMAAI_TEST_OPENAPI_VALIDATOR.
ensure_openapi_validator() {
  ensure_venv openapi-spec-validator
  export SIGMAAI_TEST_OPENAPI_VALIDATOR="$VENV/bin/openapi-spec-validator"
}

# ensure_s3 NAME PORT: a local S3-compatible server (moto in server mode, from PyPI) for the
# object-store tests; exports SIGMAAI_TEST_S3_URL. Its data lives in memory: each run's
# tests make their own buckets.
ensure_s3() {
  local name="$1" port="$2"
  local dir="$DATA/$name"; mkdir -p "$dir"
  ensure_venv 'moto[server]'
  local pid=""; [ -f "$dir/s3.pid" ] && pid=$(cat "$dir/s3.pid")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ "$(cat "$dir/s3.port" 2>/dev/null)" = "$port" ]; then
    :  # ours, already running on this port
  elif (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is taken by another program: set SIGMAAI_TEST_S3_PORT to a free one" >&2; return 1
  else
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    log "starting the S3-compatible server (moto) on 127.0.0.1:$port"
    nohup "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$dir/s3.log" 2>&1 &
    echo $! >"$dir/s3.pid"; echo "$port" >"$dir/s3.port"
    local ok=""
    for _ in $(seq 150); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then ok=1; break; fi
      sleep 0.1
    done
    [ -n "$ok" ] || { cat "$dir/s3.log" >&2; echo "the S3 server did not start" >&2; return 1; }
  fi
  export SIGMAAI_TEST_S3_URL="http://127.0.0.1:$port"
}

# ensure_webhook_receiver: the Standard Webhooks reference library (`standardwebhooks`, from
# PyPI) for the outgoing-webhook tests, which start scripts/webhook_receiver.py themselves
# (one per test, on a free port); exports SIGMAAI_TEST_WEBHOOK_RECEIVER (the command).
ensure_webhook_receiver() {
  ensure_venv standardwebhooks
  export SIGMAAI_TEST_WEBHOOK_RECEIVER="$VENV/bin/python $ROOT/scripts/webhook_receiver.py"
}
