#!/usr/bin/env bash
# The whole check of tsusen, as CI runs it and as anyone can on a fresh Debian machine:
#   ./test.sh
# As root it installs what the tests need (packet tools for the live tests, a C linker, Rust via
# rustup when cargo is missing); then rustfmt, clippy, and every test in release mode.
# The live tests need root (network namespaces); without it they print SKIP and pass.
# The corpus test needs ../shared/corpus; without it it prints SKIP and passes.
set -euo pipefail

cd "$(dirname "$0")"

export DEBIAN_FRONTEND=noninteractive

# Debian packages the tests (and benches) use. util-linux gives setpriv; iputils-ping gives ping;
# scanlogd is the reference for tests/detect_scanlogd.rs.
packages=(
    ca-certificates curl gcc libc6-dev
    iproute2 iputils-ping util-linux procps
    nmap hping3 tcpdump tcpreplay valgrind scanlogd
    # NetFlow/IPFIX exporters and nfdump's collector, for tests/netflow.rs.
    softflowd fprobe nfdump
    # Packaging tests: qemu-user-static runs the aarch64 build, binutils' readelf checks that
    # it is static, busybox's ash reads the OpenWrt scripts as the router's shell does.
    qemu-user-static binutils busybox
    # The report page is checked in a real headless browser (tests/report_browser.rs); the
    # emoji font lets it draw the country flags.
    chromium fonts-noto-color-emoji
    # The alert sinks are checked against real brokers on loopback (tests/alerts.rs).
    mosquitto mosquitto-clients rabbitmq-server
    # The report's load benchmarks (the ignored tests of tests/report_perf.rs).
    wrk
)

step() { printf '\n=== %s\n' "$*"; }

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    missing=()
    for p in "${packages[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
            missing+=("$p")
        fi
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        step "apt-get install ${missing[*]}"
        apt-get update
        apt-get install -y --no-install-recommends "${missing[@]}"
    fi
elif [ "$(id -u)" -ne 0 ]; then
    echo "note: not root: no packages installed; the live tests will print SKIP" >&2
fi

# Rust: rustup's toolchain (the crate needs Rust 1.85 or later; Debian's own may be older).
if [ -x "$HOME/.cargo/bin/rustup" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v rustup >/dev/null 2>&1; then
    step "installing Rust with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
        sh -s -- -y --profile minimal --component rustfmt,clippy
    export PATH="$HOME/.cargo/bin:$PATH"
fi
step "rustup component add rustfmt clippy"
rustup component add rustfmt clippy
rustc --version
cargo --version

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

# The board binary (static musl, size-optimised; about a minute from scratch): tests/packaging.rs
# runs it under qemu-aarch64-static against the host build and checks the 3 MiB budget.
step "cross/build aarch64-unknown-linux-musl"
cross/build aarch64-unknown-linux-musl

step "cargo test --release"
cargo test --release
