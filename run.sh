#!/usr/bin/env bash
# Build tsusen and run the sensor, on a fresh Debian machine:
#   sudo ./run.sh                          # all interfaces, local networks = their addresses
#   sudo ./run.sh --interface eth1 --local 192.0.2.0/24 --local 2001:db8:1::/48   # span port
# Any option of `tsusen run` may follow. Daily files go to /var/log/tsusen/YYYY-MM-DD.csv
# unless tsusen.conf or --log-dir says otherwise. Stop it with Ctrl-C (the day is written first).
set -euo pipefail
cd "$(dirname "$0")"

if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "run.sh: run me as root (capture needs root or CAP_NET_RAW)" >&2; exit 1; }
    exec sudo -- "$0" "$@"
fi

export DEBIAN_FRONTEND=noninteractive
need=()
for p in ca-certificates curl gcc libc6-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
    apt-get update
    apt-get install -y --no-install-recommends "${need[@]}"
fi
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v cargo >/dev/null 2>&1; then
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    export PATH="$HOME/.cargo/bin:$PATH"
fi

cargo build --release
# The sensor drops from root to this user once its capture socket is open (RUN_AS).
id tsusen >/dev/null 2>&1 ||
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin tsusen
mkdir -p /var/log/tsusen
config=()
[ -f tsusen.conf ] && config=(--config tsusen.conf)
exec ./target/release/tsusen run "${config[@]}" "$@"
