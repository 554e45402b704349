#!/usr/bin/env bash
# smartdesk soak (issue #10 item 5; not CI): a steady RATE calls/s (default 10) for MINUTES
# (default 60) through carrier -> smartdesk -> seat, with every seat re-registering on a short
# expiry, the daemon sampled every SAMPLE_S s: RSS, open fds (/proc/PID/fd), relay ports in
# use, the call table, SIP transactions, BYE/CANCEL outstanding, calls in progress
# (`smartdesk status --json`).  Also measures start-up time (exec -> the SIP port answers
# OPTIONS) and memory per call in progress (RSS with MEM_CALLS held calls vs idle).
# Prints memory after warm-up vs at the end; exits 1 if fds, relay ports, the call table or
# transactions grow under steady load or are not back to idle after the load, or if the
# ledger lost a call.  See bench/README.md ("Soak").
#
#   bench/soak.sh [--minutes N] [--rate R] [--no-build] [--debug]
#     --minutes N  length of the steady load (default 60)
#     --rate R     calls per second (default 10)
#     --no-build   use the existing binary (target/release, or target/debug with --debug)
#     --debug      use the debug build (faster to build; memory figures are not production's)
# Environment knobs: HOLD_MS (3000), SAMPLE_S (10), REG_EXPIRES (60, refreshed every half),
# MEM_CALLS (200), SEATS (250), WARMUP_S (min(120, 20 % of the run)).
set -u
source "$(dirname "$0")/lib/common.sh"
source "$LIBDIR/smartdesk.sh"
source "$LIBDIR/hold.sh"

MINUTES=60; RATE=10; BUILD=1; PROFILE=release
while [ $# -gt 0 ]; do
    case $1 in
        --minutes) MINUTES=$2; shift ;;
        --rate) RATE=$2; shift ;;
        --no-build) BUILD=0 ;;
        --debug) PROFILE=debug ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
    shift
done
case $MINUTES$RATE in *[!0-9]*) die "--minutes and --rate take whole numbers" ;; esac
[ "$MINUTES" -ge 1 ] && [ "$RATE" -ge 1 ] || die "--minutes and --rate must be at least 1"
HOLD_MS=${HOLD_MS:-3000}
SAMPLE_S=${SAMPLE_S:-10}
REG_EXPIRES=${REG_EXPIRES:-60}
MEM_CALLS=${MEM_CALLS:-200}
SEATS=${SEATS:-250}
DURATION_S=$((MINUTES * 60))
WARMUP_S=${WARMUP_S:-$(( DURATION_S / 5 < 120 ? DURATION_S / 5 : 120 ))}
NATIONAL_NUMBER=${NATIONAL_NUMBER:-0312345678}
SEAT_PASSWORD=${SEAT_PASSWORD:-soak-seat-secret}
[ "$SEATS" -gt "$MEM_CALLS" ] || die "SEATS ($SEATS) must exceed MEM_CALLS ($MEM_CALLS)"

REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
RUN_ROOT=${RUN_ROOT:-/tmp/smartdesk-soak}
mkdir -p "$RUN_ROOT"
RUN_DIR=$(mktemp -d "$RUN_ROOT/$(date +%Y%m%d-%H%M%S).XXXX")
install_trap
log "run dir $RUN_DIR"
command -v sipp >/dev/null || die "sipp missing (apt-get install sip-tester)"
if [ "$BUILD" = 1 ]; then
    log "cargo build --profile $PROFILE"
    flag=--release; [ "$PROFILE" = debug ] && flag=
    (cd "$REPO_DIR" && cargo build $flag --quiet) || die "cargo build failed"
fi
SMARTDESK_BIN=$REPO_DIR/target/$PROFILE/smartdesk
[ -x "$SMARTDESK_BIN" ] || die "no $SMARTDESK_BIN (build it or drop --no-build)"

# The bench's scenarios, the seats' REGISTER with Expires REG_EXPIRES instead of 3600.
mkdir -p "$RUN_DIR/scn"
cp -a "$SCN/." "$RUN_DIR/scn/"
sed -i "s/^\( *Expires:\) 3600/\1 $REG_EXPIRES/" "$RUN_DIR/scn/seat_register.xml"
grep -q "Expires: $REG_EXPIRES" "$RUN_DIR/scn/seat_register.xml" || die "cannot set the seats' Expires"
SCN=$RUN_DIR/scn
SEAT_RECV_TIMEOUT_MS=$(( HOLD_MS + 15000 ))
SEAT_LIFETIME_S=$(( DURATION_S + 600 ))
server_up() { sd_up "$@"; }
server_down() { sd_down "$@"; }

