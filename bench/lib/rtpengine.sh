# bench/lib/rtpengine.sh — the reference media relay: Kamailio (bench/kamailio/kamailio.cfg
# with -A WITH_RTPENGINE: rtpengine_offer/answer/delete) in front of the SIPp seat, and
# rtpengine (Debian rtpengine-daemon, userspace forwarding only: --table=-1, no kernel module)
# anchoring every call's media.  Source after common.sh and kamailio.sh.
# Provides kamrtpe_up DIR / kamrtpe_down DIR (a server_up/server_down pair for media_step):
# SERVER_PID is Kamailio (signalling), RELAY_PID is rtpengine (the packets' CPU).

RTPE_THREADS=${RTPE_THREADS:-2}
# same range as smartdesk's relay (below the kernel's ephemeral range); the two never run at once
RTPE_PORT_MIN=${RTPE_PORT_MIN:-16000}
RTPE_PORT_MAX=${RTPE_PORT_MAX:-32765}

rtpe_up() {
    local dir=$1
    read -r RTPE_NG_PORT RTPE_CLI_PORT < <(free_ports 2)
    # --config-file=none: else it reads /etc/rtpengine/rtpengine.conf; --delete-delay=0: a
    # session's counters reach the totals at once; --timeout: no session outlives the run
    spawn "$dir/rtpengine.log" rtpengine --config-file=none --foreground --log-stderr \
        --log-level=4 --table=-1 --interface=127.0.0.1 \
        --listen-ng="127.0.0.1:$RTPE_NG_PORT" --listen-cli="127.0.0.1:$RTPE_CLI_PORT" \
        --port-min="$RTPE_PORT_MIN" --port-max="$RTPE_PORT_MAX" \
        --num-threads="$RTPE_THREADS" --delete-delay=0 --timeout=60
    RTPE_PID=$LAST_PID
    wait_udp "$RTPE_NG_PORT" "$RTPE_PID" rtpengine
}

# rtpe_totals: "relay_pkts=N relay_errors=N" from rtpengine's CLI (`list totals` counts the
# packets of finished sessions only: read it after the calls ended)
rtpe_totals() {
    python3 - "$RTPE_CLI_PORT" <<'PY' 2>/dev/null || echo "relay_pkts=-1 relay_errors=-1"
import re, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)
s.sendall(b"list totals\n")
d = b""
try:
    while True:
        x = s.recv(65536)
        if not x:
            break
        d += x
except socket.timeout:
    pass
t = d.decode(errors="replace")
g = lambda k: (re.search(re.escape(k) + r"\s*:\s*(\d+)", t) or [0, "-1"])[1]
print("relay_pkts=%s relay_errors=%s" % (g("Total relayed packets (userspace)"),
                                         g("Total relayed packet errors (userspace)")))
PY
}

kamrtpe_up() {
    local dir=$1
    rtpe_up "$dir"
    KAM_DEFS=(-A WITH_RTPENGINE -A "RTPE_SOCK=\"udp:127.0.0.1:$RTPE_NG_PORT\"")
    kam_up "$dir"
    KAM_DEFS=()
    RELAY_PID=$RTPE_PID
}

kamrtpe_down() {
    local dir=$1
    kam_down "$dir"
    rtpe_totals >"$dir/relay.txt"
    stop_pid "$RTPE_PID"
    RELAY_PID=
}
