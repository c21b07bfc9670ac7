#!/usr/bin/env bash
# Live capture benchmark: tsusen against tcpdump on the same stream.
#
#   sudo benches/live.sh [RUNS (default 3)] [PACKETS (default 1000000)]
#
# Generates the mixed capture of examples/gencap.rs, makes two network namespaces joined by a
# veth pair, and replays the capture with `tcpreplay --topspeed` into one end while, on the
# other end, one capturer runs at a time (alternately, RUNS times each):
#   - `tsusen run` (CAPTURE_METHOD from $METHOD, default ring), counting into a scratch log dir;
#   - `tcpdump -n -i VETH -w /dev/null '(tcp[13] == 2) or not tcp'`.
# For each run it prints the packets tcpreplay sent and its rate, the frames the kernel dropped
# for the capturer (tsusen: /metrics capture_drops_total; tcpdump: "dropped by kernel"), and the
# CPU seconds the capturing process spent on the stream (all threads, from
# /proc/PID/task/*/schedstat, taken just before and two seconds after the replay). Then the medians and the
# ratio of CPU seconds, ours / tcpdump's. Needs root, iproute2, tcpreplay, tcpdump and curl.
# With WATCH=1 the sensor has an event sink (an events file), as a deployed one has (SYSLOG yes
# is the default): the live flow builder and the flow sensors run too.
# With two CPUs or more, tcpreplay runs on the first and the capturer on the last (taskset):
# left to the scheduler, the two sometimes share a CPU and a run's CPU time moves by half.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-3}
packets=${2:-1000000}
method=${METHOD:-ring}
for tool in ip tcpreplay tcpdump curl; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 0; }
done
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (network namespaces)"; exit 0; }

cargo build --release --quiet --bin tsusen --example gencap
bin=target/release/tsusen
work=$(mktemp -d /tmp/tsusen-live-bench.XXXXXX)
cap=$work/mixed.pcap
target/release/examples/gencap "$cap" "$packets" >/dev/null

out=tsb-out-$$ sen=tsb-sen-$$
cleanup() {
    ip netns del "$out" 2>/dev/null || true
    ip netns del "$sen" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$out"
ip netns add "$sen"
ip link add tsbo$$ netns "$out" type veth peer name tsbs$$ netns "$sen"
for ns in "$out" "$sen"; do ip -n "$ns" link set lo up; done
ip -n "$out" link set tsbo$$ up
ip -n "$sen" link set tsbs$$ up
# Room for the bursts of a top-speed replay on both ends.
ip -n "$out" link set tsbo$$ txqueuelen 10000
ip -n "$sen" link set tsbs$$ txqueuelen 10000

cpu_seconds() { # pid: CPU time of all its threads, from the scheduler's nanosecond counters
    cat /proc/"$1"/task/*/schedstat | awk '{ ns += $1 } END { printf "%.4f\n", ns / 1e9 }'
}

replay() { # prints "sent rate"
    ip netns exec "$out" $pin_sender tcpreplay --topspeed -i tsbo$$ "$cap" 2>&1 |
        awk '/Actual:/ { sent = $2 } /Rated:/ { for (i = 1; i <= NF; i++) if ($i ~ /pps/) rate = $(i-1) }
             END { print sent, rate }'
}

# Where each side runs: "taskset -c N", or nothing on a single CPU.
pin_sender='' pin_capturer=''
cpus=$(nproc)
if [ "$cpus" -ge 2 ] && command -v taskset >/dev/null; then
    pin_sender="taskset -c 0" pin_capturer="taskset -c $((cpus - 1))"
fi

conf=$work/tsusen.conf
printf 'CAPTURE_METHOD %s\nHTTP_ADDRESS 127.0.0.1\nHTTP_PORT 18339\nSYSLOG no\n' "$method" >"$conf"
if [ "${WATCH:-0}" = 1 ]; then
    echo "EVENTS_FILE $work/events.jsonl" >>"$conf"
fi

run_tsusen() {
    rm -rf "$work/log" "$work/state.bin" && mkdir -p "$work/log"
    ip netns exec "$sen" $pin_capturer "$bin" run --config "$conf" --interface tsbs$$ --log-dir "$work/log" \
        --state-file "$work/state.bin" --local 198.51.100.0/24 --local 2001:db8:100::/48 \
        --write-period 3600 2>"$work/tsusen.err" &
    local pid=$!
    sleep 2
    local r idle
    idle=$(cpu_seconds "$pid")
    r=$(replay)
    sleep 2
    local cpu drops
    cpu=$(awk -v a="$(cpu_seconds "$pid")" -v b="$idle" 'BEGIN { printf "%.4f", a - b }')
    drops=$(ip netns exec "$sen" curl -s http://127.0.0.1:18339/metrics |
        awk '/^tsusen_capture_drops_total/ { print $2 }')
    kill -TERM "$pid"
    wait "$pid" || true
    echo "tsusen $r ${drops:-?} $cpu"
}

run_tcpdump() {
    ip netns exec "$sen" $pin_capturer tcpdump -n -q -i tsbs$$ -w /dev/null '(tcp[13] == 2) or not tcp' \
        2>"$work/tcpdump.err" &
    local pid=$!
    sleep 2
    local r idle
    idle=$(cpu_seconds "$pid")
    r=$(replay)
    sleep 2
    local cpu
    cpu=$(awk -v a="$(cpu_seconds "$pid")" -v b="$idle" 'BEGIN { printf "%.4f", a - b }')
    kill -INT "$pid"
    wait "$pid" || true
    local drops
    drops=$(awk '/dropped by kernel/ { print $1 }' "$work/tcpdump.err")
    echo "tcpdump $r ${drops:-?} $cpu"
}

echo "capture: $packets packets; $runs runs each, alternately; tsusen with CAPTURE_METHOD $method"
echo "pinning: sender '${pin_sender:-none}', capturer '${pin_capturer:-none}'"
echo "who      sent      pps  kernel-drops  cpu-seconds"
results=$work/results
: >"$results"
for _ in $(seq "$runs"); do
    for who in tsusen tcpdump; do
        line=$("run_$who")
        echo "$line" >>"$results"
        echo "$line" | awk '{ printf "%-7s %9s %8s %13s %12s\n", $1, $2, $3, $4, $5 }'
    done
done
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for who in tsusen tcpdump; do
    drops=$(awk -v w="$who" '$1 == w { print $4 }' "$results" | median)
    cpu=$(awk -v w="$who" '$1 == w { print $5 }' "$results" | median)
    pps=$(awk -v w="$who" '$1 == w { print $3 }' "$results" | median)
    echo "median $who: replay $pps packets/s, kernel drops $drops, CPU $cpu s"
    eval "cpu_$who=$cpu"
done
awk -v a="$cpu_tsusen" -v b="$cpu_tcpdump" 'BEGIN { if (b > 0) printf "CPU ratio tsusen/tcpdump: %.2f\n", a / b }'
grep -h "stopped:" "$work/tsusen.err" | tail -1 || true
