//! Packaging tests (issue 7): board profiles, the OpenWrt .ipk, the Debian .deb, and the cross
//! builds run under qemu-user.
//!
//! Each test prints `SKIP: reason` and passes when a tool it needs is missing (tar, dpkg-deb,
//! qemu-aarch64-static, root for dpkg -i …). The packages are built around the host binary of
//! this test run: the structure, scripts and settings are what is checked, and the same files
//! wrap the cross-built binaries. The qemu test needs `cross/build aarch64-unknown-linux-musl`
//! first (test.sh runs it).

// gencap (the benchmark's capture generator) brings its own copy of pcapgen.
#[allow(clippy::duplicate_mod)]
mod common;

#[path = "../examples/gencap.rs"]
#[allow(dead_code)]
mod gencap;

use common::pcapgen::*;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tsusen_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tsusen"))
}

fn skip(reason: &str) {
    println!("SKIP: {reason}");
}

/// Is `tool` on PATH?
fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A fresh, empty directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tsusen-pkg-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs `cmd` and insists on success; returns stdout.
fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The crate version as the packages write it (`0.1.0-1`).
fn package_version() -> String {
    format!("{}-1", env!("CARGO_PKG_VERSION"))
}

/// `Key: value` fields of a control file.
fn control_fields(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A pcap file with its header and no packet.
fn empty_pcap(dir: &Path) -> PathBuf {
    let path = dir.join("empty.pcap");
    write_pcap(&path, LINKTYPE_ETHERNET, &[]).unwrap();
    path
}

const LOCAL: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
const REMOTE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);
/// 2024-03-10 01:00:00 UTC.
const T: u64 = 1_710_032_400;

/// Two SYNs from outside to a local host: one to port 22, one to port 5353 (which the sample
/// UCI config ignores).
fn two_syns(dir: &Path) -> PathBuf {
    let path = dir.join("syns.pcap");
    let (src, dst) = (IpAddr::V4(REMOTE), IpAddr::V4(LOCAL));
    write_pcap(
        &path,
        LINKTYPE_ETHERNET,
        &[
            Packet::at(T, eth_tcp(src, 40000, dst, 22, SYN)),
            Packet::at(T + 1, eth_tcp(src, 40001, dst, 5353, SYN)),
        ],
    )
    .unwrap();
    path
}

