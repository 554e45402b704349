# bench/lib/hold.sh — tests with calls held up: memory per established call, and concurrent
# G.711 calls relayed without loss.  Source after common.sh; uses the caller's
# server_up / server_down and SERVER_PID, TARGET, NUMBER.

# carrier_hold DIR SCENARIO N RATE HOLD_MS [sipp args]: start a carrier placing N calls held
# HOLD_MS each (background; sets CARRIER_PID).
carrier_hold() {
    local dir=$1 scn=$2 n=$3 rate=$4 hold=$5; shift 5
    local secs=$(( n / rate + hold / 1000 + 40 ))
    sipp_bg "$dir" "$dir/carrier.log" "$((secs + 15))" "$TARGET" -sf "$SCN/$scn" -s "$NUMBER" \
        -p "$(free_ports 1)" -r "$rate" -rp 1000 -m "$n" -l "$((n + 10))" -d "$hold" \
        -timeout "${secs}s" -trace_stat -stf stat.csv -fd 1 -trace_rtt -rtt_freq 100 -trace_err "$@"
    CARRIER_PID=$LAST_PID
}

carrier_summary() {   # carrier_summary DIR RATE N
    local rtt
    wait "$CARRIER_PID"; echo "sipp_rc=$?" >"$1/sipp_rc"
    forget "$CARRIER_PID"
    rtt=$(ls "$1"/carrier*_rtt.csv 2>/dev/null | head -1)
    python3 "$LIBDIR/sippstats.py" "$1/stat.csv" "${rtt:-/dev/null}" "$2" "$3" >"$1/summary" 2>/dev/null \
        || echo "ok=0 failed=$3" >"$1/summary"
    cat "$1/sipp_rc" >>"$1/summary"
}

# current_calls DIR: SIPp's "CurrentCall" from the carrier's last statistics row
current_calls() {
    python3 - "$1/stat.csv" <<'PY' 2>/dev/null || echo 0
import sys
rows = [l.strip().split(";") for l in open(sys.argv[1], encoding="latin-1") if l.strip()]
h = rows[0]
print(int(float(dict(zip(h, rows[-1])).get("CurrentCall", 0) or 0)))
PY
}

# memory_step DIR N: idle memory of the freshly started server (seat registered), then N
# calls ramped at MEM_RATE and held MEM_HOLD_MS; memory is read once all N are up (and
# again 2 s later: the larger of the two counts).  Writes DIR/summary.
memory_step() {
    local dir=$1 n=$2 rate=${MEM_RATE:-500} hold=${MEM_HOLD_MS:-30000} idle busy1 busy2 t0 cur
    mkdir -p "$dir"
    quiet_gate
    server_up "$dir"
    sleep 1
    idle=$(mem_kb "$SERVER_PID")
    carrier_hold "$dir" carrier.xml "$n" "$rate" "$hold" -key media_port_sdp "${CARRIER_MEDIA_PORT:-40000}"
    t0=$(date +%s)
    # wait until the carrier reports all N calls up (bounded: ramp time + 15 s)
    while :; do
        sleep 1
        cur=$(current_calls "$dir")
        [ "$cur" -ge "$n" ] && break
        [ $(( $(date +%s) - t0 )) -gt $(( n / rate + 15 )) ] && break
    done
    sleep 1
    busy1=$(mem_kb "$SERVER_PID")
    sleep 2
    busy2=$(mem_kb "$SERVER_PID")
    cur=$(current_calls "$dir")
    carrier_summary "$dir" "$rate" "$n"
    server_down "$dir"
    awk -v n="$n" -v cur="$cur" -v i="$idle" -v a="$busy1" -v b="$busy2" 'BEGIN {
        split(i, I, " "); split(a, A, " "); split(b, B, " ");
        r = (A[1] > B[1]) ? A[1] : B[1]; p = (A[2] > B[2]) ? A[2] : B[2];
        printf "held_calls=%d concurrent_seen=%d idle_rss_kb=%d busy_rss_kb=%d idle_pss_kb=%d busy_pss_kb=%d rss_kb_per_call=%.2f pss_kb_per_call=%.2f\n",
            n, cur, I[1], r, I[2], p, (r - I[1]) / n, (p - I[2]) / n }' >>"$dir/summary"
}

