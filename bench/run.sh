#!/usr/bin/env bash
# smartdesk benchmark: one run measures, on this machine, for
#   (a) smartdesk: carrier -> smartdesk (B2BUA, ledger on: SQLite, and PostgreSQL) -> SIPp seat,
#   (b) Kamailio (Debian, 4 children, tm + registrar/usrloc in memory, record-route) in front
#       of the same SIPp seat, and
#   (c) Kamailio + rtpengine (Debian, userspace forwarding) anchoring the media,
# the maximum calls/s with zero failed calls, INVITE->200 p50/p99 at a fixed moderate rate,
# server CPU per call, memory per held call, start-up time, and concurrent G.711 calls relayed
# without loss (smartdesk vs rtpengine); then prints them side by side with their ratios.
# See bench/README.md.
#
#   bench/run.sh [--quick] [--only LIST] [--no-build]
#     --quick      1 repeat, shorter steps and budgets (a smoke run)
#     --only LIST  comma list of: ceiling,kamailio,smartdesk,smartdesk_pg,memory,media,
#                  rtpengine,startup (default: all)
#     --no-build   use the existing target/release/smartdesk
# Environment knobs: see the defaults below and bench/README.md.
set -u
source "$(dirname "$0")/lib/common.sh"
source "$LIBDIR/kamailio.sh"
source "$LIBDIR/smartdesk.sh"
source "$LIBDIR/hold.sh"
source "$LIBDIR/rtpengine.sh"

QUICK=0; ONLY=ceiling,kamailio,smartdesk,smartdesk_pg,memory,media,rtpengine,startup; BUILD=1
while [ $# -gt 0 ]; do
    case $1 in
        --quick) QUICK=1 ;;
        --only) ONLY=$2; shift ;;
        --no-build) BUILD=0 ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
    shift
done
want() { case ",$ONLY," in *",$1,"*) return 0 ;; esac; return 1; }

if [ "$QUICK" = 1 ]; then
    : "${REPEAT:=1}" "${STEP_SECS:=4}" "${BUDGET_S:=100}" "${RES:=0.10}" "${LAT_SECS:=5}"
    : "${MEM_CALLS:=1000}" "${MEDIA_START_N:=250}" "${MEDIA_CAP_N:=2000}" "${MEDIA_HOLD_MS:=8000}"
    : "${MEDIA_BUDGET_S:=150}" "${CEIL_BUDGET_S:=40}"
fi
REPEAT=${REPEAT:-3}
START_CPS=${START_CPS:-1000}        # the search doubles from here
MAX_CPS_CAP=${MAX_CPS_CAP:-40000}
LAT_CPS=${LAT_CPS:-1000}            # fixed rate of the latency run
LAT_SECS=${LAT_SECS:-10}
# Call hold in the CPS runs: short, because smartdesk needs one logged-in seat per call in
# progress (see SD_SEATS); neither server's work per call depends on it.
HOLD_MS=${HOLD_MS:-20}
MEM_CALLS=${MEM_CALLS:-2000}        # calls held up for the memory reading
MEDIA_START_N=${MEDIA_START_N:-500}
MEDIA_CAP_N=${MEDIA_CAP_N:-4000}
MEDIA_HOLD_MS=${MEDIA_HOLD_MS:-12000}
NATIONAL_NUMBER=${NATIONAL_NUMBER:-0312345678}
SEAT_USER=op1
SEAT_PASSWORD=${SEAT_PASSWORD:-bench-seat-secret}
export STEP_SECS BUDGET_S RES MEDIA_HOLD_MS MEDIA_BUDGET_S

REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
STAMP=$(date +%Y%m%d-%H%M%S)
RUN_ROOT=${RUN_ROOT:-/tmp/smartdesk-bench}
mkdir -p "$RUN_ROOT" "$BENCH_DIR/results"
RUN_DIR=$(mktemp -d "$RUN_ROOT/$STAMP.XXXX")
RAW=$RUN_DIR/records.txt
install_trap
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
log "run dir $RUN_DIR (raw SIPp files of every step; delete at will)"

