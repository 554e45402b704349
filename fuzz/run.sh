#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each, one after the other, and fails
# if any of them finds a crash, panic, timeout or out-of-memory. tests/run.sh (CI) runs it for
# 10 s per target; maintainers run longer campaigns.
#
#   fuzz/run.sh [SECONDS] [TARGET...]        default: 60 seconds, all targets
#   fuzz/run.sh 0                            build only
#   FUZZ_PROFILE=dev fuzz/run.sh 10          unoptimised build (CI: compiles in about a third
#                                            of the time; fewer runs per second)
#
# Works on the stable toolchain: cargo-fuzz needs -Zsanitizer, which RUSTC_BOOTSTRAP=1 unlocks
# (see fuzz/README.md). Needs `cargo install cargo-fuzz` and a C++ compiler (libFuzzer is built
# from source by libfuzzer-sys).
#
# Corpora live in fuzz/corpus/<target>/ (ignored by git) and are topped up on every run from
# the committed seeds: fuzz/seeds/, the RFC 4475 messages in tests/sip-torture/ and the SDP
# samples in src/sip/sdp_golden/. Crash inputs land in fuzz/artifacts/<target>/, logs in
# fuzz/logs/<target>.log.
set -euo pipefail

SECONDS_PER_TARGET="${1:-60}"
shift || true
ALL_TARGETS=(message stream sdp auth_header registrar endpoint rtp)
if [ "$#" -gt 0 ]; then
    TARGETS=("$@")
else
    TARGETS=("${ALL_TARGETS[@]}")
fi
case "$SECONDS_PER_TARGET" in
    '' | *[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac

FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$FUZZ_DIR")"
cd "$REPO"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2
    exit 2
fi

# `op` byte, 16-bit big-endian length, payload: one record of the endpoint target's script.
record() {
    local op="$1" file="$2" len
    len=$(stat -c %s "$file")
    if [ "$len" -gt 65535 ]; then return; fi
    printf "\\x$(printf %02x "$op")\\x$(printf %02x $((len >> 8)))\\x$(printf %02x $((len & 255)))"
    cat "$file"
}

seed() {
    local target="$1" corpus="$FUZZ_DIR/corpus/$1" f name
    mkdir -p "$corpus"
    if [ -d "$FUZZ_DIR/seeds/$target" ]; then
        find "$FUZZ_DIR/seeds/$target" -maxdepth 1 -type f ! -name '.*' -exec cp -n {} "$corpus/" \;
    fi
    case "$target" in
        message | stream)
            cp -n "$REPO"/tests/sip-torture/*.dat "$corpus/" ;;
        sdp)
            cp -n "$REPO"/src/sip/sdp_golden/*.sdp "$corpus/" ;;
        endpoint)
            # Each torture message from the carrier over UDP, from the seat over UDP, and from
            # the carrier over TCP (op 3, selector byte 0), each followed by a minute of timers.
            for f in "$REPO"/tests/sip-torture/*.dat; do
                name=$(basename "$f" .dat)
                { record 0 "$f"; printf '\x04\x00\x03\x00\x3c\x01'; } >"$corpus/udp-carrier-$name"
                { record 1 "$f"; printf '\x04\x00\x03\x00\x3c\x01'; } >"$corpus/udp-seat-$name"
                { printf '\x00' | cat - "$f" >"$corpus/.tmp"; record 3 "$corpus/.tmp"; } \
                    >"$corpus/tcp-carrier-$name"
            done
            rm -f "$corpus/.tmp" ;;
    esac
}

dict_for() {
    case "$1" in
        message | stream | endpoint) echo "-dict=$FUZZ_DIR/sip.dict" ;;
        sdp) echo "-dict=$FUZZ_DIR/sdp.dict" ;;
        *) ;;
    esac
}

max_len_for() {
    case "$1" in
        message | stream | endpoint) echo 65536 ;;
        *) echo 8192 ;;
    esac
}

case "${FUZZ_PROFILE:-release}" in
    release) PROFILE_FLAG=-O ;;
    dev) PROFILE_FLAG=--dev ;;
    *) echo "FUZZ_PROFILE must be release or dev" >&2; exit 2 ;;
esac
echo "building all targets (${FUZZ_PROFILE:-release}, debug assertions, ASan)"
cargo fuzz build "$PROFILE_FLAG" >/dev/null
if [ "$SECONDS_PER_TARGET" = 0 ]; then
    exit 0
fi

mkdir -p "$FUZZ_DIR/logs"
failed=()
for t in "${TARGETS[@]}"; do
    seed "$t"
    log="$FUZZ_DIR/logs/$t.log"
    echo "== $t: ${SECONDS_PER_TARGET}s, corpus $(find "$FUZZ_DIR/corpus/$t" -type f | wc -l) files"
    # -timeout: one input taking over 10 s is a hang. -malloc_limit_mb: inputs are at most
    # 64 KiB, so a single allocation over 256 MiB means input-controlled growth.
    # shellcheck disable=SC2046
    if cargo fuzz run "$PROFILE_FLAG" "$t" "$FUZZ_DIR/corpus/$t" -- \
        -max_total_time="$SECONDS_PER_TARGET" -max_len="$(max_len_for "$t")" \
        -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=256 -print_final_stats=1 \
        $(dict_for "$t") >"$log" 2>&1; then
        status=ok
    else
        status=FAILED
        failed+=("$t")
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    echo "   $status: ${runs:-?} runs, ${rate:-?} exec/s (log: $log)"
    if [ "$status" = FAILED ]; then
        grep -E 'panicked|ERROR: libFuzzer|ERROR: AddressSanitizer|SUMMARY|Test unit written' "$log" | head -n 8 | sed 's/^/   /'
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "crashes in: ${failed[*]} (inputs in fuzz/artifacts/, replay with: RUSTC_BOOTSTRAP=1 cargo fuzz run $PROFILE_FLAG <target> <file>)"
    exit 1
fi
echo "no crashes"