/// `tsusen replay` must accept `config` (exit 0) on `pcap`. The snapshot is off: the configs
/// name the state file of a real installation, which a test must not touch.
fn replay_accepts(config: &Path, extra: &[&str], log_dir: &Path, pcap: &Path) -> String {
    let mut cmd = Command::new(tsusen_bin());
    cmd.arg("replay").arg("--config").arg(config).args(extra);
    cmd.args(["--state-file", "none"]);
    cmd.arg("--log-dir").arg(log_dir).arg(pcap);
    let out = run(&mut cmd);
    assert_eq!(
        out.status.code(),
        Some(0),
        "tsusen replay --config {} refused it:\n{}{}\n--- config:\n{}",
        config.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(config).unwrap_or_default()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `sh -n` (and busybox ash -n, OpenWrt's shell, when busybox is here) on a script.
fn syntax_ok(script: &Path) {
    ok(Command::new("sh").arg("-n").arg(script));
    if have("busybox") {
        ok(Command::new("busybox").args(["sh", "-n"]).arg(script));
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

// ---------------------------------------------------------------------------
// Board profiles
// ---------------------------------------------------------------------------

/// The number in a comment such as `#   262 144 rows  × 80 B = 20 MiB` (spaces as thousands
/// separators).
fn commented_count(text: &str, what: &str) -> Option<u64> {
    text.lines()
        .filter(|l| l.starts_with('#') && l.contains(&format!(" {what} ")) && l.contains("× 80 B"))
        .find_map(|l| {
            let before = l.trim_start_matches('#').split(what).next()?;
            before.replace(' ', "").parse().ok()
        })
}

fn setting(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} ")))
        .map(|v| v.trim().to_string())
}

#[test]
fn board_profiles_name_their_target_and_are_accepted() {
    let dir = scratch("boards");
    let pcap = empty_pcap(&dir);
    let mut profiles: Vec<PathBuf> = std::fs::read_dir(repo().join("boards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    profiles.sort();
    assert!(
        profiles.len() >= 6,
        "expected six board profiles: {profiles:?}"
    );
    let readme = read(&repo().join("boards/README.md"));
    for p in &profiles {
        let text = read(p);
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            text.contains("Target: ") && text.contains("-unknown-linux-musl"),
            "{name}: its comments must name the Rust target"
        );
        assert!(
            readme.contains(&format!("`{name}`")),
            "boards/README.md lacks {name}"
        );
        // The documented arithmetic is about the values really set.
        for (key, what) in [("TABLE_CAPACITY", "rows"), ("FLOW_CAPACITY", "flows")] {
            let value: u64 = setting(&text, key)
                .unwrap_or_else(|| panic!("{name}: no {key}"))
                .parse()
                .unwrap();
            assert_eq!(
                commented_count(&text, what),
                Some(value),
                "{name}: the `{what} × 80 B` comment does not match {key} {value}"
            );
        }
        let log_dir = setting(&text, "LOG_DIRECTORY").unwrap();
        if name.starts_with("openwrt") {
            assert!(
                log_dir.starts_with("/mnt/"),
                "{name}: a router keeps its files on a USB stick, not flash: {log_dir}"
            );
        }
        let logs = dir.join(format!("logs-{name}"));
        replay_accepts(p, &["--local", "192.0.2.0/24"], &logs, &pcap);
    }
    std::fs::remove_dir_all(&dir).ok();
}

// ---------------------------------------------------------------------------
// OpenWrt package
// ---------------------------------------------------------------------------

/// A UCI config as a user would write it, with lists, quoting and an ignored port.
const SAMPLE_UCI: &str = "\
config tsusen 'main'
\toption enabled '1'
\toption interface 'eth1'
\tlist local_network '198.51.100.0/24'
\tlist local_network \"2001:db8:100::/48\"
\toption log_directory '/mnt/usb/tsusen/log'
\toption state_file '/mnt/usb/tsusen/state.bin'
\toption write_period '600'
\toption table_capacity '32768'
\toption flow_capacity '16384'
\toption flow_timeout '120'
\tlist ignore_address '255.255.255.255'
\tlist ignore_address '127.0.0.1'
\tlist ignore_port '5353'
\tlist ignore_port '137-139'
\toption http_port '8339'

config other 'unrelated'
\toption interface 'wrong'
";

#[test]
fn ipk_structure_init_script_and_uci_mapping() {
    for tool in ["tar", "gzip", "git"] {
        if !have(tool) {
            return skip(&format!("{tool} is not installed"));
        }
    }
    let dir = scratch("ipk");
    let out = dir.join("out");
    let ipk = ok(Command::new(repo().join("images/openwrt/build-ipk"))
        .arg("aarch64-unknown-linux-musl")
        .arg("--binary")
        .arg(tsusen_bin())
        .arg("--out")
        .arg(&out));
    let ipk = PathBuf::from(ipk.trim());
    let version = package_version();
    assert_eq!(
        ipk.file_name().unwrap().to_string_lossy(),
        format!("tsusen_{version}_aarch64_cortex-a53.ipk")
    );

    // Outer layer: a gzip'd tar of exactly these three members, in this order (as ipkg-build).
    let members = ok(Command::new("tar").arg("tzf").arg(&ipk));
    assert_eq!(
        members.lines().collect::<Vec<_>>(),
        ["./debian-binary", "./data.tar.gz", "./control.tar.gz"]
    );
    let outer = dir.join("outer");
    std::fs::create_dir_all(&outer).unwrap();
    ok(Command::new("tar")
        .arg("xzf")
        .arg(&ipk)
        .arg("-C")
        .arg(&outer));
    assert_eq!(read(&outer.join("debian-binary")), "2.0\n");

    // Control: fields, conffiles, maintainer scripts.
    let ctrl = dir.join("control");
    std::fs::create_dir_all(&ctrl).unwrap();
    ok(Command::new("tar")
        .arg("xzf")
        .arg(outer.join("control.tar.gz"))
        .arg("-C")
        .arg(&ctrl));
    let fields = control_fields(&read(&ctrl.join("control")));
    assert_eq!(fields["Package"], "tsusen");
    assert_eq!(fields["Version"], version);
    assert_eq!(fields["Architecture"], "aarch64_cortex-a53");
    assert!(fields["Installed-Size"].parse::<u64>().unwrap() > 100_000);
    assert!(fields.contains_key("Description"));
    assert_eq!(read(&ctrl.join("conffiles")), "/etc/config/tsusen\n");
    for script in ["postinst", "prerm"] {
        let path = ctrl.join(script);
        assert_eq!(mode(&path), 0o755, "{script} must be executable");
        syntax_ok(&path);
    }

    // Data: every file owned by root, with the right modes.
    let listing = ok(Command::new("tar")
        .args(["tzvf"])
        .arg(outer.join("data.tar.gz"))
        .arg("--numeric-owner"));
    for line in listing.lines() {
        assert!(line.contains(" 0/0 "), "not owned by root: {line}");
    }
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    ok(Command::new("tar")
        .arg("xzf")
        .arg(outer.join("data.tar.gz"))
        .arg("-C")
        .arg(&data));
    for (file, want) in [
        ("usr/sbin/tsusen", 0o755),
        ("etc/init.d/tsusen", 0o755),
        ("usr/share/tsusen/uci2conf", 0o755),
        ("etc/config/tsusen", 0o644),
    ] {
        assert_eq!(mode(&data.join(file)), want, "{file}");
    }
    assert_eq!(
        std::fs::read(data.join("usr/sbin/tsusen")).unwrap(),
        std::fs::read(tsusen_bin()).unwrap(),
        "the packaged binary is the one given"
    );

    // The procd init script: rc.common, procd, respawn, reload on config change.
    let init = data.join("etc/init.d/tsusen");
    syntax_ok(&init);
    let init_text = read(&init);
    for needle in [
        "#!/bin/sh /etc/rc.common",
        "USE_PROCD=1",
        "procd_set_param command \"$PROG\" run --config \"$CONF\"",
        "CONF=/var/etc/tsusen.conf",
        "procd_set_param respawn",
        "procd_set_param file \"$CONF\"",
        "procd_add_reload_trigger tsusen",
        "/usr/share/tsusen/uci2conf",
    ] {
        assert!(init_text.contains(needle), "init script lacks {needle}");
    }

    // The UCI mapping, run as the tests can run it: with the file given, outside OpenWrt. Under
    // every shell we have, since the router's is busybox ash.
    let uci2conf = data.join("usr/share/tsusen/uci2conf");
    syntax_ok(&uci2conf);
    let mut shells = vec![vec!["sh"]];
    if have("dash") {
        shells.push(vec!["dash"]);
    }
    if have("busybox") {
        shells.push(vec!["busybox", "sh"]);
    }
    let pcap = two_syns(&dir);

    // 1. The packaged default config (from boards/openwrt-aarch64.conf).
    let packaged = data.join("etc/config/tsusen");
    let profile = read(&repo().join("boards/openwrt-aarch64.conf"));
    for shell in &shells {
        let generated = ok(Command::new(shell[0])
            .args(&shell[1..])
            .arg(&uci2conf)
            .arg(&packaged)
            .env("TSUSEN_DEVICE", "pppoe-wan"));
        for key in [
            "LOG_DIRECTORY",
            "STATE_FILE",
            "WRITE_PERIOD",
            "TABLE_CAPACITY",
            "FLOW_CAPACITY",
            "RING_SIZE",
            "REPORT_CACHE_ROWS",
            "REPORT_REQUEST_ROWS",
        ] {
            let want = format!("{key} {}\n", setting(&profile, key).unwrap());
            assert!(
                generated.contains(&want),
                "{shell:?}: no `{want}` in\n{generated}"
            );
        }
        assert!(
            generated.contains("MONITOR_INTERFACE pppoe-wan\n"),
            "{generated}"
        );
        for line in ["RUN_AS nobody\n", "CAPTURE_METHOD ring\n"] {
            assert!(generated.contains(line), "no `{line}` in\n{generated}");
        }
        assert!(
            generated.contains("IGNORE_ADDRESSES 255.255.255.255 127.0.0.1 0.0.0.0\n"),
            "{generated}"
        );
        let conf = dir.join("default.conf");
        std::fs::write(&conf, &generated).unwrap();
        replay_accepts(
            &conf,
            &["--local", "198.51.100.0/24"],
            &dir.join("logs-default"),
            &pcap,
        );
    }

    // 2. A user's config: lists, quotes, an ignored port; the sensor must act on it.
    let sample = dir.join("tsusen.uci");
    std::fs::write(&sample, SAMPLE_UCI).unwrap();
    for shell in &shells {
        let generated = ok(Command::new(shell[0])
            .args(&shell[1..])
            .arg(&uci2conf)
            .arg(&sample));
        let expected = "\
MONITOR_INTERFACE eth1
LOCAL_NETWORKS 198.51.100.0/24 2001:db8:100::/48
LOG_DIRECTORY /mnt/usb/tsusen/log
STATE_FILE /mnt/usb/tsusen/state.bin
WRITE_PERIOD 600
TABLE_CAPACITY 32768
FLOW_CAPACITY 16384
FLOW_TIMEOUT 120
IGNORE_ADDRESSES 255.255.255.255 127.0.0.1
IGNORE_PORTS 5353 137-139
HTTP_PORT 8339
";
        let body: String = generated
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(body, expected, "{shell:?}");
        let conf = dir.join("sample.conf");
        std::fs::write(&conf, &generated).unwrap();
        let logs = dir.join(format!("logs-sample-{}", shell.join("-")));
        // No --local: LOCAL_NETWORKS comes from UCI. Port 5353 is ignored, 22 counts.
        replay_accepts(&conf, &[], &logs, &pcap);
        let csv = read(&logs.join("2024-03-10.csv"));
        assert_eq!(
            csv,
            "proto dst_port dst_ip src_ip first_seen last_seen count\n\
             TCP 22 198.51.100.10 203.0.113.7 1710032400 1710032400 1\n"
        );
    }

    // 3. The init script's start_service, with procd, UCI and logger stubbed: it writes the
    // generated file, starts the sensor on it with respawn, and waits for an unmounted stick.
    let wrapper = dir.join("uci2conf-sample");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec sh '{}' '{}'\n",
            uci2conf.display(),
            sample.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let harness = r#"
        config_load() { :; }
        config_get() { eval "$1=\${CFG_$3:-\${4:-}}"; }
        config_get_bool() { eval "$1=\${CFG_$3:-\$4}"; }
        logger() { echo "logger: $*"; }
        procd_open_instance() { echo "procd: open"; }
        procd_set_param() { echo "procd: $*"; }
        procd_close_instance() { echo "procd: close"; }
        . "$INIT"
        UCI2CONF=$WRAPPER
        CONF=$SCRATCH/var/etc/tsusen.conf
        start_service
    "#;
    let start = |shell: &[&str], enabled: &str, mount: &str| {
        let mut cmd = Command::new(shell[0]);
        cmd.args(&shell[1..]).arg("-c").arg(harness);
        cmd.env("INIT", &init)
            .env("WRAPPER", &wrapper)
            .env("SCRATCH", &dir);
        cmd.env("CFG_enabled", enabled)
            .env("CFG_storage_mount", mount);
        cmd.env("CFG_log_directory", dir.join("usb/log"));
        cmd.env("CFG_state_file", dir.join("usb/state.bin"));
        ok(&mut cmd)
    };
    let conf = dir.join("var/etc/tsusen.conf");
    for shell in &shells {
        let said = start(shell, "1", "/");
        let want = format!(
            "procd: open\nprocd: command /usr/sbin/tsusen run --config {c}\nprocd: file {c}\n\
             procd: respawn 3600 5 5\nprocd: term_timeout 30\nprocd: no_new_privs 1\n\
             procd: stdout 1\nprocd: stderr 1\nprocd: close\n",
            c = conf.display()
        );
        assert_eq!(said, want, "{shell:?}");
        let generated = read(&conf);
        assert!(generated.contains("LOCAL_NETWORKS 198.51.100.0/24 2001:db8:100::/48\n"));
        assert!(dir.join("usb/log").is_dir(), "the log directory is made");
        std::fs::remove_file(&conf).unwrap();

        let said = start(shell, "1", "/no/such/mount");
        assert!(said.contains("not mounted"), "{shell:?}: {said}");
        assert!(!said.contains("procd: open") && !conf.exists(), "{said}");
        let said = start(shell, "0", "/");
        assert!(said.is_empty() && !conf.exists(), "disabled, yet: {said}");
    }

    // 4. A value the sensor's reader would cut ('#') is refused, not passed on.
    let bad = dir.join("bad.uci");
    std::fs::write(
        &bad,
        "config tsusen 'main'\n\toption log_directory '/mnt/usb/#1'\n",
    )
    .unwrap();
    let out = run(Command::new("sh").arg(&uci2conf).arg(&bad));
    assert_eq!(out.status.code(), Some(1), "a '#' in a value must fail");
    assert!(String::from_utf8_lossy(&out.stderr).contains("LOG_DIRECTORY"));

    std::fs::remove_dir_all(&dir).ok();
}

// ---------------------------------------------------------------------------
// Debian package
// ---------------------------------------------------------------------------

fn build_deb(dir: &Path) -> PathBuf {
    let deb = ok(Command::new(repo().join("images/debian/build-deb"))
        .arg("x86_64-unknown-linux-musl")
        .arg("--binary")
        .arg(tsusen_bin())
        .arg("--out")
        .arg(dir));
    PathBuf::from(deb.trim())
}

const UNIT: &str = "usr/lib/systemd/system/tsusen.service";

#[test]
fn deb_structure_and_unit() {
    if !have("dpkg-deb") {
        return skip("dpkg-deb is not installed");
    }
    let dir = scratch("deb");
    let deb = build_deb(&dir);
    let version = package_version();
    assert_eq!(
        deb.file_name().unwrap().to_string_lossy(),
        format!("tsusen_{version}_amd64.deb")
    );

    let info = ok(Command::new("dpkg-deb").arg("--info").arg(&deb));
    for f in [
        "Package: tsusen",
        &format!("Version: {version}"),
        "Architecture: amd64",
    ] {
        assert!(info.contains(f), "dpkg-deb --info lacks {f}:\n{info}");
    }
    let conffiles = ok(Command::new("dpkg-deb")
        .arg("--info")
        .arg(&deb)
        .arg("conffiles"));
    assert_eq!(conffiles, "/etc/tsusen/tsusen.conf\n");

    let contents = ok(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    for f in [
        "./usr/sbin/tsusen",
        &format!("./{UNIT}"),
        "./etc/tsusen/tsusen.conf",
        "./usr/share/doc/tsusen/copyright",
    ] {
        assert!(contents.contains(f), "the .deb lacks {f}:\n{contents}");
    }
    for line in contents.lines() {
        assert!(line.contains(" root/root "), "not owned by root: {line}");
    }

    let ctrl = dir.join("DEBIAN");
    ok(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&ctrl));
    for script in ["postinst", "prerm", "postrm"] {
        assert_eq!(mode(&ctrl.join(script)), 0o755, "{script}");
        syntax_ok(&ctrl.join(script));
    }

    let root = dir.join("root");
    ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    let unit = read(&root.join(UNIT));
    for line in [
        "ExecStart=/usr/sbin/tsusen run --config /etc/tsusen/tsusen.conf",
        "User=tsusen",
        "CapabilityBoundingSet=CAP_NET_RAW\n",
        "AmbientCapabilities=CAP_NET_RAW\n",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=-/var/lib/tsusen -/var/log/tsusen",
        "Restart=on-failure",
    ] {
        assert!(unit.contains(line), "the unit lacks {line}");
    }
    // The installed settings are the board profile, and the sensor takes them.
    let conf = root.join("etc/tsusen/tsusen.conf");
    assert!(read(&conf).contains("TABLE_CAPACITY 262144"));
    let pcap = empty_pcap(&dir);
    replay_accepts(
        &conf,
        &["--local", "192.0.2.0/24"],
        &dir.join("logs"),
        &pcap,
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Runs dpkg with `args`, waiting (up to 5 minutes) while another apt or dpkg holds its lock.
fn dpkg(args: &[&str]) -> Output {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let out = run(Command::new("dpkg").args(args));
        let locked = String::from_utf8_lossy(&out.stderr).contains("lock");
        if out.status.success() || !locked || std::time::Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
}

/// `dpkg ARGS…`, which must succeed.
fn dpkg_ok(args: &[&str]) {
    let out = dpkg(args);
    assert!(
        out.status.success(),
        "dpkg {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Purges the package if a failed test left it installed.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        if installed_status().is_some() {
            let _ = dpkg(&["-P", "tsusen"]);
        }
    }
}

/// dpkg's status of the tsusen package, if dpkg knows it.
fn installed_status() -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "tsusen"])
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !s.is_empty() && s != "unknown ok not-installed").then_some(s)
}

fn uid_of(user: &str) -> Option<u32> {
    let out = Command::new("getent")
        .args(["passwd", user])
        .output()
        .ok()?;
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    line.split(':').nth(2)?.parse().ok()
}

/// Every path under /etc/systemd/system that mentions tsusen (enable links, masks).
fn systemd_links() -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.file_name().unwrap().to_string_lossy().contains("tsusen") {
                found.push(p.clone());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&p, found);
            }
        }
    }
    let mut found = Vec::new();
    walk(Path::new("/etc/systemd/system"), &mut found);
    found
}