# media_step DIR N: N calls with G.711 both ways (rtpload gen <-> relay <-> rtpload echo),
# ramped at N/RAMP_S calls/s, held MEDIA_HOLD_MS.  Writes DIR/summary.  The relay's CPU is
# RELAY_PID's when server_up sets it (rtpengine beside Kamailio), else SERVER_PID's (smartdesk
# relays in-process); the signalling server's CPU is SERVER_PID's.  A server_down that leaves
# DIR/relay.txt (relay_errors=N ...) adds it to the summary.
media_step() {
    local dir=$1 n=$2 hold=${MEDIA_HOLD_MS:-12000} rate gen_pid echo_pid ctl gp ep c0 c1 k0 k1 m0 m1 secs relay
    mkdir -p "$dir"
    rate=$(( n / ${RAMP_S:-4} )); [ "$rate" -lt 20 ] && rate=20; [ "$rate" -gt 600 ] && rate=600
    secs=$(( n / rate + hold / 1000 + 60 ))
    read -r gp ep ctl < <(free_ports 3)
    quiet_gate
    echo "busy_before_pct=$GATE_BUSY_PCT" >"$dir/gate"
    SEAT_MEDIA_PORT=$ep server_up "$dir"
    spawn "$dir/echo.log" "$RTPLOAD" echo "$ep" "$secs" "$dir/echo.txt"; echo_pid=$LAST_PID
    spawn "$dir/gen.log" "$RTPLOAD" gen "$gp" "$ctl" "$secs" "$dir/gen.txt"; gen_pid=$LAST_PID
    wait_udp "$ep" "$echo_pid" "rtpload echo"; wait_udp "$gp" "$gen_pid" "rtpload gen"
    relay=${RELAY_PID:-$SERVER_PID}
    c0=$(cpu_ticks "$relay"); k0=$(cpu_ticks "$SERVER_PID"); m0=$(machine_ticks)
    carrier_hold "$dir" carrier_media.xml "$n" "$rate" "$hold" -3pcc "127.0.0.1:$ctl" \
        -key media_port_sdp "$gp" -key stream_ms "$((hold - 500))"
    carrier_summary "$dir" "$rate" "$n"
    c1=$(cpu_ticks "$relay"); k1=$(cpu_ticks "$SERVER_PID"); m1=$(machine_ticks)
    sleep 0.5
    stop_pid "$gen_pid"; stop_pid "$echo_pid"
    rm -f "$dir/relay.txt"
    server_down "$dir"
    # a separate signalling server (Kamailio beside rtpengine): its CPU is reported apart and
    # added into the "relay + signalling" figure; smartdesk does both in one process
    if [ "$relay" = "$SERVER_PID" ]; then k0=0; k1=0; rm -f "$dir/sig"
    else echo "signalling_cpu_s=$(awk -v k="$((k1 - k0))" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", k / hz }')" >"$dir/sig"; fi
    cat "$dir/gen.txt" "$dir/echo.txt" "$dir/gate" "$dir/sig" "$dir/relay.txt" 2>/dev/null | tr '\n' ' ' >>"$dir/summary"
    echo >>"$dir/summary"
    local g e
    g=$dir/summary
    awk -v n="$n" -v hold="$hold" -v sent="$(kv "$g" gen_sent)" -v erx="$(kv "$g" echo_rx)" \
        -v echoed="$(kv "$g" echoed)" -v grx="$(kv "$g" gen_rx)" -v c="$((c1 - c0))" -v k="$((k1 - k0))" -v hz="$CLK_TCK" \
        -v m0="$m0" -v m1="$m1" 'BEGIN {
        split(m0, x, " "); split(m1, y, " ");
        fwd = sent - erx; ret = echoed - grx; relayed = erx + grx;
        printf "concurrent=%d nominal_pkts=%d lost_fwd=%d lost_ret=%d loss_pct=%.4f relayed_pkts=%d relay_cpu_s=%.2f relay_us_per_pkt=%.2f all_us_per_pkt=%.2f machine_busy_pct=%.0f\n",
            n, n * (hold - 500) / 20, fwd, ret, (sent + echoed) ? 100 * (fwd + ret) / (sent + echoed) : 100,
            relayed, c / hz, relayed ? c / hz * 1e6 / relayed : 0, relayed ? (c + k) / hz * 1e6 / relayed : 0, 100 * (y[1] - x[1]) / ((y[2] - x[2]) > 0 ? (y[2] - x[2]) : 1) }' >>"$g"
}

