# bench/lib/smartdesk.sh — smartdesk under test: carrier -> smartdesk (B2BUA, ledger on) -> seat.
# Source after common.sh.  sd_prepare ROOT makes a fresh data dir, configuration, SIP profiles
# and ledger content through the real CLI; sd_up DIR / sd_down DIR are the server_up /
# server_down pair of search_cps (the daemon restarts per step; the ledger stays).

SMARTDESK_BIN=${SMARTDESK_BIN:-}
# An instant inside service hours (weekday 09:00-19:00 Asia/Tokyo, not a holiday): the
# daemon's clock starts there (`serve --clock`) so every call is routed to a seat.
SD_CLOCK=${SD_CLOCK:-2026-11-25T10:00:00+09:00}
SD_CONTRACT_START=${SD_CONTRACT_START:-2026-11-01}
# Seats that log in.  smartdesk never offers a seat two calls at once, so the pool must hold
# the peak number of calls in progress (rate x (hold + setup/teardown)); all seats bind the
# same SIPp seat (one Contact host:port, user part = seat name).  Kamailio has no such rule:
# it rings its one seat for every call.
# The call path scans every registration for each call, so the pool size is also a cost: 200
# is a large call centre's worth of operators and 10x the calls in progress at 1000 calls/s
# with the bench's 20 ms hold.
SD_SEATS=${SD_SEATS:-200}
SD_LOG_LEVEL=${SD_LOG_LEVEL:-warn}
# RTP port range for the relay; below the kernel's ephemeral range (32768+) so no outgoing
# socket of another process can hold one of them.  4 ports per call (2 legs x RTP/RTCP).
SD_RTP_MIN=${SD_RTP_MIN:-16000}
SD_RTP_MAX=${SD_RTP_MAX:-32765}

# Ledger of the installs sd_prepare makes: sqlite (a file in the install's data dir) or
# postgres (a private database on SD_PG_SERVER, created by sd_prepare and dropped when the run
# ends: sd_pg_drop is in EXIT_HOOKS).
SD_LEDGER=${SD_LEDGER:-sqlite}
SD_PG_SERVER=${SD_PG_SERVER:-postgres://postgres@127.0.0.1:5432}
SD_PG_DBS=()

sd() { "$SMARTDESK_BIN" --config "$SD_ROOT/smartdesk.toml" "$@"; }

# sd_pg_create: a fresh database for one install; prints its URL
sd_pg_create() {
    local db
    db=smartdesk_bench_$(date +%Y%m%d%H%M%S)_$$_${#SD_PG_DBS[@]}
    psql "$SD_PG_SERVER/postgres" -v ON_ERROR_STOP=1 -qAtc "CREATE DATABASE $db" >/dev/null \
        || die "cannot create database $db on $SD_PG_SERVER (is PostgreSQL running?)"
    SD_PG_DBS+=("$db")
    SD_LEDGER_URL=$SD_PG_SERVER/$db
}

sd_pg_drop() {
    local db
    for db in ${SD_PG_DBS[@]+"${SD_PG_DBS[@]}"}; do
        psql "$SD_PG_SERVER/postgres" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 \
            || log "could not drop database $db"
    done
    SD_PG_DBS=()
}
EXIT_HOOKS+=(sd_pg_drop)

# sd_prepare ROOT [SEATS]: a fresh, self-contained smartdesk installation under ROOT with
# SEATS (default SD_SEATS) seats op1..opN, all logged in at every sd_up.
sd_prepare() {
    SD_ROOT=$1
    SD_SEAT_PORT=
    local nseats=${2:-$SD_SEATS}
    rm -rf "$SD_ROOT"
    SD_LEDGER_URL=
    case $SD_LEDGER in
        sqlite) ;;
        postgres) sd_pg_create ;;
        *) die "SD_LEDGER must be sqlite or postgres, not $SD_LEDGER" ;;
    esac
    mkdir -p "$SD_ROOT/data" "$SD_ROOT/sip-profiles" "$SD_ROOT/prompts"
    cat >"$SD_ROOT/smartdesk.toml" <<EOF
# written by bench/run.sh
[daemon]
data_dir = "$SD_ROOT/data"

[ledger]
url = "$SD_LEDGER_URL"

[sip]
# sd_up passes --sip-listen / --http-listen with ports free at that moment
listen = "127.0.0.1:5060"
udp = true
tcp = false
profiles_dir = "$SD_ROOT/sip-profiles"

[media]
rtp_port_min = $SD_RTP_MIN
rtp_port_max = $SD_RTP_MAX
media_timeout_s = 60
prompts_dir = "$SD_ROOT/prompts"

[web]
listen = "127.0.0.1:8080"

[acd]
# Bench seats answer back to back, like Kamailio's: no wrap-up between calls.
wrap_up_max_s = 0

[security]
# Like the Kamailio config (no pike module): the bench measures the call path, not the
# flood limits, and SIPp drives thousands of requests/s from one loopback address.
request_rate = 0.0
trunk_rate = 0.0
register_rate = 0.0