ensure_packages
build_helpers "$RUN_DIR/bin"
if want smartdesk || want smartdesk_pg || want memory || want media || want startup; then
    if [ "$BUILD" = 1 ]; then
        log "cargo build --release"
        (cd "$REPO_DIR" && cargo build --release --quiet) || die "cargo build --release failed"
    fi
    SMARTDESK_BIN=$REPO_DIR/target/release/smartdesk
    [ -x "$SMARTDESK_BIN" ] || die "no $SMARTDESK_BIN (build it or drop --no-build)"
fi

# Priority: on a shared 2-core box other work (compilers, fuzzers) takes half the CPU and the
# figures with it.  As root the bench raises its own priority (BENCH_NICE, default -10; 0 =
# leave it): nice for its processes, and the same for its scheduler autogroup, without which
# nice does not count against processes of other sessions (sched_autogroup; the autogroup is
# the caller's session, and its previous nice is restored at exit).  Set after the build on
# purpose.
BENCH_NICE=${BENCH_NICE:--10}
AUTOGROUP_NICE0=
if [ "$BENCH_NICE" != 0 ] && [ "$(id -u)" = 0 ]; then
    renice -n "$BENCH_NICE" -p $$ >/dev/null 2>&1 || log "renice failed"
    if [ -w "/proc/$$/autogroup" ]; then
        AUTOGROUP_NICE0=$(sed -n 's/.* nice //p' "/proc/$$/autogroup")
        echo "$BENCH_NICE" >"/proc/$$/autogroup" 2>/dev/null || log "autogroup nice failed"
        trap 'stop_everything; echo "$AUTOGROUP_NICE0" >"/proc/$$/autogroup" 2>/dev/null' EXIT
    fi
    log "bench priority: nice $BENCH_NICE ($(cat /proc/$$/autogroup 2>/dev/null))"
fi

# The figures are only worth something on an otherwise idle machine (2 cores shared by the
# load generator, the server and the seat).  WAIT_QUIET=N waits up to N s for the 1-minute
# load average to fall below QUIET_LOAD; the load at start is recorded either way.
QUIET_LOAD=${QUIET_LOAD:-0.5}
if [ "${WAIT_QUIET:-0}" -gt 0 ]; then
    t0=$(date +%s)
    while awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v q="$QUIET_LOAD" 'BEGIN { exit !(l > q) }'; do
        [ $(( $(date +%s) - t0 )) -ge "$WAIT_QUIET" ] && { log "machine still busy after ${WAIT_QUIET}s; measuring anyway"; break; }
        log "waiting for a quiet machine (load $(cut -d' ' -f1 /proc/loadavg))"; sleep 15
    done
fi
LOAD_AT_START=$(cut -d' ' -f1 /proc/loadavg)
awk -v l="$LOAD_AT_START" -v q="$QUIET_LOAD" 'BEGIN { exit !(l > q) }' \
    && log "WARNING: load average $LOAD_AT_START at start: other work shares the 2 cores, figures will be low"

SEAT_RECV_TIMEOUT_MS=$(( HOLD_MS + 15000 ))
machine=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo | tr ' ' '_')
echo "kind=meta repeat=$REPEAT quick=$QUICK lat_cps=$LAT_CPS hold_ms=$HOLD_MS step_secs=${STEP_SECS:-6}" \
     "kam_children=$KAM_CHILDREN ncpu=$NCPU machine=${NCPU}x_${machine}" \
     "load_at_start=$LOAD_AT_START bench_nice=$BENCH_NICE smartdesk_commit=$(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null) run_dir=$RUN_DIR" >"$RAW"

prefixed() { [ -f "$2" ] && tr ' ' '\n' <"$2" | grep '=' | sed "s/^/$1/" | tr '\n' ' '; }

