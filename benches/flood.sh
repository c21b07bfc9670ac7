#!/usr/bin/env bash
# Flood benchmark: memory stays flat under a flood of distinct spoofed sources.
#
#   benches/flood.sh [PACKETS (default 10000000)] [LIVE_SECONDS (default 20)] [HPING_MODE]
#
# HPING_MODE is hping3's packet kind for the live flood: -S (SYNs, the default) or --udp (which
# also fills the classifier's flow table).
#
# 1. Replays a generated capture of PACKETS SYNs, each from a new spoofed source (examples/
#    genflood.rs), with the table and flow capacities of the OpenWrt router profile and of the
#    Raspberry Pi profile, sampling the sensor's resident memory every half second: prints the
#    peak, the RSS when a quarter, half and all of the input was read, and checks that the CSV
#    totals equal the attempts (no counted attempt lost).
# 2. As root with hping3: `hping3 --flood --rand-source -S` for LIVE_SECONDS from one network
#    namespace into `tsusen run` (every detector on, the report server up) in another, same
#    samples plus the kernel's own peak (VmHWM) and, at the highest sample, the resident memory
#    per mapping. Five seconds before the end, a look at /metrics, then at the report page (its
#    three requests for today, with the profile's REPORT_* settings): the page's own peak is
#    printed, and the capture's figures leave it out. Checks the CSV totals against the attempts here too. Measured for the native
#    build with the OpenWrt capacities (goal 16 MiB) and the Raspberry Pi's (goal 64 MiB), and,
#    when `cross/build x86_64-unknown-linux-musl` has built it from the current sources, for
#    the static musl binary the boards run with the OpenWrt capacities (its malloc and its lack
#    of shared libraries make its figure the one that matters for a router).
set -euo pipefail
cd "$(dirname "$0")/.."

packets=${1:-10000000}
live_seconds=${2:-20}
mode=${3:--S}
case $mode in
-S | --udp) ;;
*)
    echo "usage: benches/flood.sh [PACKETS] [LIVE_SECONDS] [-S|--udp]" >&2
    exit 2
    ;;
esac
cargo build --release --quiet --bin tsusen --example genflood
bin=target/release/tsusen
musl=target/cross/x86_64-unknown-linux-musl/tsusen
work=$(mktemp -d /tmp/tsusen-flood-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
cap=$work/flood.pcap
target/release/examples/genflood "$cap" "$packets" >/dev/null

profile_value() { awk -v k="$2" '$1 == k { print $2 }' "boards/$1.conf"; }

# Samples VmRSS of pid $1 into file $2 every half second until it exits, except while the file
# $work/looking exists (a look at the report page, measured on its own); with a file $3, keeps
# there the /proc/PID/smaps of the highest sample.
sample() {
    local max=0 v
    while [ -e "/proc/$1/status" ]; do
        if [ -e "$work/looking" ]; then
            sleep 0.1
            continue
        fi
        v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || true)
        if [ -n "$v" ]; then
            echo "$v" >>"$2"
            if [ -n "${3:-}" ] && [ "$v" -gt "$max" ]; then
                max=$v
                cat "/proc/$1/smaps" >"$3.tmp" 2>/dev/null && mv "$3.tmp" "$3"
            fi
        fi
        sleep 0.5
    done
}

# What binary $1 is: static, or dynamically linked (glibc here), and its size.
describe() {
    local kind=static
    if ! command -v readelf >/dev/null; then
        kind="static or not (no readelf to tell)"
    elif readelf -l "$1" | grep -q 'Requesting program interpreter'; then
        kind="dynamically linked (glibc)"
    fi
    echo "$1: $kind, $(stat -c %s "$1") bytes"
}

