# bench/lib/kamailio.sh — the reference server: Kamailio (Debian) as stateful proxy +
# registrar in front of the SIPp seat.  Source after common.sh.
# Provides kam_up DIR / kam_down DIR (the server_up/server_down pair of search_cps).

KAM_CHILDREN=${KAM_CHILDREN:-4}
# tm keeps every INVITE and BYE transaction for wt_timer (5 s) after it ends: at 9k calls/s
# that is ~90k cells; with less shared memory the proxy fails with "out of mem" long before
# it runs out of CPU, which is not what this bench measures.
KAM_SHM_MB=${KAM_SHM_MB:-4096}
KAM_DEFS=()     # extra -A defines for one start (rtpengine.sh: WITH_RTPENGINE)

kam_up() {
    local dir=$1
    # ports are picked again at every start: other work on the machine may have taken one
    read -r KAM_PORT SEAT_PORT < <(free_ports 2)
    spawn "$dir/kamailio.log" kamailio -f "$BENCH_DIR/kamailio/kamailio.cfg" -DD -E \
        -n "$KAM_CHILDREN" -l "udp:127.0.0.1:$KAM_PORT" -m "$KAM_SHM_MB" -M 16 -Y "$dir" \
        -A "BENCH_NUMBER=\"$NATIONAL_NUMBER\"" -A "BENCH_SEAT=\"$SEAT_USER\"" \
        -A "BENCH_PASSWORD=\"$SEAT_PASSWORD\"" ${KAM_DEFS[@]+"${KAM_DEFS[@]}"}
    KAM_PID=$LAST_PID
    wait_udp "$KAM_PORT" "$KAM_PID" kamailio
    seat_up "$dir" "$SEAT_PORT" "$SEAT_RECV_TIMEOUT_MS" "${SEAT_LIFETIME_S:-900}" \
        -key media_port_sdp "${SEAT_MEDIA_PORT:-40002}"
    printf 'SEQUENTIAL\n%s;%s\n' "$SEAT_USER" "$SEAT_PASSWORD" >"$dir/seats.csv"
    register_seats "$dir" "127.0.0.1:$KAM_PORT" "$SEAT_PORT" "$dir/seats.csv"
    SERVER_PID=$KAM_PID
    TARGET=127.0.0.1:$KAM_PORT
    NUMBER=$NATIONAL_NUMBER
}

kam_down() {
    stop_pid "$SEAT_PID"
    stop_pid "$KAM_PID"
}
