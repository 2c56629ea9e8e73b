#!/usr/bin/env bash
# Run every Tollgate check: the one command a new user (and CI, through .ci/run) runs.
#   bash scripts/test.sh                 # everything
#   bash scripts/test.sh sdk_smoke       # extra arguments go to `cargo test --workspace --all-targets`
#
# What it does, in order:
#   1. makes sure PostgreSQL answers on 127.0.0.1:5432 (with SSL on, for the TLS tests) and Redis on
#      127.0.0.1:6379 (installs them with apt-get and starts them when missing), creates a fresh
#      database for this run and drops it on exit; installs Chromium and chromedriver (Debian's
#      chromium, chromium-driver) for the admin UI's browser tests when missing;
#   2. sets up a Python venv in target/pyenv with the OpenAI and Anthropic SDKs (for the SDK smoke test),
#      and fetches LiteLLM's database migrations (litellm-proxy-extras) for the LiteLLM import test;
#   3. cargo fmt --check, cargo audit (RustSec advisories; fails on a vulnerable dependency), build,
#      tests (unit, integration, doc), clippy -D warnings.
#
# Environment:
#   TOLLGATE_TEST_PG_URL_BASE  server URL without a database (default postgres://postgres@127.0.0.1:5432)
#   TOLLGATE_AUDIT_DB          advisory database for cargo audit: "live" (fetch from GitHub, fail if it
#                              cannot), "snapshot" (audit/advisory-db, no network), or unset: live when
#                              GitHub answers, else the snapshot
#   CI                         when set, tests that need the Python SDK or Chromium fail instead of being
#                              skipped, and (as on any cold build) incremental compilation is off
# Exported to the tests: TOLLGATE_TEST_DATABASE_URL, TOLLGATE_TEST_PG_ADMIN_URL, TOLLGATE_TEST_REDIS_URL,
# TOLLGATE_TEST_PYTHON (only when the SDKs are available), TOLLGATE_TEST_LITELLM_MIGRATIONS (only when
# LiteLLM's migrations could be fetched), RUST_BACKTRACE=1.
set -euo pipefail
cd "$(dirname "$0")/.."

export RUST_BACKTRACE=1
# A cold build (a fresh clone, CI) gains nothing from incremental compilation, only its cost:
# switch it off there. A developer's warm target/ keeps it (cargo's default).
if [ -n "${CI:-}" ] || [ ! -d target/debug ]; then
  export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
fi

PG_HOST=127.0.0.1
PG_PORT=5432
REDIS_HOST=127.0.0.1
REDIS_PORT=6379
DEFAULT_PG_URL_BASE="postgres://postgres@${PG_HOST}:${PG_PORT}"
PG_URL_BASE="${TOLLGATE_TEST_PG_URL_BASE:-$DEFAULT_PG_URL_BASE}"
PG_URL_BASE="${PG_URL_BASE%/}"

banner() {
  printf '\n==> %s\n' "$*"
}
warn() {
  printf 'WARNING: %s\n' "$*" >&2
}
die() {
  printf 'ERROR: %s\n' "$*" >&2
  exit 1
}

# Run a command as root: directly when we are root, through sudo when it exists, else fail.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root to run '$*' (not root and no sudo); install and start it yourself"
  fi
}

APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $* yourself"
  if [ "$APT_UPDATED" -eq 0 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update
    APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
}

# True when something accepts TCP connections on host:port.
tcp_open() {
  (exec 3<>"/dev/tcp/$1/$2") >/dev/null 2>&1
}

wait_for() { # wait_for <description> <seconds> <command...>
  local what=$1 secs=$2 i
  shift 2
  for ((i = 0; i < secs; i++)); do
    if "$@"; then
      return 0
    fi
    sleep 1
  done
  die "$what did not become ready within ${secs}s"
}

# ---------------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------------
pg_ready() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h "$PG_HOST" -p "$PG_PORT" >/dev/null 2>&1
  else
    tcp_open "$PG_HOST" "$PG_PORT"
  fi
}

