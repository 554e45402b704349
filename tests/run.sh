#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need, then runs every
# test (PostgreSQL ones included) and fails if the PostgreSQL tests did not run.
#   bash tests/run.sh            # everything
#   bash tests/run.sh cli        # extra args go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."

PG_URL="${SMARTDESK_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
export SMARTDESK_TEST_POSTGRES_URL="$PG_URL"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=0
need_pkg() { # need_pkg COMMAND PACKAGE: install PACKAGE when COMMAND is missing
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  echo "installing $2 (for $1)"
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}

pg_ready() { psql "$PG_URL" -qAtc 'select 1' >/dev/null 2>&1; }

ensure_postgres() {
  need_pkg psql postgresql-client
  pg_ready && return 0
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    need_pkg pg_ctlcluster postgresql
  fi
  local ver; ver=$(ls /etc/postgresql | sort -V | tail -1)
  # trust auth on loopback for the test user, as the project's machines are set up
  as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start 2>/dev/null || true
  for _ in $(seq 1 30); do pg_ready && break; sleep 1; done
  if ! pg_ready; then
    # a fresh install: create the test database (server is up, database missing)
    as_root su postgres -c "createdb test" 2>/dev/null || true
  fi
  pg_ready || { echo "PostgreSQL is not reachable at $PG_URL" >&2; exit 1; }
}

ensure_postgres
need_pkg sipp sip-tester   # SIPp: carrier and seats (tests/seat_register.rs, tests/call_path.rs)
need_pkg baresip baresip   # a real softphone seat (tests/call_path.rs)
need_pkg sox sox           # test audio: fax tone, DTMF, speech, the browser's fake mic (tests/call_rules.rs, tests/browser_phone.rs)
need_pkg svmap sipvicious   # SIPVicious scanners against the daemon (tests/security.rs)
need_pkg systemd-analyze systemd   # `systemd-analyze verify` of the unit (tests/operations.rs)
need_pkg chromium chromium               # the console, portal and browser phone in a real browser (tests/console.rs, tests/portal.rs, tests/browser_phone.rs)
need_pkg chromedriver chromium-driver    # WebDriver for it
need_pkg runuser util-linux   # a private PostgreSQL cluster as user postgres (tests/storage_faults.rs)
need_pkg mount mount           # a small tmpfs for SQLite on a full disk (tests/storage_faults.rs)

# Fuzzing (issue #10): a short run of every cargo-fuzz target after the tests. Its build (and
# cargo-fuzz's install) runs in the background at the lowest priority while the tests run, in
# its own process group, stopped by that group's id if the suite ends first.
fuzz_s="${SMARTDESK_FUZZ_SECONDS:-10}"
fuzz_pid=""
fuzz_log=$(mktemp)
if [ $# = 0 ] && [ "$fuzz_s" != 0 ]; then
  need_pkg g++ g++   # libFuzzer is built from source
  setsid -w nice -n 19 bash -c '
    if ! cargo fuzz --version >/dev/null 2>&1; then
      echo "installing cargo-fuzz"
      cargo install cargo-fuzz --locked --quiet
    fi
    FUZZ_PROFILE=dev bash fuzz/run.sh 0' >"$fuzz_log" 2>&1 &
  fuzz_pid=$!
fi

log=$(mktemp)
cleanup() {
  if [ -n "$fuzz_pid" ] && kill -0 "$fuzz_pid" 2>/dev/null; then
    kill -TERM -- "-$fuzz_pid" 2>/dev/null || true
  fi
  rm -f "$log" "$fuzz_log"
}
trap cleanup EXIT
set +e
cargo test --all-targets "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
[ "$status" = 0 ] || exit "$status"

if [ $# = 0 ]; then
  pg_ran=$(grep -cE '::postgres \.\.\. ok$' "$log" || true)
  if [ "$pg_ran" -lt 10 ]; then
    echo "FAIL: only $pg_ran PostgreSQL tests ran; the suite requires them" >&2
    exit 1
  fi
  echo "PostgreSQL tests run: $pg_ran"
fi

# The fuzz smoke run (seeded with the RFC 4475 set and the SDP samples): any crash, hang or
# runaway allocation fails the suite. Unoptimised build (FUZZ_PROFILE=dev) to keep CI short;
# longer campaigns: `bash fuzz/run.sh 600` (release). SMARTDESK_FUZZ_SECONDS=0 skips it.
if [ -n "$fuzz_pid" ]; then
  echo "waiting for the fuzz targets' build"
  if ! wait "$fuzz_pid"; then
    cat "$fuzz_log" >&2
    echo "FAIL: building the fuzz targets failed" >&2
    exit 1
  fi
  fuzz_pid=""
  FUZZ_PROFILE=dev bash fuzz/run.sh "$fuzz_s"
fi