#[test]
fn deb_installs_and_removes_cleanly() {
    if !is_root() {
        return skip("not root: dpkg -i needs root");
    }
    for tool in ["dpkg", "dpkg-deb", "dpkg-query", "getent", "setpriv"] {
        if !have(tool) {
            return skip(&format!("{tool} is not installed"));
        }
    }
    if let Some(status) = installed_status() {
        return skip(&format!(
            "a tsusen package is already here ({status}): not replacing it"
        ));
    }
    if Path::new("/run/systemd/system").exists() {
        return skip("systemd runs this machine: installing would start a real sensor here");
    }
    let dir = scratch("deb-install");
    let deb = build_deb(&dir);
    let _purge = Purge;

    dpkg_ok(&["-i", deb.to_str().unwrap()]);
    assert_eq!(installed_status().as_deref(), Some("install ok installed"));
    let uid = uid_of("tsusen").expect("postinst creates the tsusen user");
    assert_ne!(uid, 0);
    assert!(Path::new("/").join(UNIT).is_file());
    assert!(Path::new("/etc/tsusen/tsusen.conf").is_file());
    for d in ["/var/lib/tsusen", "/var/log/tsusen"] {
        let m = std::fs::metadata(d).unwrap_or_else(|e| panic!("{d}: {e}"));
        assert_eq!(m.uid(), uid, "{d} belongs to tsusen");
        assert_eq!(m.mode() & 0o777, 0o750, "{d}");
    }
    if have("deb-systemd-helper") {
        assert!(
            Path::new("/etc/systemd/system/multi-user.target.wants/tsusen.service").exists(),
            "the service is enabled"
        );
    }
    if have("systemd-analyze") {
        ok(Command::new("systemd-analyze")
            .arg("verify")
            .arg(Path::new("/").join(UNIT)));
    }
    // The sensor, as its user, with the installed settings, writes its log directory.
    let pcap = two_syns(&dir);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&pcap, std::fs::Permissions::from_mode(0o644)).unwrap();
    ok(Command::new("setpriv")
        .args(["--reuid=tsusen", "--regid=tsusen", "--clear-groups"])
        .args([
            "/usr/sbin/tsusen",
            "replay",
            "--config",
            "/etc/tsusen/tsusen.conf",
        ])
        .args(["--local", "198.51.100.0/24", "--state-file", "none"])
        .arg(&pcap));
    let csv = Path::new("/var/log/tsusen/2024-03-10.csv");
    assert_eq!(std::fs::metadata(csv).unwrap().uid(), uid);

    // Remove: program and unit go, the conffile stays, the unit is masked.
    dpkg_ok(&["-r", "tsusen"]);
    assert_eq!(
        installed_status().as_deref(),
        Some("deinstall ok config-files")
    );
    assert!(!Path::new("/usr/sbin/tsusen").exists());
    assert!(!Path::new("/").join(UNIT).exists());
    assert!(Path::new("/etc/tsusen/tsusen.conf").exists());

    // Purge: everything goes, data directories included (the user stays, as Debian does).
    dpkg_ok(&["-P", "tsusen"]);
    assert_eq!(installed_status(), None);
    for p in ["/etc/tsusen", "/var/lib/tsusen", "/var/log/tsusen"] {
        assert!(!Path::new(p).exists(), "{p} is left after purge");
    }
    assert_eq!(systemd_links(), Vec::<PathBuf>::new(), "systemd links left");
    std::fs::remove_dir_all(&dir).ok();
}