sd_prepare "$RUN_DIR/install" "$SEATS"

# sip_answers PORT: one OPTIONS round trip within 200 ms
sip_answers() {
    python3 - "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.2); s.bind(("127.0.0.1", 0))
me = s.getsockname()[1]; port = int(sys.argv[1])
m = ("OPTIONS sip:ping@127.0.0.1:%d SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKsoak%d\r\n"
     "Max-Forwards: 70\r\nTo: <sip:ping@127.0.0.1>\r\nFrom: <sip:soak@127.0.0.1>;tag=s\r\n"
     "Call-ID: soak-%d@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n") % (port, me, me, me)
try:
    s.sendto(m.encode(), ("127.0.0.1", port))
    sys.exit(0 if s.recv(4096).startswith(b"SIP/2.0 200") else 1)
except OSError:
    sys.exit(1)
PY
}

# ---- 1. start-up time: exec -> the SIP port answers OPTIONS (ledger migrated, sockets bound)
STARTUPS=()
for i in 1 2 3; do
    read -r port web < <(free_ports 2)
    t0=$(date +%s%N)
    spawn "$RUN_DIR/startup$i.log" "$SMARTDESK_BIN" --config "$SD_ROOT/smartdesk.toml" serve \
        --sip-listen "127.0.0.1:$port" --http-listen "127.0.0.1:$web" --clock "$SD_CLOCK"
    pid=$LAST_PID
    for _ in $(seq 300); do
        sip_answers "$port" && break
        kill -0 "$pid" 2>/dev/null || die "smartdesk exited at start (see $RUN_DIR/startup$i.log)"
        sleep 0.01
    done
    STARTUPS+=($(( ($(date +%s%N) - t0) / 1000000 )))
    stop_pid "$pid"
done
STARTUP_MS=$(printf '%s\n' "${STARTUPS[@]}" | sort -n | sed -n 2p)
log "start-up (exec -> OPTIONS answered): ${STARTUPS[*]} ms, median $STARTUP_MS ms (includes the probe's python start)"

# ---- 2. memory per call in progress: idle RSS vs MEM_CALLS held calls
MEM_RATE=${MEM_RATE:-50} MEM_HOLD_MS=$(( MEM_CALLS * 1000 / ${MEM_RATE:-50} + 15000 )) \
    SEAT_RECV_TIMEOUT_MS=$(( MEM_CALLS * 1000 / ${MEM_RATE:-50} + 30000 )) \
    memory_step "$RUN_DIR/memory" "$MEM_CALLS"
log "memory: $(cat "$RUN_DIR/memory/summary" | tr '\n' ' ')"

