#!/usr/bin/env bash
# Flood benchmark: memory stays flat under a flood of distinct spoofed sources.
#
#   benches/flood.sh [PACKETS (default 10000000)] [LIVE_SECONDS (default 20)]
#
# 1. Replays a generated capture of PACKETS SYNs, each from a new spoofed source (examples/
#    genflood.rs), with the table and flow capacities of the OpenWrt router profile and of the
#    Raspberry Pi profile, sampling the sensor's resident memory every half second: prints the
#    peak, the RSS when a quarter, half and all of the input was read, and checks that the CSV
#    totals equal the attempts (no counted attempt lost).
# 2. As root with hping3: `hping3 --flood --rand-source -S` for LIVE_SECONDS from one network
#    namespace into `tsusen run` (OpenWrt capacities) in another, same samples.
set -euo pipefail
cd "$(dirname "$0")/.."

packets=${1:-10000000}
live_seconds=${2:-20}
cargo build --release --quiet --bin tsusen --example genflood
bin=target/release/tsusen
work=$(mktemp -d /tmp/tsusen-flood-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
cap=$work/flood.pcap
target/release/examples/genflood "$cap" "$packets" >/dev/null

profile_value() { awk -v k="$2" '$1 == k { print $2 }' "boards/$1.conf"; }

# Samples VmRSS of pid $1 into file $2 every half second until it exits.
sample() {
    while [ -e "/proc/$1/status" ]; do
        awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null >>"$2" || true
        sleep 0.5
    done
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
ip -n "$out" addr add 203.0.113.7/32 dev tsfo$$
ip -n "$out" route add 198.51.100.0/24 dev tsfo$$
ip -n "$sen" addr add 198.51.100.10/24 dev tsfs$$
tc=$(profile_value openwrt-aarch64 TABLE_CAPACITY)
fc=$(profile_value openwrt-aarch64 FLOW_CAPACITY)
fb=$(profile_value openwrt-aarch64 FLOW_BUILDER_CAPACITY)
sp=$(profile_value openwrt-aarch64 SPIKE_SOURCES_CAPACITY)
# Every detector on (events go to a file), as on a router with SYSLOG.
printf 'HTTP_ADDRESS 127.0.0.1\nSYSLOG no\nEVENTS_FILE %s\nTABLE_CAPACITY %s\nFLOW_CAPACITY %s\nRING_SIZE 2\nFLOW_BUILDER_CAPACITY %s\nSPIKE_SOURCES_CAPACITY %s\n' \
    "$work/events.jsonl" "$tc" "$fc" "$fb" "$sp" >"$work/conf"
mkdir -p "$work/live"
ip netns exec "$sen" "$bin" run --config "$work/conf" --interface tsfs$$ --log-dir "$work/live" \
    --state-file "$work/state.bin" --local 198.51.100.0/24 2>"$work/live.err" &
pid=$!
sleep 2
: >"$work/rss-live"
sample "$pid" "$work/rss-live" &
sampler=$!
ip netns exec "$out" timeout "$live_seconds" hping3 --flood --rand-source -S -p 80 198.51.100.10 \
    >/dev/null 2>"$work/hping.err" || true
sleep 2
kill -TERM "$pid"
wait "$pid" || true
wait "$sampler" || true
grep -h "stopped:" "$work/live.err" || true
attempts=$(sed -n 's/.*stopped: packets [0-9]*, attempts \([0-9]*\),.*/\1/p' "$work/live.err")
total=$(csv_total "$work/live")
echo "live flood, hping3 --flood --rand-source for $live_seconds s, openwrt-aarch64 profile, detectors on: attempts $attempts, CSV total $total, events in the file $(wc -l <"$work/events.jsonl")"
report "live flood" "$work/rss-live"