// ---------------------------------------------------------------------------
// Cross builds under qemu-user
// ---------------------------------------------------------------------------

/// The newest modification time under `dir`.
fn newest(dir: &Path) -> std::time::SystemTime {
    let mut t = std::time::UNIX_EPOCH;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let m = e.metadata().unwrap();
        let mt = if m.is_dir() {
            newest(&e.path())
        } else {
            m.modified().unwrap()
        };
        t = t.max(mt);
    }
    t
}

/// Replays `pcap` with `runner` (the host binary, or qemu and a cross binary) into a new
/// directory; returns the summary line's counts (not its timings) and the daily files.
fn replay_with(runner: &[PathBuf], pcap: &Path, out: &Path) -> (String, BTreeMap<String, String>) {
    std::fs::create_dir_all(out).unwrap();
    let stdout = ok(Command::new(&runner[0])
        .args(&runner[1..])
        .arg("replay")
        .args(["--local", gencap::LOCAL_V4, "--local", gencap::LOCAL_V6])
        // Small tables: early flushes and flow evictions run too.
        .args(["--table-capacity", "700", "--flow-capacity", "300"])
        .arg("--log-dir")
        .arg(out)
        .arg(pcap));
    // `name number` fields, without timings and without the parenthesised details (what the
    // kernel counted as written depends on the file system, not on the sensor).
    let mut depth = 0;
    let flat: String = stdout
        .chars()
        .filter(|&c| {
            depth += (c == '(') as i32;
            let keep = depth == 0;
            depth -= (c == ')') as i32;
            keep
        })
        .collect();
    let counts: String = flat
        .trim()
        .split(", ")
        .filter(|f| !f.starts_with("seconds") && !f.starts_with("packets/s"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut files = BTreeMap::new();
    for e in std::fs::read_dir(out).unwrap().flatten() {
        files.insert(
            e.file_name().to_string_lossy().into_owned(),
            read(&e.path()),
        );
    }
    (counts, files)
}

/// Each cross binary that is built and whose qemu is installed replays the same capture as
/// the host binary and must write the same files. aarch64 is required by CI (test.sh builds
/// it); armv7 (32-bit), mipsel (32-bit, soft float) and mips (big-endian) run when built.
#[test]
fn cross_binaries_under_qemu_match_the_host() {
    let targets = [
        ("aarch64-unknown-linux-musl", "qemu-aarch64-static"),
        ("armv7-unknown-linux-musleabihf", "qemu-arm-static"),
        ("mipsel-unknown-linux-musl", "qemu-mipsel-static"),
        ("mips-unknown-linux-musl", "qemu-mips-static"),
    ];
    let sources = newest(&repo().join("src"));
    let dir = scratch("qemu");
    let pcap = dir.join("mixed.pcap");
    let stats = gencap::generate(&pcap, 20_000, 262_144).unwrap();
    assert!(stats.packets >= 20_000);
    let (host_counts, host_files) = replay_with(&[tsusen_bin()], &pcap, &dir.join("host"));
    assert!(host_files.len() >= 2, "the capture crosses midnight");
    let mut ran = 0;
    for (target, qemu) in targets {
        let bin = repo().join("target/cross").join(target).join("tsusen");
        if !bin.exists() {
            skip(&format!("{target}: no binary (run cross/build {target})"));
            continue;
        }
        if std::fs::metadata(&bin).unwrap().modified().unwrap() < sources {
            skip(&format!(
                "{target}: the binary is older than src/ (run cross/build {target})"
            ));
            continue;
        }
        if !have(qemu) {
            skip(&format!(
                "{target}: {qemu} is not installed (qemu-user-static)"
            ));
            continue;
        }
        if target.starts_with("aarch64") {
            let size = std::fs::metadata(&bin).unwrap().len();
            assert!(
                size <= 3 << 20,
                "{target}: {size} bytes, over the 3 MiB budget"
            );
        }
        let qemu = PathBuf::from(qemu);
        ok(Command::new(&qemu).arg(&bin).arg("--help"));
        let (counts, files) = replay_with(&[qemu, bin], &pcap, &dir.join(target));
        assert_eq!(
            counts, host_counts,
            "{target}: summary differs from the host's"
        );
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            host_files.keys().collect::<Vec<_>>(),
            "{target}: other daily files than the host's"
        );
        for (name, text) in &files {
            assert!(
                text == &host_files[name],
                "{target}: {name} differs from the host's"
            );
        }
        println!("{target}: same {} files as the host", files.len());
        ran += 1;
    }
    if ran == 0 {
        skip("no cross binary could be run under qemu");
    }
    std::fs::remove_dir_all(&dir).ok();
}
