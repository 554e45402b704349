# bench/lib/common.sh — shared by bench/run.sh and the per-server files.  Source it.
#
# Rules kept here (see bench/README.md):
#  * every process is started through `spawn`, its PID recorded, and `stop_pid` ends it
#    (TERM, then KILL after 5 s); the EXIT/INT/TERM trap stops every recorded PID.  Nothing
#    is ever killed by name.
#  * every load loop is bounded in calls and in time (SIPp runs under `timeout`, every
#    search has a step cap and a wall-clock budget).
#  * traffic goes to 127.0.0.1 only.

set -u
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCN=$BENCH_DIR/scenarios
LIBDIR=$BENCH_DIR/lib
CLK_TCK=$(getconf CLK_TCK)
NCPU=$(nproc)
PIDS=()          # every live process this run started
LAST_PID=

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- processes

# spawn LOGFILE CMD...: start CMD in the background (stdin closed), remember its PID.
spawn() {
    local out=$1; shift
    "$@" >"$out" 2>&1 </dev/null &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

forget() {
    local keep=() p
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# descendants PID: all processes below PID (kamailio forks its workers from the main process)
descendants() {
    local p kids
    kids=$(ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' ')
    for p in $kids; do echo "$p"; descendants "$p"; done
}

# stop_pid PID: TERM, up to 5 s grace, then KILL; then KILL any descendant still alive.
stop_pid() {
    local pid=$1 kids i
    if ! kill -0 "$pid" 2>/dev/null; then wait "$pid" 2>/dev/null; forget "$pid"; return 0; fi
    kids=$(descendants "$pid")
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { log "pid $pid ignored TERM, sending KILL"; kill -KILL "$pid" 2>/dev/null; }
    wait "$pid" 2>/dev/null
    for i in $kids; do kill -0 "$i" 2>/dev/null && kill -KILL "$i" 2>/dev/null; done
    forget "$pid"
    return 0
}

# EXIT_HOOKS: functions stop_everything runs after the processes are gone (e.g. dropping the
# bench's PostgreSQL databases)
EXIT_HOOKS=()
stop_everything() {
    local i h
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[$i]}"; done
    PIDS=()
    for h in ${EXIT_HOOKS[@]+"${EXIT_HOOKS[@]}"}; do "$h"; done
}

install_trap() {
    trap 'stop_everything' EXIT
    trap 'log "interrupted"; stop_everything; exit 130' INT TERM
}

# ---------------------------------------------------------------- environment

# ensure_packages: install the Debian packages the bench needs when a tool is missing.
ensure_packages() {
    local missing=()
    command -v sipp >/dev/null || missing+=(sip-tester)
    command -v kamailio >/dev/null || missing+=(kamailio)
    command -v sox >/dev/null || missing+=(sox)
    command -v rtpengine >/dev/null || missing+=(rtpengine-daemon)
    command -v psql >/dev/null || missing+=(postgresql-client)
    command -v cc >/dev/null || missing+=(gcc libc6-dev)
    command -v ss >/dev/null || missing+=(iproute2)
    command -v ps >/dev/null || missing+=(procps)
    command -v python3 >/dev/null || missing+=(python3)
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    [ "$(id -u)" = 0 ] || die "need root to apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2 \
        || die "apt-get install ${missing[*]} failed"
}

# build_helpers DIR: compile the C helpers (never committed as binaries) into DIR.
build_helpers() {
    local d=$1
    mkdir -p "$d"
    cc -O2 -shared -fPIC -o "$d/fineclock.so" "$LIBDIR/fineclock.c" -ldl || die "cannot build fineclock.so"
    cc -O2 -Wall -o "$d/rtpload" "$LIBDIR/rtpload.c" -lm || die "cannot build rtpload"
    FINECLOCK_SO=$d/fineclock.so
    RTPLOAD=$d/rtpload
}

# free_ports N: N distinct loopback ports free for both UDP and TCP right now, below the
# kernel's ephemeral range when possible (so nothing grabs them as a source port meanwhile).
free_ports() {
    python3 - "$1" <<'PY'
import random, socket, sys
n = int(sys.argv[1]); got = []
lo, hi = 10000, 15999
cands = list(range(lo, hi)); random.shuffle(cands)
for p in cands:
    ok = True
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            ok = False
        finally:
            s.close()
        if not ok:
            break
    if ok:
        got.append(p)
        if len(got) == n:
            break
print(" ".join(map(str, got)))
PY
}

udp_port_busy() { ss -Hlun "sport = :$1" 2>/dev/null | grep -q .; }

# wait_udp PORT PID NAME: until PORT is bound (max 10 s); dies if PID exited.
wait_udp() {
    local i
    for i in $(seq 100); do
        udp_port_busy "$1" && { kill -0 "$2" 2>/dev/null || die "$3 (pid $2) exited"; return 0; }
        kill -0 "$2" 2>/dev/null || die "$3 (pid $2) exited before binding udp/$1"
        sleep 0.1
    done
    die "$3 did not bind udp/$1 within 10 s"
}

# ---------------------------------------------------------------- accounting

# cpu_ticks PID: utime+stime (clock ticks) of PID and its descendants, all threads.
# (The kernel keeps utime+stime equal to the exact runtime; only the split is sampled.)
cpu_ticks() {
    local t=0 q v
    for q in "$1" $(descendants "$1"); do
        v=$(awk '{print $14 + $15}' "/proc/$q/stat" 2>/dev/null) || continue
        t=$((t + ${v:-0}))
    done
    echo "$t"
}

# mem_kb PID: "RSS_KB PSS_KB" summed over PID and its descendants.  PSS splits shared pages
# (kamailio's shm) between the processes mapping them, so sums are not double-counted.
mem_kb() {
    local rss=0 pss=0 q a b
    for q in "$1" $(descendants "$1"); do
        a=$(awk '/^VmRSS:/{print $2}' "/proc/$q/status" 2>/dev/null)
        b=$(awk '/^Pss:/{print $2}' "/proc/$q/smaps_rollup" 2>/dev/null)
        rss=$((rss + ${a:-0})); pss=$((pss + ${b:-0}))
    done
    echo "$rss $pss"
}

# machine_ticks: "busy_ticks total_ticks" from the idle counter (exact on NOHZ; the
# user/system fields are tick-sampled and overstate processes that wake on ticks, like SIPp)
machine_ticks() {
    awk -v hz="$CLK_TCK" -v n="$NCPU" -v up="$(cut -d' ' -f1 /proc/uptime)" \
        '/^cpu /{t = up * hz * n; printf "%d %d\n", t - ($5 + $6), t}' /proc/stat
}

# busy_pct_over SECONDS: whole-machine busy % over the next SECONDS
busy_pct_over() {
    local a b
    a=$(machine_ticks); sleep "$1"; b=$(machine_ticks)
    echo "$a $b" | awk '{ d = $4 - $2; printf "%d\n", (d > 0) ? 100 * ($3 - $1) / d : 0 }'
}

# quiet_gate: before a measurement, read how busy other work keeps the machine (3 s) and wait
# (at most QUIET_MAX_WAIT_S, default 0 = just record it) until it is no more than
# QUIET_BUSY_PCT (20) %: with 2 cores a compiler or a fuzzer next to the bench halves its
# figures (run.sh raises the bench's priority instead, see BENCH_NICE).  QUIET_GATE=0 skips it.
# Adds the time waited to GATE_WAITED_S (searches do not count it against their budget) and
# writes the last reading to GATE_BUSY_PCT.
GATE_WAITED_S=0
quiet_gate() {
    [ "${QUIET_GATE:-1}" = 1 ] || { GATE_BUSY_PCT=-1; return 0; }
    local t0 b
    t0=$(date +%s)
    while :; do
        b=$(busy_pct_over 3)
        GATE_BUSY_PCT=$b
        [ "$b" -le "${QUIET_BUSY_PCT:-20}" ] && break
        if [ $(( $(date +%s) - t0 )) -ge "${QUIET_MAX_WAIT_S:-0}" ]; then
            log "machine ${b}% busy with other work: measuring anyway"
            break
        fi
        log "machine ${b}% busy with other work: waiting"
        sleep 7
    done
    GATE_WAITED_S=$(( GATE_WAITED_S + $(date +%s) - t0 ))
}

# udp_rcvbuf_errors: kernel-wide UDP RcvbufErrors (receive drops for a full socket buffer)
udp_rcvbuf_errors() {
    awk '/^Udp:/{ if (!h) { for (i = 1; i <= NF; i++) c[$i] = i; h = 1 } else print $c["RcvbufErrors"] }' /proc/net/snmp
}

# kv FILE KEY: value of KEY in a file of key=value words
kv() { tr ' ' '\n' <"$1" | sed -n "s/^$2=//p" | tail -1; }

# ---------------------------------------------------------------- SIPp

# Flags every SIPp gets.  Why: -buff_size (the 64 KiB default drops bursts), the loop caps
# (defaults bound the work per event-loop pass), -nostdin (no terminal here).
SIPP_FLAGS=(-i 127.0.0.1 -mi 127.0.0.1 -nostdin -buff_size 4194304
            -max_recv_loops 100000 -max_sched_loops 100000)

# sipp_bg DIR LOG SECONDS ARGS...: SIPp under `timeout` in DIR, with the fine clock.
sipp_bg() {
    local dir=$1 logf=$2 secs=$3; shift 3
    mkdir -p "$dir"
    ( cd "$dir" && exec env LD_PRELOAD="${FINECLOCK_SO:-}" timeout -k 3 "$secs" sipp "$@" "${SIPP_FLAGS[@]}" ) \
        >"$logf" 2>&1 </dev/null &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# seat_up DIR PORT RECV_TIMEOUT_MS SECONDS [args]: the SIPp seat (UAS) answering on PORT.
seat_up() {
    local dir=$1 port=$2 rto=$3 secs=$4; shift 4
    sipp_bg "$dir" "$dir/seat.log" "$secs" -sf "$SCN/seat.xml" -p "$port" \
        -recv_timeout "$rto" -trace_err "$@"
    SEAT_PID=$LAST_PID
    wait_udp "$port" "$SEAT_PID" "SIPp seat"
}

# register_seats DIR SERVER_ADDR SEAT_PORT CSV [SCENARIO]: one digest-authenticated REGISTER
# per line of the injection file CSV ("user;password"), Contact = sip:user@127.0.0.1:SEAT_PORT
# (SCENARIO seat_unregister.xml: remove every binding of each seat instead).
register_seats() {
    local dir=$1 server=$2 seat_port=$3 csv=$4 scn=${5:-seat_register.xml} n port
    n=$(($(wc -l <"$csv") - 1))
    port=$(free_ports 1)
    sipp_bg "$dir" "$dir/${scn%.xml}.log" "$(( n / ${REGISTER_RATE:-500} + 45 ))" "$server" -sf "$SCN/$scn" -inf "$csv" \
        -key seat_hostport "127.0.0.1:$seat_port" -p "$port" -m "$n" -r "${REGISTER_RATE:-500}" -rp 1000 -l 200 \
        -timeout "$(( n / ${REGISTER_RATE:-500} + 30 ))s" -trace_err -trace_stat -stf "${scn%.xml}_stat.csv"
    local p=$LAST_PID
    wait "$p"; local rc=$?
    forget "$p"
    [ "$rc" = 0 ] || die "$scn of $n seat(s) failed (rc $rc, see $dir/${scn%.xml}.log and $dir/*errors*)"
}

# carrier_run DIR TARGET NUMBER RATE CALLS HOLD_MS [args]: a bounded SIPp UAC; writes
# DIR/summary (key=value) from its statistics and response-time files.
carrier_run() {
    local dir=$1 target=$2 number=$3 rate=$4 calls=$5 hold=$6; shift 6
    local limit secs rc rtt
    mkdir -p "$dir"
    # room for 3x the expected concurrency before SIPp throttles itself (-l)
    limit=$(( rate * (hold + 2000) / 1000 * 3 + 200 ))
    secs=$(( calls / rate + hold / 1000 + 30 ))
    sipp_bg "$dir" "$dir/carrier.log" "$((secs + 15))" "$target" -sf "$SCN/carrier.xml" \
        -s "$number" -p "$(free_ports 1)" -r "$rate" -rp 1000 -m "$calls" -l "$limit" -d "$hold" \
        -timeout "${secs}s" -trace_stat -stf stat.csv -fd 1 -trace_rtt -rtt_freq 200 -trace_err \
        -key media_port_sdp "${CARRIER_MEDIA_PORT:-40000}" "$@"
    local p=$LAST_PID
    wait "$p"; rc=$?
    forget "$p"
    rtt=$(ls "$dir"/carrier_*_rtt.csv 2>/dev/null | head -1)
    python3 "$LIBDIR/sippstats.py" "$dir/stat.csv" "${rtt:-/dev/null}" "$rate" "$calls" >"$dir/summary" \
        || echo "target_cps=$rate calls=$calls ok=0 failed=$calls retrans=0 achieved_cps=0" >"$dir/summary"
    echo "sipp_rc=$rc" >>"$dir/summary"
}

# step_passed SUMMARY CALLS: every call completed, none failed, no SIP retransmission
# (so no message waited T1 = 500 ms) and SIPp really placed >= 95 % of the target rate
# (a CPU-starved SIPp silently falls behind instead of failing).
step_passed() {
    local s=$1 n=$2
    [ "$(kv "$s" ok)" = "$n" ] || return 1
    [ "$(kv "$s" failed)" = 0 ] || return 1
    [ "${STRICT_RETRANS:-1}" = 1 ] && { [ "$(kv "$s" retrans)" = 0 ] || return 1; }
    awk -v a="$(kv "$s" achieved_cps)" -v t="$(kv "$s" target_cps)" 'BEGIN { exit !(a + 0 >= 0.95 * t) }'
}

# ---------------------------------------------------------------- one load step

# measured_step NAME DIR RATE CALLS HOLD_MS: SERVER_PID, TARGET, NUMBER set by the caller's
# server_up; runs the carrier, accounts server CPU, machine busy time and UDP drops.
measured_step() {
    local dir=$2 rate=$3 calls=$4 hold=$5 c0 c1 m0 m1 d0 d1
    c0=$(cpu_ticks "$SERVER_PID"); m0=$(machine_ticks); d0=$(udp_rcvbuf_errors)
    carrier_run "$dir" "$TARGET" "$NUMBER" "$rate" "$calls" "$hold"
    c1=$(cpu_ticks "$SERVER_PID"); m1=$(machine_ticks); d1=$(udp_rcvbuf_errors)
    awk -v a="$c0" -v b="$c1" -v n="$calls" -v hz="$CLK_TCK" -v m0="$m0" -v m1="$m1" -v d="$((d1 - d0))" 'BEGIN {
        split(m0, x, " "); split(m1, y, " ");
        printf "server_cpu_s=%.2f server_cpu_us_per_call=%.1f machine_busy_pct=%.0f udp_rcvbuf_drops=%d\n",
            (b - a) / hz, (b - a) / hz * 1e6 / n, 100 * (y[1] - x[1]) / ((y[2] - x[2]) > 0 ? (y[2] - x[2]) : 1), d }' \
        >>"$dir/summary"
}

# search_cps NAME START CAP: highest rate whose step passes.  Needs server_up DIR /
# server_down from the caller (a fresh server and seat per step: no state leaks between
# steps).  Doubles from START until a step fails, then bisects to RES (relative).
# Bounded: at most MAX_STEPS steps and BUDGET_S seconds.  Sets MAX_CPS, BEST_DIR, FIRST_DIR.
search_cps() {
    local name=$1 rate=$2 cap=$3 lo=0 hi=0 n=0 calls dir verdict t0 gap
    local secs=${STEP_SECS:-6} hold=${HOLD_MS:-1000}
    t0=$(date +%s); BEST_DIR=; FIRST_DIR=; GATE_WAITED_S=0
    while :; do
        n=$((n + 1))
        calls=$((rate * secs)); [ "$calls" -lt 300 ] && calls=300
        dir=$RUN_DIR/$name/step$(printf %02d "$n")_cps$rate
        mkdir -p "$dir"
        quiet_gate
        server_up "$dir"
        measured_step "$name" "$dir" "$rate" "$calls" "$hold"
        echo "busy_before_pct=$GATE_BUSY_PCT" >>"$dir/summary"
        server_down "$dir"
        if step_passed "$dir/summary" "$calls"; then verdict=PASS; lo=$rate; BEST_DIR=$dir
        else verdict=FAIL; hi=$rate; fi
        echo "$verdict" >"$dir/verdict"
        log "$name step $n: $rate cps x $calls calls -> $verdict | $(tr '\n' ' ' <"$dir/summary")"
        [ "$n" = 1 ] && FIRST_DIR=$dir
        if [ "$hi" = 0 ]; then
            [ "$rate" -ge "$cap" ] && break
            rate=$((rate * 2)); [ "$rate" -gt "$cap" ] && rate=$cap
        else
            gap=$(awk -v l="$lo" -v r="${RES:-0.05}" 'BEGIN { g = int(l * r); print (g < 50) ? 50 : g }')
            [ $((hi - lo)) -le "$gap" ] && break
            rate=$(( (lo + hi) / 2 / 50 * 50 ))
            [ "$rate" -le "$lo" ] && break
        fi
        [ "$n" -ge "${MAX_STEPS:-14}" ] && { log "$name: step cap reached"; break; }
        [ $(( $(date +%s) - t0 - GATE_WAITED_S )) -ge "${BUDGET_S:-240}" ] && { log "$name: time budget used up"; break; }
    done
    MAX_CPS=$lo
}