# latency_run NAME REPEAT: a fresh server, LAT_CPS for LAT_SECS; record "ref." figures
latency_run() {
    local name=$1 r=$2 dir=$RUN_DIR/$1/r$2-latency pass=0
    mkdir -p "$dir"
    quiet_gate
    server_up "$dir"
    measured_step "$name" "$dir" "$LAT_CPS" "$((LAT_CPS * LAT_SECS))" "$HOLD_MS"
    server_down "$dir"
    echo "busy_before_pct=$GATE_BUSY_PCT" >>"$dir/summary"
    step_passed "$dir/summary" "$((LAT_CPS * LAT_SECS))" && pass=1
    log "$name latency @${LAT_CPS} cps: $(tr '\n' ' ' <"$dir/summary")"
    echo "kind=latency server=$name repeat=$r ref_pass=$pass $(prefixed ref. "$dir/summary")" >>"$RAW"
}

search_run() {   # search_run NAME REPEAT [extra record words]
    local name=$1 r=$2; shift 2
    search_cps "$name/r$r-search" "$START_CPS" "$MAX_CPS_CAP"
    log "$name repeat $r: max $MAX_CPS calls/s"
    echo "kind=search server=$name repeat=$r max_cps=$MAX_CPS $(prefixed best. "${BEST_DIR:-/nonexistent}/summary") $*" >>"$RAW"
}

# ---- (1) harness ceiling: SIPp carrier straight to the SIPp seat
if want ceiling; then
    log "== harness ceiling: SIPp -> SIPp"
    server_up() { SEAT_PORT=$(free_ports 1)
                  seat_up "$1" "$SEAT_PORT" "$SEAT_RECV_TIMEOUT_MS" 900 -key media_port_sdp 40002
                  SERVER_PID=$SEAT_PID; TARGET=127.0.0.1:$SEAT_PORT; NUMBER=$NATIONAL_NUMBER; }
    server_down() { stop_pid "$SEAT_PID"; }
    BUDGET_S=${CEIL_BUDGET_S:-90} search_cps ceiling 4000 60000
    echo "kind=ceiling server=sipp repeat=1 max_cps=$MAX_CPS $(prefixed best. "${BEST_DIR:-/nonexistent}/summary")" >>"$RAW"
fi

# ---- (2) Kamailio
if want kamailio; then
    server_up() { kam_up "$@"; }; server_down() { kam_down "$@"; }
    for r in $(seq "$REPEAT"); do
        log "== kamailio repeat $r/$REPEAT"
        latency_run kamailio "$r"
        search_run kamailio "$r"
    done
fi

