#!/usr/bin/env bash
# Instructions per packet of a replay, and where they go: a figure that repeats on a noisy
# machine, unlike wall time.
#
#   benches/instructions.sh [PACKETS (default 1000000)]
#
# Builds tsusen with line tables (a separate target dir, so the release build is untouched),
# generates the mixed capture of examples/gencap.rs, runs
#   valgrind --tool=callgrind tsusen replay --local 198.51.100.0/24 --local 2001:db8:100::/48 ...
# and prints the instructions per packet, then their shares by stage, from the source file
# each instruction was compiled from (inlined code counts where it was written):
#   reading   src/source/, src/commands/replay.rs (the capture file and the read loop)
#   decode    src/decode/, smoltcp's wire views
#   classify  src/classify/, src/addr.rs, src/proto.rs
#   table     src/tables/attempts.rs and the hashing it does
#   output    src/tables/row.rs, src/store/, src/addr/text.rs, src/decimal.rs (the sort,
#             formatting and writing of the day files)
#   detectors src/detect/, src/alerts/ (scan detector, tool fingerprints)
#   sensor    src/sensor.rs (the per-frame glue: lookahead ring, clock, counters)
#   std/libc  library code inlined into functions of none of the above, memcpy/memset
# For comparison it runs tcpdump's filter pass on the same file under callgrind too.
# Needs valgrind (and tcpdump for the comparison).
set -euo pipefail
cd "$(dirname "$0")/.."
packets=${1:-1000000}
command -v valgrind >/dev/null || { echo "SKIP: valgrind not installed"; exit 0; }
target=target/instructions
CARGO_TARGET_DIR=$target CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
    cargo build --release --quiet --bin tsusen --example gencap
work=$(mktemp -d /tmp/tsusen-instructions.XXXXXX)
trap 'rm -rf "$work"' EXIT
cap=$work/mixed.pcap
"$target/release/examples/gencap" "$cap" "$packets" >/dev/null
mkdir -p "$work/log"
valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "$target/release/tsusen" replay \
    --local 198.51.100.0/24 --local 2001:db8:100::/48 --log-dir "$work/log" "$cap" \
    >"$work/replay.out" 2>"$work/valgrind.err"
sed 's/, not-ip.*//' "$work/replay.out"
callgrind_annotate --auto=no --threshold=100 "$work/cg.out" 2>/dev/null | awk -v packets="$packets" '
    /PROGRAM TOTALS/ { gsub(",", "", $1); total = $1; next }
    /^ *[0-9,]+ +\( *[0-9.]+%\) +[^ ]+:/ {
        n = $1; gsub(",", "", n)
        # "  N ( P%)  FILE:FUNCTION [OBJECT]": the file the code was written in, and the function.
        rest = $0; sub(/^[^)]*\) +/, "", rest)
        place = rest; sub(/:.*/, "", place)
        fn = rest; sub(/^[^:]*:/, "", fn)
        if (place ~ /src\/decode\// || place ~ /smoltcp/) k = "decode"
        else if (place ~ /src\/hash\.rs/ && fn ~ /scan/) k = "detectors"
        else if (place ~ /src\/hash\.rs/) k = "table"
        else if (place ~ /src\/classify\// || place ~ /src\/addr\.rs/ || place ~ /src\/proto\.rs/) k = "classify"
        else if (place ~ /src\/tables\/attempts\.rs/ || place ~ /src\/tables\/prefetch\.rs/) k = "table"
        else if (place ~ /src\/tables\/row\.rs|src\/store\/|src\/addr\/text\.rs|src\/decimal\.rs/) k = "output"
        else if (place ~ /src\/detect\// || place ~ /src\/alerts\//) k = "detectors"
        else if (place ~ /src\/source\// || place ~ /src\/commands\/replay\.rs/) k = "reading"
        else if (place ~ /src\/sensor\.rs/) k = "sensor"
        else if (fn ~ /decode::/) k = "decode"
        else if (fn ~ /row::|csv::|daily::|sort::|addr::text::|decimal::/) k = "output"
        else if (fn ~ /scan::|fingerprint::/) k = "detectors"
        else if (fn ~ /attempts::/) k = "table"
        else if (fn ~ /replay::main|capfile::/) k = "reading"
        else if (fn ~ /Sensor::/) k = "sensor"
        else k = "std/libc"
        share[k] += n
    }
    END {
        printf "instructions: %d for %d packets = %.0f per packet\n", total, packets, total / packets
        n = split("reading decode classify table detectors sensor output std/libc", order, " ")
        for (i = 1; i <= n; i++)
            printf "  %-10s %5.0f per packet  %5.1f %%\n", order[i], share[order[i]] / packets, 100 * share[order[i]] / total
    }'
if command -v tcpdump >/dev/null; then
    # -Z root: tcpdump drops to its own user, which may not write the output file.
    valgrind --tool=callgrind --callgrind-out-file="$work/cg.tcpdump" tcpdump -Z root -n -r "$cap" \
        -w /dev/null '(tcp[13] == 2) or not tcp' >/dev/null 2>&1
    callgrind_annotate --auto=no "$work/cg.tcpdump" 2>/dev/null | awk -v packets="$packets" '
        /PROGRAM TOTALS/ { gsub(",", "", $1); printf "tcpdump -r FILE -w /dev/null FILTER: %d instructions = %.0f per packet\n", $1, $1 / packets }'
fi
