#!/usr/bin/env bash
# Instructions per call of the sans-IO SIP core (message, transactions, registrar, B2BUA, ACD),
# counted by callgrind: deterministic, so it means something on a busy machine where wall-clock
# figures do not. See bench/README.md ("Instruction counts").
#
#   bench/core_instr.sh                  # 2000 calls, 200 seats
#   CALLS=4000 SEATS=1000 bench/core_instr.sh
#   NO_BUILD=1 bench/core_instr.sh       # reuse target/release/examples/core_instr
#
# Only the Endpoint methods the daemon edge calls are counted (--toggle-collect), so the
# harness's own message building and parsing is left out. Prints instructions per call and
# keeps the callgrind profile (callgrind_annotate it for the hot spots).
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS=${CALLS:-2000}
SEATS=${SEATS:-200}
CPS=${CPS:-1000}
HOLD_MS=${HOLD_MS:-20}
OUT=${OUT:-/tmp/smartdesk-core-instr}
command -v valgrind >/dev/null || {
    echo "core_instr: valgrind is missing (apt-get install --no-install-recommends valgrind)" >&2
    exit 1
}
[[ -n ${NO_BUILD:-} ]] || cargo build --release --example core_instr
mkdir -p "$OUT"
profile="$OUT/callgrind.$(date -u +%Y%m%dT%H%M%S).out"
toggles=()
for f in handle_datagram handle_stream handle_admission handle_timeout handle_media \
    poll_transmit poll_call_effect poll_timeout poll_ended_call poll_registry_effect \
    seats_changed registry_effects_done; do
    toggles+=("--toggle-collect=smartdesk::sip::endpoint::Endpoint::$f")
done
valgrind --tool=callgrind --callgrind-out-file="$profile" "${toggles[@]}" \
    target/release/examples/core_instr --calls "$CALLS" --seats "$SEATS" --cps "$CPS" \
    --hold-ms "$HOLD_MS" 2>"$OUT/valgrind.log"
total=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$profile")
[[ -n $total ]] || total=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$profile")
echo "core instructions: $total for $CALLS calls ($SEATS seats, $CPS cps, hold $HOLD_MS ms)"
echo "core instructions per call: $((total / CALLS))"
echo "profile: $profile (callgrind_annotate --inclusive=yes $profile | head -60)"