# ---- (3) smartdesk, with the ledger on SQLite (server "smartdesk") and on PostgreSQL
# ("smartdesk_pg": a private database on the local server, created per install, dropped at exit)
smartdesk_section() {   # smartdesk_section NAME LEDGER
    local name=$1 r placed answered rows ok
    server_up() { sd_up "$@"; }; server_down() { sd_down "$@"; }
    for r in $(seq "$REPEAT"); do
        log "== $name repeat $r/$REPEAT (ledger $2)"
        SD_LEDGER=$2 sd_prepare "$RUN_DIR/$name/r$r-install"
        latency_run "$name" "$r"
        search_run "$name" "$r" "ledger=$2 ledger_check=pending"
        # every call that reached smartdesk is one call row: at least every call the carrier
        # saw answered, at most every call it placed (a failed call still counts, SPEC 3)
        read -r placed answered < <(cat "$RUN_DIR/$name/r$r-latency/summary" \
                "$RUN_DIR/$name/r$r-search"/*/summary 2>/dev/null | tr ' ' '\n' \
            | awk -F= '$1 == "placed" {p += $2} $1 == "ok" {o += $2} END {print p + 0, o + 0}')
        rows=$(sd_ledger_calls)
        ok=0; [ "$rows" -ge "$answered" ] && [ "$rows" -le "$placed" ] && ok=1
        log "$name repeat $r: ledger call rows $rows; carrier placed $placed, answered $answered"
        sed -i "\$s/ledger_check=pending/ledger_rows=$rows placed=$placed answered=$answered ledger_ok=$ok/" "$RAW"
    done
}
want smartdesk && smartdesk_section smartdesk sqlite
want smartdesk_pg && smartdesk_section smartdesk_pg postgres

# memory and media hold many calls at once: one install with a seat per held call
HELD_SEATS=$(( (MEM_CALLS > MEDIA_CAP_N ? MEM_CALLS : MEDIA_CAP_N) + 50 ))
HELD_INSTALL=

# ---- (4) memory per held call
if want memory; then
    mem_rate=${MEM_RATE:-500}
    export MEM_RATE=$mem_rate MEM_HOLD_MS=${MEM_HOLD_MS:-$(( MEM_CALLS * 1000 / mem_rate + 12000 ))}
    SEAT_RECV_TIMEOUT_MS=$(( MEM_HOLD_MS + 15000 ))
    server_up() { kam_up "$@"; }; server_down() { kam_down "$@"; }
    log "== memory: kamailio, $MEM_CALLS held calls"
    memory_step "$RUN_DIR/kamailio/memory" "$MEM_CALLS"
    echo "kind=memory server=kamailio repeat=1 $(prefixed '' "$RUN_DIR/kamailio/memory/summary")" >>"$RAW"
    server_up() { sd_up "$@"; }; server_down() { sd_down "$@"; }
    [ "${HELD_INSTALL:-}" ] || { sd_prepare "$RUN_DIR/smartdesk/held-install" "$HELD_SEATS"; HELD_INSTALL=$SD_ROOT; }
    SD_ROOT=$HELD_INSTALL
    log "== memory: smartdesk, $MEM_CALLS held calls"
    SD_REGISTER_N=$(( MEM_CALLS + 50 )) memory_step "$RUN_DIR/smartdesk/memory" "$MEM_CALLS"
    echo "kind=memory server=smartdesk repeat=1 $(prefixed '' "$RUN_DIR/smartdesk/memory/summary")" >>"$RAW"
    SEAT_RECV_TIMEOUT_MS=$(( HOLD_MS + 15000 ))
fi

# ---- (5) media: concurrent G.711 calls relayed without loss, smartdesk and rtpengine
SD_MEDIA_MAX=0; RTPE_MEDIA_MAX=0
if want media || want rtpengine; then SEAT_RECV_TIMEOUT_MS=$(( MEDIA_HOLD_MS + 15000 )); fi
if want media; then
    server_up() { sd_up "$@"; }; server_down() { sd_down "$@"; }
    [ "${HELD_INSTALL:-}" ] || { sd_prepare "$RUN_DIR/smartdesk/held-install" "$HELD_SEATS"; HELD_INSTALL=$SD_ROOT; }
    SD_ROOT=$HELD_INSTALL
    log "== media: smartdesk relay, G.711 both ways"
    search_media smartdesk/media "$MEDIA_START_N" "$MEDIA_CAP_N"
    SD_MEDIA_MAX=$MEDIA_MAX
    echo "kind=media server=smartdesk repeat=1 max_concurrent=$MEDIA_MAX $(prefixed best. "${MEDIA_BEST_DIR:-/nonexistent}/summary")" >>"$RAW"
fi
# the reference relay: Kamailio (signalling) + rtpengine (userspace forwarding), same load
if want rtpengine; then
    server_up() { kamrtpe_up "$@"; }; server_down() { kamrtpe_down "$@"; }
    log "== media: Kamailio + rtpengine (userspace, $RTPE_THREADS threads), G.711 both ways"
    search_media rtpengine/media "$MEDIA_START_N" "$MEDIA_CAP_N"
    RTPE_MEDIA_MAX=$MEDIA_MAX
    echo "kind=media server=rtpengine repeat=1 max_concurrent=$MEDIA_MAX threads=$RTPE_THREADS $(prefixed best. "${MEDIA_BEST_DIR:-/nonexistent}/summary")" >>"$RAW"
fi
# harness baseline: the same media load with the RTP going endpoint to endpoint (Kamailio
# passes the SDP untouched), at each relay's N (the jitter the relay adds is its jitter minus
# this one's at the same N) and at twice the larger N (the harness is not the limit)
if { want media || want rtpengine; } && [ "${MEDIA_BASELINE:-1}" = 1 ]; then
    server_up() { kam_up "$@"; }; server_down() { kam_down "$@"; }
    big=$(( SD_MEDIA_MAX > RTPE_MEDIA_MAX ? SD_MEDIA_MAX : RTPE_MEDIA_MAX ))
    big=$(( big > 0 ? big * 2 : MEDIA_START_N )); [ "$big" -gt "$MEDIA_CAP_N" ] && big=$MEDIA_CAP_N
    for n in $(printf '%s\n' "$SD_MEDIA_MAX" "$RTPE_MEDIA_MAX" "$big" | awk '$1 > 0 && !s[$1]++'); do
        log "== media harness baseline: $n calls, RTP direct"
        media_step "$RUN_DIR/kamailio/media-baseline-n$n" "$n"
        p=0; media_passed "$RUN_DIR/kamailio/media-baseline-n$n/summary" "$n" && p=1
        echo "kind=media_baseline server=kamailio repeat=1 pass=$p $(prefixed '' "$RUN_DIR/kamailio/media-baseline-n$n/summary")" >>"$RAW"
    done
fi

# ---- (6) start-up time: exec -> answers SIP OPTIONS, exec -> systemd READY=1 (sd_notify)
if want startup; then
    STARTUP_REPEAT=${STARTUP_REPEAT:-5}
    startup_probe() {   # startup_probe NAME PORT CMD...: one record of startup.py's figures
        local name=$1 port=$2 dir=$RUN_DIR/startup/$1; shift 2
        mkdir -p "$dir"
        quiet_gate
        spawn "$dir/probe.out" python3 "$LIBDIR/startup.py" "$STARTUP_REPEAT" "$port" 30 "$dir/server.log" -- "$@"
        local p=$LAST_PID
        wait "$p"; local rc=$?; forget "$p"
        [ "$rc" = 0 ] || log "start-up probe of $name failed (rc $rc, see $dir)"
        log "$name start-up: $(tail -1 "$dir/probe.out")"
        echo "kind=startup server=$name repeat=1 busy_before_pct=$GATE_BUSY_PCT $(tail -1 "$dir/probe.out" | grep '=')" >>"$RAW"
    }
    port=$(free_ports 1)
    startup_probe kamailio "$port" kamailio -f "$BENCH_DIR/kamailio/kamailio.cfg" -DD -E \
        -n "$KAM_CHILDREN" -l "udp:127.0.0.1:$port" -m "$KAM_SHM_MB" -M 16 -Y "$RUN_DIR/startup" \
        -A "BENCH_NUMBER=\"$NATIONAL_NUMBER\"" -A "BENCH_SEAT=\"$SEAT_USER\"" -A "BENCH_PASSWORD=\"$SEAT_PASSWORD\""
    for ledger in sqlite postgres; do
        name=smartdesk; [ "$ledger" = postgres ] && name=smartdesk_pg
        SD_LEDGER=$ledger sd_prepare "$RUN_DIR/startup/$name-install" "${STARTUP_SEATS:-$SD_SEATS}"
        read -r port wport < <(free_ports 2)
        startup_probe "$name" "$port" "$SMARTDESK_BIN" --config "$SD_ROOT/smartdesk.toml" serve \
            --sip-listen "127.0.0.1:$port" --http-listen "127.0.0.1:$wport" --clock "$SD_CLOCK"
    done
fi

stop_everything
python3 "$LIBDIR/report.py" "$RAW" "$BENCH_DIR/results/$STAMP.json" "$BENCH_DIR/results/$STAMP.txt"
cp "$RAW" "$BENCH_DIR/results/$STAMP.records.txt"
log "results: bench/results/$STAMP.txt, bench/results/$STAMP.json"