# Resident memory per kind of mapping in smaps file $1 of binary $2, and each anonymous
# mapping of 256 KiB or more resident (adjacent allocations share one mapping).
breakdown() {
    awk -v bin="$(readlink -f "$2")" '
        /^[0-9a-f]+-[0-9a-f]+ / { name = (NF >= 6) ? $6 : ""; next }
        /^Size:/ { size = $2; next }
        /^Rss:/ {
            if (name == bin) c = "binary (file-backed)"
            else if (name ~ /^\//) c = "shared libraries (file-backed)"
            else if (name ~ /^socket:/) c = "capture ring (shared with the kernel)"
            else if (name == "[heap]") c = "heap (brk)"
            else if (name == "[stack]") c = "main thread stack"
            else if (name ~ /^\[/) c = "vdso and such"
            else c = "anonymous mappings (large allocations, thread stacks)"
            kib[c] += $2; total += $2
            if (c ~ /^anonymous/ && $2 >= 256)
                big = big sprintf("      mapping of %6d KiB: %6d KiB resident\n", size, $2)
        }
        END {
            for (c in kib) if (kib[c] > 0) printf "    %-55s %7.2f MiB\n", c, kib[c] / 1024
            printf "%s", big
            printf "    %-55s %7.2f MiB\n", "total", total / 1024
        }' "$1"
}

report() { # name samples-file
    awk -v name="$1" '{ v[NR] = $1; if ($1 > peak) peak = $1 }
        END { if (NR == 0) { print name ": no samples"; exit }
              printf "%s: RSS at 25%% %.1f MiB, 50%% %.1f MiB, 100%% %.1f MiB; peak %.1f MiB\n", name,
                  v[int(NR / 4) + 1] / 1024, v[int(NR / 2) + 1] / 1024, v[NR] / 1024, peak / 1024 }' "$2"
}

csv_total() { # sum of the count column of every day file in $1
    cat "$1"/*.csv | awk '$1 != "proto" { n += $7 } END { print n + 0 }'
}

echo "replay binary: $(describe "$bin")"
for prof in openwrt-aarch64 rpi-aarch64; do
    tc=$(profile_value "$prof" TABLE_CAPACITY)
    fc=$(profile_value "$prof" FLOW_CAPACITY)
    logs=$work/log-$prof
    mkdir -p "$logs"
    : >"$work/rss-$prof"
    "$bin" replay --local 198.51.100.0/24 --table-capacity "$tc" --flow-capacity "$fc" \
        --log-dir "$logs" "$cap" >"$work/out-$prof" &
    pid=$!
    sample "$pid" "$work/rss-$prof"
    wait "$pid"
    attempts=$(sed -n 's/.*attempts \([0-9]*\),.*/\1/p' "$work/out-$prof")
    total=$(csv_total "$logs")
    echo "replay, $prof capacities ($tc rows, $fc flows): $(sed 's/, not-ip.*//' "$work/out-$prof")"
    report "replay, $prof" "$work/rss-$prof"
    if [ "$attempts" != "$total" ]; then
        echo "LOST: attempts $attempts, CSV total $total" >&2
        exit 1
    fi
    echo "CSV total $total = attempts"
    rm -rf "$logs"
done

if [ "$(id -u)" -ne 0 ] || ! command -v hping3 >/dev/null || ! command -v ip >/dev/null; then
    echo "SKIP live flood: needs root, hping3 and iproute2"
    exit 0
fi
out=tsf-out-$$ sen=tsf-sen-$$
cleanup() {
    ip netns del "$out" 2>/dev/null || true
    ip netns del "$sen" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$out"
ip netns add "$sen"
ip link add tsfo$$ netns "$out" type veth peer name tsfs$$ netns "$sen"
ip -n "$out" link set tsfo$$ up
ip -n "$sen" link set tsfs$$ up
# The report server listens on 127.0.0.1:8339: a new namespace's loopback starts down.
ip -n "$sen" link set lo up
ip -n "$out" addr add 203.0.113.7/32 dev tsfo$$
ip -n "$out" route add 198.51.100.0/24 dev tsfo$$
ip -n "$sen" addr add 198.51.100.10/24 dev tsfs$$
# The profile's capacities, every detector on (events go to a file), as on a board with SYSLOG.
# Profiles without a setting of their own (the Pi leaves the ring and detectors at their
# defaults) take tsusen's default.
live_conf() { # profile
    local k v
    printf 'HTTP_ADDRESS 127.0.0.1\nSYSLOG no\nEVENTS_FILE %s\n' "$work/events.jsonl" >"$work/conf"
    for k in TABLE_CAPACITY FLOW_CAPACITY RING_SIZE FLOW_BUILDER_CAPACITY SPIKE_SOURCES_CAPACITY \
        REPORT_CACHE_ROWS REPORT_REQUEST_ROWS; do
        v=$(profile_value "$1" "$k")
        if [ -n "$v" ]; then echo "$k $v" >>"$work/conf"; fi
    done
}

live_flood() { # binary profile goal-MiB
    local b=$1 prof=$2 goal=$3 pid sampler attempts total hwm drops sent looked hping page look before
    live_conf "$prof"
    rm -rf "$work/live" "$work/state.bin" "$work/events.jsonl" "$work/looking"
    mkdir -p "$work/live"
    : >"$work/rss-live"
    rm -f "$work/smaps-peak"
    echo "live binary: $(describe "$b")"
    ip netns exec "$sen" "$b" run --config "$work/conf" --interface tsfs$$ --log-dir "$work/live" \
        --state-file "$work/state.bin" --local 198.51.100.0/24 2>"$work/live.err" &
    pid=$!
    sleep 2
    if ! grep -q "report page on http://" "$work/live.err"; then
        echo "the report server did not start:" >&2
        cat "$work/live.err" >&2
        exit 1
    fi
    sample "$pid" "$work/rss-live" "$work/smaps-peak" &
    sampler=$!
    ip netns exec "$out" timeout "$live_seconds" hping3 --flood --rand-source "$mode" -p 80 198.51.100.10 \
        >/dev/null 2>"$work/hping.err" &
    hping=$!
    # Five seconds before the flood ends, a look at the counters (a Prometheus scrape):
    # /metrics, then the resident size a second later. Then someone opens the report page (its
    # three requests, for today). The capture's peak is the kernel's (VmHWM) until then;
    # writing 5 to clear_refs starts that peak again from the resident size of the moment, so
    # what follows is the look's, flood included. The samples stop there too: the report keeps
    # some of what it read (REPORT_CACHE_ROWS), which is not the capture's.
    sleep $((live_seconds > 10 ? live_seconds - 5 : live_seconds / 2))
    before=$(ip netns exec "$sen" curl -s http://127.0.0.1:8339/metrics |
        awk '/^tsusen_capture_drops_total/ { print $2 }' || true)
    sleep 1
    looked=$(awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status")
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
    touch "$work/looking"
    echo 5 >"/proc/$pid/clear_refs"
    page=""
    for u in /api/trendlines /api/attempts /api/summary; do
        page="$page$(ip netns exec "$sen" curl -s -o /dev/null -w "$u %{http_code} in %{time_total} s, " "http://127.0.0.1:8339$u" || true)"
    done
    wait "$hping" || true
    sleep 2
    look=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
    sent=$(awk '/packets transmitted/ { print $1 }' "$work/hping.err")
    kill -TERM "$pid"
    wait "$pid" || true
    wait "$sampler" || true
    grep -h "stopped:" "$work/live.err" || true
    attempts=$(sed -n 's/.*stopped: packets [0-9]*, attempts \([0-9]*\),.*/\1/p' "$work/live.err")
    # Frames the kernel dropped for the sensor while it was busy (a flush, a compaction), from
    # its last line: asking /metrics would have it copy its table for the report.
    drops=$(sed -n 's/.*stopped: .*, kernel drops \([0-9]*\).*/\1/p' "$work/live.err")
    total=$(csv_total "$work/live")
    echo "live flood, hping3 --flood --rand-source $mode for $live_seconds s, $prof profile, detectors on: sent ${sent:-?}, kernel drops ${drops:-?} (${before:-?} before the look at the page), attempts $attempts, CSV total $total, events in the file $(wc -l <"$work/events.jsonl")"
    report "live flood" "$work/rss-live"
    echo "live flood: resident size after a look at /metrics: ${looked:-?} MiB"
    awk -v h="$hwm" -v g="$goal" 'BEGIN { printf "live flood: kernel peak (VmHWM) until the look %.1f MiB; goal at most %d MiB: %s\n",
        h / 1024, g, (h <= g * 1024) ? "met" : "NOT met" }'
    awk -v l="$look" -v p="${page%, }" 'BEGIN { printf "live flood: a look at the report page near the end (%s): peak %.1f MiB\n", p, l / 1024 }'
    echo "live flood: resident memory at the highest sample, per mapping:"
    breakdown "$work/smaps-peak" "$b"
    if [ -z "$attempts" ] || [ "$attempts" != "$total" ]; then
        echo "LOST: attempts $attempts, CSV total $total" >&2
        exit 1
    fi
    echo "CSV total $total = attempts"
}

live_flood "$bin" openwrt-aarch64 16
live_flood "$bin" rpi-aarch64 64
# The boards' binary, when it is as new as the sources.
if [ -x "$musl" ] && [ -z "$(find src Cargo.toml Cargo.lock -newer "$musl" -print -quit)" ]; then
    live_flood "$musl" openwrt-aarch64 16
else
    echo "static musl build: not measured (make it first: cross/build x86_64-unknown-linux-musl)"
fi