[log]
level = "$SD_LOG_LEVEL"
EOF
    cat >"$SD_ROOT/sip-profiles/carrier.toml" <<'EOF'
# the bench carrier: SIPp on loopback
[[trunk]]
name = "bench-carrier"
sources = ["127.0.0.1/32"]
number_format = "national"
transports = ["udp"]
codecs = ["PCMU", "PCMA"]
EOF
    cat >"$SD_ROOT/sip-profiles/seats.toml" <<'EOF'
[seats]
realm = "smartdesk"
min_expires = 60
max_expires = 3600
default_expires = 3600
codecs = ["PCMU", "PCMA"]
EOF
    # shipped prompts, if the project has any, so announcements behave as in production
    [ -d "$REPO_DIR/prompts" ] && cp -a "$REPO_DIR/prompts/." "$SD_ROOT/prompts/"
    sd check-config >"$SD_ROOT/check-config.txt" 2>&1 || { cat "$SD_ROOT/check-config.txt" >&2; die "smartdesk check-config failed"; }
    local id i
    id=$(sd contractor add --name 'ベンチマーク株式会社' --greeting 'はい、ベンチマーク株式会社でございます' \
        --plan SD100 --start "$SD_CONTRACT_START") || die "contractor add failed"
    sd number assign "$id" "$NATIONAL_NUMBER" >/dev/null || die "number assign failed"
    log "smartdesk: creating $nseats seats with the CLI"
    echo 'SEQUENTIAL' >"$SD_ROOT/seats.csv"
    for i in $(seq 1 "$nseats"); do
        sd seat add "op$i" --password "$SEAT_PASSWORD-$i" >/dev/null || die "seat add op$i failed"
        echo "op$i;$SEAT_PASSWORD-$i" >>"$SD_ROOT/seats.csv"
    done
    local open
    open=$(sd hours --at "$SD_CLOCK" 2>&1 | head -1)
    case $open in *OPEN*) ;; *) die "SD_CLOCK $SD_CLOCK is not inside service hours: $open" ;; esac
    SD_CONTRACTOR=$id
}

# sd_up DIR: the daemon on fresh loopback ports, the SIPp seat, and SD_REGISTER_N (default:
# all) seats logged in.
sd_up() {
    local dir=$1 n
    # the daemon's ports are picked again at every start (other work on the machine may have
    # taken one); the seat keeps its port like a desk phone, because the registrar keeps every
    # binding until it expires: if that port is gone, the seats log out everywhere first
    read -r SD_PORT SD_WEB_PORT < <(free_ports 2)
    local moved=0
    if [ -z "${SD_SEAT_PORT:-}" ]; then SD_SEAT_PORT=$(free_ports 1)
    elif udp_port_busy "$SD_SEAT_PORT"; then SD_SEAT_PORT=$(free_ports 1); moved=1; fi
    SEAT_PORT=$SD_SEAT_PORT
    spawn "$dir/smartdesk.log" "$SMARTDESK_BIN" --config "$SD_ROOT/smartdesk.toml" serve \
        --sip-listen "127.0.0.1:$SD_PORT" --http-listen "127.0.0.1:$SD_WEB_PORT" --clock "$SD_CLOCK"
    SD_PID=$LAST_PID
    wait_udp "$SD_PORT" "$SD_PID" smartdesk
    seat_up "$dir" "$SEAT_PORT" "$SEAT_RECV_TIMEOUT_MS" "${SEAT_LIFETIME_S:-900}" \
        -key media_port_sdp "${SEAT_MEDIA_PORT:-40002}"
    n=$(( $(wc -l <"$SD_ROOT/seats.csv") - 1 ))
    [ -n "${SD_REGISTER_N:-}" ] && [ "$SD_REGISTER_N" -lt "$n" ] && n=$SD_REGISTER_N
    head -n "$((n + 1))" "$SD_ROOT/seats.csv" >"$dir/seats.csv"
    if [ "$moved" = 1 ]; then
        log "seat port moved to $SEAT_PORT: logging the seats out of their old bindings"
        register_seats "$dir" "127.0.0.1:$SD_PORT" "$SEAT_PORT" "$SD_ROOT/seats.csv" seat_unregister.xml
    fi
    register_seats "$dir" "127.0.0.1:$SD_PORT" "$SEAT_PORT" "$dir/seats.csv"
    SERVER_PID=$SD_PID
    TARGET=127.0.0.1:$SD_PORT
    NUMBER=$NATIONAL_NUMBER
}

sd_down() {
    stop_pid "$SEAT_PID"
    stop_pid "$SD_PID"
}

# sd_ledger_calls: number of call rows in the ledger (every answered bench call must be there)
sd_ledger_calls() {
    sd calls --month "${SD_CLOCK:0:7}" --json 2>/dev/null | python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
except ValueError:
    print(-1); sys.exit()
if isinstance(d, dict):
    d = d.get("calls", d.get("rows", []))
print(len(d))'
}