# media_passed SUMMARY N: all calls fine and signalling healthy (no SIP retransmission: no
# message waited T1 = 500 ms, as in the CPS runs; a relay that keeps every packet while call
# setup takes seconds does not pass), every packet arrived both ways, nothing dropped at our
# own sockets (that would be the harness losing, not the relay: still not a pass), and the
# generator really sent >= 95 % of the nominal packets.
media_passed() {
    local s=$1 n=$2
    [ "$(kv "$s" ok)" = "$n" ] || return 1
    [ "$(kv "$s" failed)" = 0 ] || return 1
    [ "${STRICT_RETRANS:-1}" = 1 ] && { [ "$(kv "$s" retrans)" = 0 ] || return 1; }
    [ "$(kv "$s" lost_fwd)" = 0 ] || return 1
    [ "$(kv "$s" lost_ret)" = 0 ] || return 1
    [ "$(kv "$s" gen_sock_drops)" = 0 ] || return 1
    [ "$(kv "$s" echo_sock_drops)" = 0 ] || return 1
    case $(kv "$s" relay_errors) in ''|0) ;; *) return 1 ;; esac   # rtpengine's own count
    [ "$(kv "$s" gen_streams)" = "$n" ] || return 1
    awk -v a="$(kv "$s" gen_sent)" -v b="$(kv "$s" nominal_pkts)" 'BEGIN { exit !(a + 0 >= 0.95 * b) }'
}

# search_media NAME START_N CAP_N: largest N passing media_step (double, then bisect to
# 10 %); bounded by MEDIA_MAX_STEPS and MEDIA_BUDGET_S.  Sets MEDIA_MAX, MEDIA_BEST_DIR.
search_media() {
    local name=$1 n=$2 cap=$3 lo=0 hi=0 k=0 dir verdict t0
    t0=$(date +%s); MEDIA_BEST_DIR=; GATE_WAITED_S=0
    while :; do
        k=$((k + 1))
        dir=$RUN_DIR/$name/step$(printf %02d "$k")_n$n
        SD_REGISTER_N=$(( n + 50 )) media_step "$dir" "$n"
        if media_passed "$dir/summary" "$n"; then verdict=PASS; lo=$n; MEDIA_BEST_DIR=$dir
        else verdict=FAIL; hi=$n; fi
        echo "$verdict" >"$dir/verdict"
        log "$name step $k: $n calls -> $verdict | $(tr '\n' ' ' <"$dir/summary")"
        if [ "$hi" = 0 ]; then
            [ "$n" -ge "$cap" ] && break
            n=$((n * 2)); [ "$n" -gt "$cap" ] && n=$cap
        else
            [ $((hi - lo)) -le $(( lo / 10 > 50 ? lo / 10 : 50 )) ] && break
            n=$(( (lo + hi) / 2 / 50 * 50 ))
            [ "$n" -le "$lo" ] && break
        fi
        [ "$k" -ge "${MEDIA_MAX_STEPS:-8}" ] && break
        [ $(( $(date +%s) - t0 - GATE_WAITED_S )) -ge "${MEDIA_BUDGET_S:-300}" ] && { log "$name: time budget used up"; break; }
    done
    MEDIA_MAX=$lo
}