# ---- 3. the soak
DIR=$RUN_DIR/soak
mkdir -p "$DIR"
server_up "$DIR"
SAMPLES=$DIR/samples.csv
echo "t_s,phase,rss_kb,fds,threads,calls_live,rtp_ports,call_table,transactions,requests_outstanding,seats_available,ledger_fds" >"$SAMPLES"
sample() {   # sample T PHASE
    local st fds thr rss lfd
    rss=$(awk '/^VmRSS:/{print $2}' "/proc/$SD_PID/status" 2>/dev/null)
    thr=$(awk '/^Threads:/{print $2}' "/proc/$SD_PID/status" 2>/dev/null)
    fds=$(ls "/proc/$SD_PID/fd" 2>/dev/null | wc -l)
    st=$(sd status --json 2>/dev/null | python3 -c '
import json, sys
try:
    s = json.load(sys.stdin)
except ValueError:
    print("-1,-1,-1,-1,-1,-1"); sys.exit()
seats = sum(1 for x in s.get("seats", []) if x.get("state") == "available")
print("%d,%d,%d,%d,%d,%d" % (len(s.get("calls", [])), s["media"]["rtp_ports_in_use"],
      s["call_table"], s["sip"]["transactions"], s["requests_outstanding"], seats))')
    # the ledger's files (SQLite: db + WAL per pool connection, opened lazily up to
    # ledger.max_connections): counted apart, bounded by the pool
    lfd=$(ls -l "/proc/$SD_PID/fd" 2>/dev/null | grep -c "/data/smartdesk\.db")
    echo "$1,$2,${rss:-0},$fds,${thr:-0},$st,$lfd" >>"$SAMPLES"
    # what the fds are, by kind (socket, the ledger's files, pipes…), for the leak report
    ls -l "/proc/$SD_PID/fd" 2>/dev/null | awk 'NR > 1 { t = $NF; sub(/:\[.*/, "", t); sub(/^.*\//, "", t); n[t]++ }
        END { for (k in n) printf "%s=%d ", k, n[k]; print "" }' >"$DIR/fds-$2.txt"
}
refresh_seats() {   # in a subshell: a failed refresh is reported, not fatal
    ( register_seats "$DIR" "127.0.0.1:$SD_PORT" "$SEAT_PORT" "$DIR/seats.csv" ) \
        || log "WARNING: a registration refresh failed (see $DIR/*errors*)"
}
# settle PHASE: wait until every call ended and every relay port is back (bounded: BYE/CANCEL
# timers are 64*T1 = 32 s), then 40 s more for the last transactions (Timer J/K), and sample.
# The seats keep re-registering meanwhile (their bindings expire after REG_EXPIRES s).
settle() {
    local i
    for i in $(seq 90); do
        sample $(( $(date +%s) - ${T0:-$(date +%s)} )) drain
        tail -1 "$SAMPLES" | awk -F, '{ exit !($6 == 0 && $7 == 0 && $8 == 0) }' && break
        [ $((i % 25)) = 0 ] && refresh_seats
        sleep 1
    done
    refresh_seats
    sleep 40
    sample $(( $(date +%s) - ${T0:-$(date +%s)} )) "$1"
}
refresh_seats
# The idle baseline is taken after 30 s of the same load, so lazily opened resources (ledger
# pool connections, runtime threads) are already there and only growth counts.
log "warm-up: 30 s of $RATE calls/s before the idle reading"
carrier_hold "$DIR/warmup" carrier.xml "$(( RATE * 30 ))" "$RATE" "$HOLD_MS" -key media_port_sdp "${CARRIER_MEDIA_PORT:-40000}"
carrier_summary "$DIR/warmup" "$RATE" "$(( RATE * 30 ))"
settle idle
CALLS=$(( RATE * DURATION_S ))
log "soak: $RATE calls/s for $MINUTES min ($CALLS calls, hold $HOLD_MS ms), seats re-register every $((REG_EXPIRES / 2)) s (expiry $REG_EXPIRES s), sample every $SAMPLE_S s"
refresh_seats
carrier_hold "$DIR" carrier.xml "$CALLS" "$RATE" "$HOLD_MS" -key media_port_sdp "${CARRIER_MEDIA_PORT:-40000}"
T0=$(date +%s); next_reg=$((T0 + REG_EXPIRES / 2)); next_log=$((T0 + 60))
while kill -0 "$CARRIER_PID" 2>/dev/null; do
    sleep "$SAMPLE_S"
    now=$(date +%s)
    [ $((now - T0)) -gt $((DURATION_S + HOLD_MS / 1000 + 120)) ] && { log "carrier overran; stopping it"; stop_pid "$CARRIER_PID"; break; }
    kill -0 "$SD_PID" 2>/dev/null || die "smartdesk died during the soak (see $DIR/smartdesk.log)"
    sample $((now - T0)) load
    if [ "$now" -ge "$next_reg" ]; then refresh_seats; next_reg=$((now + REG_EXPIRES / 2)); fi
    if [ "$now" -ge "$next_log" ]; then log "t=$((now - T0)) s: $(tail -1 "$SAMPLES")"; next_log=$((now + 60)); fi
done
carrier_summary "$DIR" "$RATE" "$CALLS"
settle after
ROWS=$(sd_ledger_calls)
server_down "$DIR"
log "carrier: $(tr '\n' ' ' <"$DIR/summary")"

python3 - "$SAMPLES" "$WARMUP_S" "$DIR/summary" "$ROWS" "$STARTUP_MS" "$RUN_DIR/memory/summary" "$RATE" "$MINUTES" <<'PY'
import csv, os, sys
samples, warmup, summary, rows, startup, memsum, rate, minutes = sys.argv[1:9]
warmup, rows = int(warmup), int(rows)
S = list(csv.DictReader(open(samples)))
for s in S:
    for k in s:
        if k != "phase":
            s[k] = int(float(s[k]))
kv = lambda f: dict(w.split("=", 1) for w in open(f).read().split() if "=" in w)
car, mem = kv(summary), kv(memsum)
idle = [s for s in S if s["phase"] == "idle"][0]
after = [s for s in S if s["phase"] == "after"][-1]
load = [s for s in S if s["phase"] == "load"]
steady = [s for s in load if s["t_s"] >= warmup] or load
half = len(steady) // 2
first, second = steady[:half] or steady, steady[half:] or steady
med = lambda xs: sorted(xs)[len(xs) // 2]
problems = []
print("\n== smartdesk soak: %s calls/s for %s min, seats re-registering" % (rate, minutes))
print("start-up (exec -> SIP answers OPTIONS): %s ms (median of 3)" % startup)
print("memory per call in progress: %s KiB RSS (%s held calls: idle %s KiB -> %s KiB)"
      % (mem.get("rss_kb_per_call"), mem.get("held_calls"), mem.get("idle_rss_kb"), mem.get("busy_rss_kb")))
w = [s["rss_kb"] for s in steady[:3]]; e = [s["rss_kb"] for s in steady[-3:]]
print("RSS: idle %d KiB, after warm-up (%d s) %d KiB, end of load %d KiB (%+.1f %%), peak %d KiB, after drain %d KiB"
      % (idle["rss_kb"], warmup, med(w), med(e), 100.0 * (med(e) - med(w)) / max(med(w), 1),
         max(s["rss_kb"] for s in load), after["rss_kb"]))
for col, slack in (("fds", 4), ("rtp_ports", 8), ("call_table", 8), ("transactions", 64), ("threads", 2)):
    a, b = max(s[col] for s in first), max(s[col] for s in second)
    grew = b > a * 1.5 + slack
    print("%-13s idle %5d | steady max 1st half %5d, 2nd half %5d | after %5d%s"
          % (col, idle[col], a, b, after[col], "  GROWS" if grew else ""))
    if grew:
        problems.append("%s grows under steady load (%d -> %d)" % (col, a, b))
# SQLite opens the db and its WAL per pool connection (at most 8 by default, plus the shm map)
if after["ledger_fds"] > 2 * 8 + 1:
    problems.append("ledger fds beyond the pool's 8 connections: %d" % after["ledger_fds"])
if after["fds"] - after["ledger_fds"] > idle["fds"] - idle["ledger_fds"] + 2:
    d = os.path.dirname(samples)
    kinds = lambda p: open(os.path.join(d, p)).read().strip() if os.path.exists(os.path.join(d, p)) else "?"
    problems.append("fds not back to idle: %d -> %d (idle: %s; after: %s)"
                    % (idle["fds"], after["fds"], kinds("fds-idle.txt"), kinds("fds-after.txt")))
print("ledger fds (SQLite db + WAL per pool connection): idle %d, after %d" % (idle["ledger_fds"], after["ledger_fds"]))
for col in ("rtp_ports", "call_table", "calls_live", "requests_outstanding"):
    if after[col] != 0:
        problems.append("%s left after the load: %d" % (col, after[col]))
if after["transactions"] > idle["transactions"] + 16:
    problems.append("transactions not back to idle: %d -> %d" % (idle["transactions"], after["transactions"]))
placed, ok = int(car.get("placed", 0)), int(car.get("ok", 0))
print("calls: placed %d, completed %d, failed %s; ledger rows %d (incl. the memory step's and the warm-up's)"
      % (placed, ok, car.get("failed"), rows))
if rows < ok:
    problems.append("ledger has fewer rows (%d) than completed calls (%d)" % (rows, ok))
print("samples: %s" % samples)
if problems:
    print("FAIL: " + "; ".join(problems))
    sys.exit(1)
print("PASS: no growth of fds, relay ports, call table or transactions; all back to idle")
PY