pg_installed() {
  [ -d /etc/postgresql ] && compgen -G '/etc/postgresql/*/main' >/dev/null ||
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

pg_start() {
  local ver=""
  if compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
    ver=$(basename "$(dirname "$(dirname "$(ls -d /usr/lib/postgresql/*/bin/postgres | sort -V | tail -n1)")")")
  fi
  if [ -n "$ver" ] && command -v pg_ctlcluster >/dev/null 2>&1; then
    if [ ! -d "/etc/postgresql/$ver/main" ] && command -v pg_createcluster >/dev/null 2>&1; then
      as_root pg_createcluster "$ver" main
    fi
    as_root pg_ctlcluster "$ver" main start || true
  fi
  if ! pg_ready; then
    as_root service postgresql start || true
  fi
}

ensure_postgres() {
  banner "PostgreSQL on ${PG_HOST}:${PG_PORT}"
  if ! pg_ready; then
    if ! pg_installed; then
      echo "PostgreSQL is not installed: installing it with apt-get"
      apt_install postgresql postgresql-client
    fi
    echo "PostgreSQL is not running: starting it"
    pg_start
    wait_for "PostgreSQL" 30 pg_ready
  fi
  if ! command -v psql >/dev/null 2>&1; then
    echo "psql not found: installing postgresql-client"
    apt_install postgresql-client
  fi
  # Connect as configured; on a fresh Debian install the postgres role has no password and TCP
  # connections need one, so give it one through the unix socket and use it.
  if ! psql "$PG_URL_BASE/postgres" -qAtX -c 'SELECT 1' >/dev/null 2>&1; then
    if [ -z "${TOLLGATE_TEST_PG_URL_BASE:-}" ] && id postgres >/dev/null 2>&1; then
      echo "cannot connect as $PG_URL_BASE; setting a password for role postgres via the unix socket"
      as_root su postgres -c "psql -qAtX -c \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
      PG_URL_BASE="postgres://postgres:postgres@${PG_HOST}:${PG_PORT}"
    fi
    psql "$PG_URL_BASE/postgres" -qAtX -c 'SELECT 1' >/dev/null ||
      die "cannot connect to PostgreSQL at $PG_URL_BASE/postgres (set TOLLGATE_TEST_PG_URL_BASE)"
  fi
  echo "PostgreSQL is up ($(psql "$PG_URL_BASE/postgres" -qAtX -c 'SHOW server_version'))"
}

# The TLS tests (tests/postgres_tls.rs) need SSL on. Debian's package turns it on with its snakeoil
# certificate; when it is off, turn it on with a self-signed certificate for localhost.
ensure_postgres_ssl() {
  local admin="$PG_URL_BASE/postgres" dir=/etc/ssl/tollgate-test-postgres
  if [ "$(psql "$admin" -qAtX -c 'SHOW ssl')" = "on" ]; then
    echo "PostgreSQL has SSL on ($(psql "$admin" -qAtX -c 'SHOW ssl_cert_file'))"
    return 0
  fi
  echo "PostgreSQL has SSL off: turning it on with a self-signed certificate for localhost in $dir"
  command -v openssl >/dev/null 2>&1 || apt_install openssl
  as_root mkdir -p "$dir"
  as_root openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost -keyout "$dir/server.key" -out "$dir/server.crt" 2>/dev/null
  as_root chown postgres: "$dir/server.key" "$dir/server.crt" 2>/dev/null || true
  as_root chmod 600 "$dir/server.key"
  as_root chmod 644 "$dir/server.crt"
  psql "$admin" -qAtX -v ON_ERROR_STOP=1 \
    -c "ALTER SYSTEM SET ssl_cert_file = '$dir/server.crt'" \
    -c "ALTER SYSTEM SET ssl_key_file = '$dir/server.key'" \
    -c "ALTER SYSTEM SET ssl = on" \
    -c "SELECT pg_reload_conf()" >/dev/null
  sleep 1
  [ "$(psql "$admin" -qAtX -c 'SHOW ssl')" = "on" ] || die "could not turn SSL on in PostgreSQL"
}

TEST_DB=""
drop_test_db() {
  if [ -n "$TEST_DB" ]; then
    psql "$PG_URL_BASE/postgres" -qAtX -c "DROP DATABASE IF EXISTS \"$TEST_DB\" WITH (FORCE)" >/dev/null 2>&1 ||
      psql "$PG_URL_BASE/postgres" -qAtX -c "DROP DATABASE IF EXISTS \"$TEST_DB\"" >/dev/null 2>&1 ||
      true
    echo "dropped test database $TEST_DB"
    TEST_DB=""
  fi
}

create_test_db() {
  local name
  name="tollgate_test_$(date +%Y%m%d%H%M%S)_$$"
  psql "$PG_URL_BASE/postgres" -qAtX -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$name\"" >/dev/null
  TEST_DB=$name
  trap drop_test_db EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  export TOLLGATE_TEST_DATABASE_URL="$PG_URL_BASE/$name"
  export TOLLGATE_TEST_PG_ADMIN_URL="$PG_URL_BASE/postgres"
  echo "created test database $name"
  echo "TOLLGATE_TEST_DATABASE_URL=$TOLLGATE_TEST_DATABASE_URL"
}

# ---------------------------------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------------------------------
redis_ready() {
  if command -v redis-cli >/dev/null 2>&1; then
    [ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]
  else
    tcp_open "$REDIS_HOST" "$REDIS_PORT"
  fi
}

ensure_redis() {
  banner "Redis on ${REDIS_HOST}:${REDIS_PORT}"
  if ! redis_ready; then
    if ! command -v redis-server >/dev/null 2>&1; then
      echo "Redis is not installed: installing redis-server with apt-get"
      apt_install redis-server
    fi
    echo "Redis is not running: starting it"
    redis-server --daemonize yes --save '' --appendonly no --bind "$REDIS_HOST" --port "$REDIS_PORT" >/dev/null
    wait_for "Redis" 30 redis_ready
  fi
  export TOLLGATE_TEST_REDIS_URL="redis://${REDIS_HOST}:${REDIS_PORT}"
  echo "Redis is up; TOLLGATE_TEST_REDIS_URL=$TOLLGATE_TEST_REDIS_URL"
}

# ---------------------------------------------------------------------------------------------------
# Python SDKs (OpenAI, Anthropic) for the SDK smoke tests
# ---------------------------------------------------------------------------------------------------
ensure_python_sdks() {
  banner "Python SDKs (target/pyenv)"
  local venv="$PWD/target/pyenv" py
  py="$venv/bin/python"
  if [ ! -x "$py" ]; then
    if ! command -v python3 >/dev/null 2>&1; then
      warn "python3 not found: SDK smoke tests will not run (fatal under CI)"
      return 0
    fi
    mkdir -p target
    if ! python3 -m venv "$venv"; then
      rm -rf "$venv"
      warn "could not create a venv with python3 -m venv (is python3-venv installed?): SDK smoke tests will not run (fatal under CI)"
      return 0
    fi
  fi
  if ! "$py" -c 'import openai, anthropic' >/dev/null 2>&1; then
    echo "installing openai and anthropic into $venv"
    if ! "$py" -m pip install -q --disable-pip-version-check openai anthropic; then
      warn "pip install openai anthropic failed (no network?): SDK smoke tests will not run (fatal under CI)"
      return 0
    fi
  fi
  export TOLLGATE_TEST_PYTHON="$py"
  echo "TOLLGATE_TEST_PYTHON=$py ($("$py" -c 'import openai, anthropic; print("openai", openai.__version__, "anthropic", anthropic.__version__)'))"
}

# ---------------------------------------------------------------------------------------------------
# LiteLLM's database schema (its own migrations, from the litellm-proxy-extras package) for the
# import test: tests/import_litellm.rs applies them in order to a fresh database.
# ---------------------------------------------------------------------------------------------------
LITELLM_PROXY_EXTRAS_VERSION=0.4.110
ensure_litellm_schema() {
  banner "LiteLLM's database schema (litellm-proxy-extras $LITELLM_PROXY_EXTRAS_VERSION)"
  local dir="$PWD/target/litellm-proxy-extras-$LITELLM_PROXY_EXTRAS_VERSION"
  local migrations="$dir/litellm_proxy_extras/migrations"
  if [ ! -d "$migrations" ]; then
    rm -rf "$dir" && mkdir -p "$dir"
    if ! python3 -m pip download -q --disable-pip-version-check --no-deps -d "$dir" \
      "litellm-proxy-extras==$LITELLM_PROXY_EXTRAS_VERSION" ||
      ! python3 -m zipfile -e "$dir"/litellm_proxy_extras-*.whl "$dir"; then
      rm -rf "$dir"
      warn "could not fetch litellm-proxy-extras: the LiteLLM import test will not run (fatal under CI)"
      return 0
    fi
  fi
  export TOLLGATE_TEST_LITELLM_MIGRATIONS="$migrations"
  echo "TOLLGATE_TEST_LITELLM_MIGRATIONS=$migrations ($(find "$migrations" -name migration.sql | wc -l) migrations)"
}

# ---------------------------------------------------------------------------------------------------
# Chromium and chromedriver for the admin UI's browser tests (tests/ui.rs)
# ---------------------------------------------------------------------------------------------------
ensure_chromium() {
  banner "Chromium and chromedriver (admin UI browser tests)"
  if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    if command -v apt-get >/dev/null 2>&1; then
      echo "installing chromium and chromium-driver with apt-get"
      apt_install chromium chromium-driver
    else
      warn "apt-get not found: install chromium and chromedriver yourself; the browser tests will not run (fatal under CI)"
      return 0
    fi
  fi
  echo "$(/usr/bin/chromium --version 2>/dev/null || echo chromium), $(/usr/bin/chromedriver --version 2>/dev/null | head -n1)"
}

# ---------------------------------------------------------------------------------------------------
# Dependency audit: Cargo.lock against the RustSec advisory database
# ---------------------------------------------------------------------------------------------------
# The live database is a GitHub repository; machines that reach only package registries use the
# snapshot in audit/advisory-db (its crates/ tree and license; audit/README.md says how to refresh
# it). Accepted advisories, each with its reason, are listed in .cargo/audit.toml.
ADVISORY_SNAPSHOT="$PWD/audit/advisory-db"

github_reachable() {
  command -v git >/dev/null 2>&1 &&
    GIT_TERMINAL_PROMPT=0 timeout 20 git ls-remote --heads https://github.com/rustsec/advisory-db >/dev/null 2>&1
}

run_audit() {
  banner "cargo audit (RustSec advisories)"
  if ! cargo audit --version >/dev/null 2>&1; then
    # Only the lock-file audit is needed (no binary scanning), and it reads ~1,200 small files:
    # built unoptimized it installs in a fraction of the time of a release build and still
    # audits in about a second.
    echo "cargo-audit not found: installing it from crates.io (cargo install cargo-audit --locked --no-default-features, once, unoptimized)"
    CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_LTO=false \
      CARGO_PROFILE_RELEASE_CODEGEN_UNITS=256 CARGO_PROFILE_RELEASE_DEBUG=false \
      cargo install cargo-audit --locked --no-default-features
  fi
  local mode="${TOLLGATE_AUDIT_DB:-}"
  if [ -z "$mode" ]; then
    if github_reachable; then mode=live; else mode=snapshot; fi
  fi
  case "$mode" in
    live)
      echo "advisory database: live (github.com/rustsec/advisory-db)"
      cargo audit
      ;;
    snapshot)
      [ -d "$ADVISORY_SNAPSHOT/crates" ] || die "no advisory database snapshot in $ADVISORY_SNAPSHOT"
      echo "advisory database: snapshot in audit/advisory-db ($(cat "$PWD/audit/SNAPSHOT" 2>/dev/null || echo 'unknown date'))"
      cargo audit --db "$ADVISORY_SNAPSHOT" --no-fetch
      ;;
    *) die "TOLLGATE_AUDIT_DB must be live or snapshot, not '$mode'" ;;
  esac
}

# ---------------------------------------------------------------------------------------------------
# Run
# ---------------------------------------------------------------------------------------------------
ensure_postgres
ensure_postgres_ssl
create_test_db
ensure_redis
ensure_python_sdks
ensure_litellm_schema
ensure_chromium

banner "cargo fmt --all -- --check"
cargo fmt --all -- --check

run_audit

banner "cargo build --workspace --bins"
cargo build --workspace --bins

banner "cargo test --workspace --all-targets $*"
cargo test --workspace --all-targets "$@"

banner "cargo test --workspace --doc"
cargo test --workspace --doc

banner "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

banner "all checks passed"
