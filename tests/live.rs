//! Live tests of `tsusen run`: real traffic (nmap, hping3, ping) between two network namespaces
//! joined by a veth pair, captured by the sensor on its end of the pair; then the daily CSV file
//! is checked. Also the two start-up errors: an unknown interface, and no permission to capture.
//!
//! Needs root, `ip` (iproute2), `nmap` and `hping3` (`.ci/run` installs them); without them each
//! test prints `SKIP: <reason>` and passes. Every namespace is removed by a Drop guard, even when
//! a check fails, and every wait is bounded by a timeout. No packet leaves the namespaces the
//! tests create: the outside namespace has no route but the one over the veth pair.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const BIN: &str = env!("CARGO_BIN_EXE_tsusen");
const HEADER: &str = "proto dst_port dst_ip src_ip first_seen last_seen count";

const OUT4: &str = "203.0.113.7";
const SENSOR4: &str = "198.51.100.10";
const OUT6: &str = "2001:db8:7::7";
const SENSOR6: &str = "2001:db8:100::10";

/// Writes straight to stderr, past libtest's output capture, so a skip reason or a summary is
/// shown even when the test passes under a plain `cargo test`.
macro_rules! say {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

// ---------------------------------------------------------------------------------------------
// Small helpers: privileges, tools, temporary directories, commands with a timeout.

/// Effective uid and effective capability mask of this process, from /proc/self/status.
fn uid_and_caps() -> (u32, u64) {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mut uid = u32::MAX;
    let mut caps = 0;
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix("Uid:") {
            // real, effective, saved, filesystem
            uid = rest
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(u32::MAX);
        } else if let Some(rest) = line.strip_prefix("CapEff:") {
            caps = u64::from_str_radix(rest.trim(), 16).unwrap_or(0);
        }
    }
    (uid, caps)
}

fn is_root() -> bool {
    uid_and_caps().0 == 0
}

const CAP_NET_RAW: u64 = 1 << 13;

/// The full path of a tool, looked up in PATH and the sbin directories (which a user's PATH may
/// lack).
fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .filter(|d| !d.is_empty())
        .chain([
            "/usr/local/sbin",
            "/usr/local/bin",
            "/usr/sbin",
            "/usr/bin",
            "/sbin",
            "/bin",
        ])
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file());
    found
}

/// The first missing tool among `tools`, if any.
fn missing_tool(tools: &[&str]) -> Option<String> {
    tools
        .iter()
        .find(|t| which(t).is_none())
        .map(|t| t.to_string())
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A directory under the system temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("tsusen-live-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).expect("create temporary directory");
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs a command to its end, or kills it after `limit` and returns an error.
fn run_timeout(cmd: &mut Command, limit: Duration) -> Result<Finished, String> {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {shown}: {e}"))?;
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                // The reader threads are left to end on their own.
                return Err(format!("{shown} did not finish within {limit:?}: killed"));
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("waiting for {shown}: {e}")),
        }
    };
    let stdout = String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned();
    Ok(Finished {
        status,
        stdout,
        stderr,
    })
}

/// Runs `ip ARGS`; an error carries ip's message.
fn ip(args: &[&str]) -> Result<(), String> {
    let f = run_timeout(Command::new("ip").args(args), Duration::from_secs(15))?;
    if f.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            f.status,
            f.stderr.trim()
        ))
    }
}

/// Runs a traffic tool inside a namespace; a failure of the tool fails the test, with its output.
fn in_netns(ns: &str, args: &[&str], limit: Duration) -> Finished {
    let mut full = vec!["netns", "exec", ns];
    full.extend_from_slice(args);
    let f = run_timeout(Command::new("ip").args(&full), limit)
        .unwrap_or_else(|e| panic!("traffic tool: {e}"));
    assert!(
        f.status.success(),
        "`ip {}` failed ({}):\nstdout:\n{}\nstderr:\n{}",
        full.join(" "),
        f.status,
        f.stdout,
        f.stderr
    );
    f
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// `YYYY-MM-DD` of a Unix time, UTC (days-from-civil, inverted; proleptic Gregorian).
fn utc_date(secs: u64) -> String {
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

// ---------------------------------------------------------------------------------------------
// Network namespaces.

/// Removes the namespaces it names on drop (their veth ends go with them).
struct Netns {
    names: Vec<String>,
}

impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.names {
            if let Err(e) = ip(&["netns", "del", n]) {
                say!("warning: could not remove network namespace {n}: {e}");
            }
        }
    }
}

const NS_PREFIX: &str = "tsusen-live-";

/// Removes namespaces left by an earlier run of these tests that was killed before its guards
/// ran (their names carry the pid of a process that no longer exists).
fn remove_stale_namespaces() {
    let Ok(f) = run_timeout(
        Command::new("ip").args(["netns", "list"]),
        Duration::from_secs(10),
    ) else {
        return;
    };
    for line in f.stdout.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(NS_PREFIX) else {
            continue;
        };
        // tsusen-live-<tag>-<pid>-<side>
        let pid = rest.split('-').nth(1).and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if pid != std::process::id() && !pid_alive(pid) {
                let _ = ip(&["netns", "del", name]);
            }
        }
    }
}

/// Two namespaces joined by a veth pair: `outside` (the scanner) and `sensor`.
struct Pair {
    _guard: Netns,
    ns_out: String,
    ns_sensor: String,
    veth_sensor: String,
}

/// Creates the pair. `tag` is one character that keeps the names of concurrent tests apart.
fn make_pair(tag: &str, v4: bool, v6: bool) -> Result<Pair, String> {
    remove_stale_namespaces();
    let pid = std::process::id();
    let ns_out = format!("{NS_PREFIX}{tag}-{pid}-o");
    let ns_sensor = format!("{NS_PREFIX}{tag}-{pid}-s");
    // Interface names have at most 15 bytes: "ts" + tag + pid (at most 7 digits) + side.
    let veth_out = format!("ts{tag}{pid}o");
    let veth_sensor = format!("ts{tag}{pid}s");
    let mut guard = Netns { names: Vec::new() };
    for ns in [&ns_out, &ns_sensor] {
        ip(&["netns", "add", ns])?;
        guard.names.push(ns.clone());
    }
    ip(&[
        "link",
        "add",
        &veth_out,
        "netns",
        &ns_out,
        "type",
        "veth",
        "peer",
        "name",
        &veth_sensor,
        "netns",
        &ns_sensor,
    ])?;
    for (ns, dev) in [(&ns_out, &veth_out), (&ns_sensor, &veth_sensor)] {
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        ip(&["-n", ns, "link", "set", dev, "up"])?;
    }
    if v4 {
        let out4 = format!("{OUT4}/32");
        let sensor4 = format!("{SENSOR4}/24");
        ip(&["-n", &ns_out, "addr", "add", &out4, "dev", &veth_out])?;
        ip(&[
            "-n",
            &ns_out,
            "route",
            "add",
            "198.51.100.0/24",
            "dev",
            &veth_out,
        ])?;
        ip(&[
            "-n",
            &ns_sensor,
            "addr",
            "add",
            &sensor4,
            "dev",
            &veth_sensor,
        ])?;
        ip(&["-n", &ns_sensor, "route", "add", &out4, "dev", &veth_sensor])?;
    }
    if v6 {
        // nodad: usable at once, no duplicate address detection wait.
        let out6 = format!("{OUT6}/128");
        let sensor6 = format!("{SENSOR6}/64");
        ip(&[
            "-n", &ns_out, "addr", "add", &out6, "dev", &veth_out, "nodad",
        ])?;
        ip(&[
            "-n",
            &ns_out,
            "route",
            "add",
            "2001:db8:100::/48",
            "dev",
            &veth_out,
        ])?;
        ip(&[
            "-n",
            &ns_sensor,
            "addr",
            "add",
            &sensor6,
            "dev",
            &veth_sensor,
            "nodad",
        ])?;
        ip(&["-n", &ns_sensor, "route", "add", &out6, "dev", &veth_sensor])?;
    }
    Ok(Pair {
        _guard: guard,
        ns_out,
        ns_sensor,
        veth_sensor,
    })
}

// ---------------------------------------------------------------------------------------------
// The sensor process.

/// A running `tsusen run`; on drop (a failed check) it is stopped: SIGTERM, then SIGKILL.
struct Sensor {
    child: Option<Child>,
    out: PathBuf,
    err: PathBuf,
}

impl Sensor {
    fn start(ns: &str, args: &[&str], dir: &Path) -> Sensor {
        let out = dir.join("sensor.stdout");
        let err = dir.join("sensor.stderr");
        // `ip netns exec` enters the namespace and execs the program: the child's pid is the
        // sensor's own.
        // Each run keeps its snapshot in its own directory, not the system's default.
        let state = dir.join("state.bin");
        let child = Command::new("ip")
            .args(["netns", "exec", ns, BIN, "run"])
            .args(args)
            .arg("--state-file")
            .arg(&state)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).expect("sensor stdout file"))
            .stderr(fs::File::create(&err).expect("sensor stderr file"))
            .spawn()
            .expect("start tsusen run");
        Sensor {
            child: Some(child),
            out,
            err,
        }
    }

    fn output(&self) -> String {
        format!(
            "sensor stdout:\n{}\nsensor stderr:\n{}",
            fs::read_to_string(&self.out).unwrap_or_default(),
            fs::read_to_string(&self.err).unwrap_or_default()
        )
    }

    /// Fails the test if the sensor has already exited.
    fn assert_running(&mut self, when: &str) {
        let child = self.child.as_mut().expect("sensor child");
        if let Ok(Some(st)) = child.try_wait() {
            self.child = None;
            panic!("tsusen run exited ({st}) {when}\n{}", self.output());
        }
    }

    /// Sends SIGTERM and waits for the exit, at most `limit`.
    fn stop(&mut self, limit: Duration) -> Result<ExitStatus, String> {
        let mut child = self.child.take().expect("sensor child");
        signal(child.id(), "TERM");
        let start = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(st)) => return Ok(st),
                Ok(None) if start.elapsed() > limit => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "tsusen run did not exit within {limit:?} of SIGTERM (killed)"
                    ));
                }
                Ok(None) => thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(format!("waiting for tsusen run: {e}")),
            }
        }
    }
}

impl Drop for Sensor {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop(Duration::from_secs(5));
        }
    }
}

/// Sends a signal to one process, by its pid.
fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status();
}

/// Waits until a packet socket is open in the namespace (the sensor's capture socket), at most
/// `limit`. Returns false if none appeared (the caller goes on after a pause).
fn wait_packet_socket(ns: &str, sensor: &mut Sensor, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        sensor.assert_running("while starting");
        if let Ok(f) = run_timeout(
            Command::new("ip").args(["netns", "exec", ns, "cat", "/proc/net/packet"]),
            Duration::from_secs(5),
        ) {
            if f.stdout.lines().skip(1).any(|l| !l.trim().is_empty()) {
                // Socket made; give the sensor a moment to bind it and enter its loop.
                thread::sleep(Duration::from_millis(500));
                sensor.assert_running("just after opening its capture socket");
                return true;
            }
        }
        thread::sleep(Duration::from_millis(100));
    }
    false
}

// ---------------------------------------------------------------------------------------------
// Daily CSV files.

#[derive(Debug, Clone)]
struct Row {
    proto: String,
    port: String,
    dst: String,
    src: String,
    first: u64,
    last: u64,
    count: u64,
}

/// Reads every `*.csv` in `dir`, checking the header, the fields, one row per key and the sort
/// order. Returns the rows by file name.
fn read_csvs(dir: &Path) -> BTreeMap<String, Vec<Row>> {
    read_csvs_as(dir, true)
}

/// The day files as they are; `whole` when the sensor has stopped, so each file is one sorted
/// run. While it runs, each periodic flush appends a sorted run of its own, and a key may
/// come again in a later run.
fn read_csvs_as(dir: &Path, whole: bool) -> BTreeMap<String, Vec<Row>> {
    let mut files = BTreeMap::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return files;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".csv") {
            continue;
        }
        let text = fs::read_to_string(e.path()).unwrap_or_else(|e| panic!("read {name}: {e}"));
        files.insert(name.clone(), parse_csv(&name, &text, whole));
    }
    files
}

fn parse_csv(name: &str, text: &str, whole: bool) -> Vec<Row> {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(HEADER), "{name}: header line");
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "{name}: last line not ended"
    );
    let mut rows: Vec<Row> = Vec::new();
    for (i, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(
            f.len(),
            7,
            "{name} line {}: 7 fields expected: {line:?}",
            i + 2
        );
        let num = |s: &str| -> u64 {
            s.parse()
                .unwrap_or_else(|_| panic!("{name} line {}: bad number {s:?}", i + 2))
        };
        let row = Row {
            proto: f[0].to_string(),
            port: f[1].to_string(),
            dst: f[2].to_string(),
            src: f[3].to_string(),
            first: num(f[4]),
            last: num(f[5]),
            count: num(f[6]),
        };
        assert!(row.count >= 1, "{name} line {}: count 0", i + 2);
        assert!(
            row.first <= row.last,
            "{name} line {}: first_seen > last_seen",
            i + 2
        );
        if let Some(prev) = rows.last().filter(|_| whole) {
            assert!(
                sort_key(prev) < sort_key(&row),
                "{name} line {}: rows out of order or key repeated:\n{prev:?}\n{row:?}",
                i + 2
            );
        }
        rows.push(row);
    }
    rows
}

type SortKey = (String, i64, (u8, u128), (u8, u128));

/// proto text, dst_port as a number (`-` first), dst_ip, src_ip (IPv4 before IPv6).
fn sort_key(r: &Row) -> SortKey {
    fn addr(s: &str) -> (u8, u128) {
        match s.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(a)) => (4, u32::from(a) as u128),
            Ok(std::net::IpAddr::V6(a)) => (6, u128::from(a)),
            Err(_) => panic!("bad address in CSV: {s:?}"),
        }
    }
    let port = if r.port == "-" {
        -1
    } else {
        r.port
            .parse()
            .unwrap_or_else(|_| panic!("bad port: {:?}", r.port))
    };
    (r.proto.clone(), port, addr(&r.dst), addr(&r.src))
}

fn find<'a>(rows: &'a [Row], proto: &str, port: &str, dst: &str, src: &str) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.proto == proto && r.port == port && r.dst == dst && r.src == src)
}

fn show(rows: &[Row]) -> String {
    rows.iter()
        .map(|r| {
            format!(
                "{} {} {} {} {} {} {}\n",
                r.proto, r.port, r.dst, r.src, r.first, r.last, r.count
            )
        })
        .collect()
}

/// Every row of every CSV in `dir`, after checking that today's file (UTC) is among them (or the
/// previous day's, if the test ran across midnight).
fn rows_of_today(dir: &Path, started: u64) -> Vec<Row> {
    let files = read_csvs(dir);
    let today = format!("{}.csv", utc_date(now_secs()));
    let first_day = format!("{}.csv", utc_date(started));
    assert!(
        files.contains_key(&today) || files.contains_key(&first_day),
        "no {today} in {}: files {:?}",
        dir.display(),
        files.keys().collect::<Vec<_>>()
    );
    for name in files.keys() {
        assert!(
            *name == today || *name == first_day,
            "unexpected file {name} (today is {today})"
        );
    }
    files.into_values().flatten().collect()
}

fn tool_skip(tools: &[&str]) -> Option<String> {
    if !is_root() {
        return Some("not root: network namespaces need root".into());
    }
    missing_tool(tools).map(|t| format!("`{t}` not installed (`.ci/run` installs it)"))
}

// ---------------------------------------------------------------------------------------------
// The tests.

/// IPv4: nmap SYN scan, hping3 SYN/UDP/ICMP, periodic flush (2 s) and the flush on SIGTERM.
#[test]
fn live_ipv4_scan_is_counted() {
    ipv4_scan("live_ipv4_scan_is_counted", false);
}

/// The same traffic through `--interface any`: tsusen's own cooked socket on every interface of
/// the sensor's namespace (lo and the veth), where the sensor's replies are seen leaving.
#[test]
fn live_ipv4_scan_on_any_is_counted() {
    ipv4_scan("live_ipv4_scan_on_any_is_counted", true);
}

fn ipv4_scan(name: &str, any: bool) {
    if let Some(why) = tool_skip(&["ip", "nmap", "hping3"]) {
        say!("SKIP {name}: {why}");
        return;
    }
    let started = now_secs();
    let pair = match make_pair(if any { "a" } else { "4" }, true, false) {
        Ok(p) => p,
        Err(e) => panic!("network namespace set-up failed: {e}"),
    };
    let tmp = TempDir::new(if any { "any" } else { "v4" });
    let logs = tmp.path().join("log");
    fs::create_dir_all(&logs).unwrap();
    let logs_s = logs.to_str().unwrap().to_string();
    let mut sensor = Sensor::start(
        &pair.ns_sensor,
        &[
            "--interface",
            if any { "any" } else { &pair.veth_sensor },
            "--log-dir",
            &logs_s,
            "--local",
            "198.51.100.0/24",
            "--write-period",
            "2",
        ],
        tmp.path(),
    );
    if !wait_packet_socket(&pair.ns_sensor, &mut sensor, Duration::from_secs(10)) {
        say!("note: no packet socket seen in the sensor namespace after 10 s; going on");
    }

    // Warm-up: one SYN to port 9 a second until the periodic flush shows it. This proves the
    // capture is up and the --write-period flush works while the sensor runs.
    let t0 = Instant::now();
    let mut warm = 0u64;
    let hping = |args: &[&str]| {
        let mut a = vec!["hping3", "-q", "-i", "u200000"];
        a.extend_from_slice(args);
        a.push(SENSOR4);
        in_netns(&pair.ns_out, &a, Duration::from_secs(30));
    };
    loop {
        hping(&["-S", "-p", "9", "-c", "1"]);
        warm += 1;
        thread::sleep(Duration::from_secs(1));
        sensor.assert_running("during the warm-up");
        let rows: Vec<Row> = read_csvs_as(&logs, false).into_values().flatten().collect();
        if find(&rows, "TCP", "9", SENSOR4, OUT4).is_some() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "after {warm} SYNs to port 9 over {:?}, no CSV row for them in {} \
             (capture not working, or no flush every --write-period 2 s)\nfiles: {:?}\n{}",
            t0.elapsed(),
            logs.display(),
            read_csvs_as(&logs, false).keys().collect::<Vec<_>>(),
            sensor.output()
        );
    }
    eprintln!(
        "live v4: warm-up row seen after {warm} SYN(s), {:?}",
        t0.elapsed()
    );

    // The traffic.
    in_netns(
        &pair.ns_out,
        &[
            "nmap",
            "-sS",
            "-Pn",
            "-n",
            "--max-retries",
            "1",
            "--host-timeout",
            "30s",
            "-p",
            "22,80,443,8080",
            SENSOR4,
        ],
        Duration::from_secs(60),
    );
    hping(&["-S", "-p", "3389", "-c", "3"]);
    hping(&["--udp", "-p", "53", "-c", "2"]);
    hping(&["-1", "-c", "2"]);
    thread::sleep(Duration::from_millis(300));
    sensor.assert_running("after the traffic");

    let st = sensor
        .stop(Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("{e}\n{}", sensor.output()));
    let ended = now_secs();
    eprintln!("live v4: tsusen run exit after SIGTERM: {st}");
    assert!(
        st.code().is_some(),
        "tsusen run was killed by the signal instead of handling SIGTERM ({st})\n{}",
        sensor.output()
    );

    let rows = rows_of_today(&logs, started);
    eprintln!("live v4 rows:\n{}", show(&rows));
    let ctx = || format!("rows:\n{}\n{}", show(&rows), sensor.output());
    for port in ["22", "80", "443", "8080"] {
        let r = find(&rows, "TCP", port, SENSOR4, OUT4)
            .unwrap_or_else(|| panic!("no TCP {port} row from the nmap scan\n{}", ctx()));
        assert!(r.count >= 1);
    }
    let r = find(&rows, "TCP", "9", SENSOR4, OUT4).unwrap();
    assert!(
        r.count >= 1 && r.count <= warm,
        "TCP 9: {warm} SYNs sent, count {}\n{}",
        r.count,
        ctx()
    );
    for (proto, port, want) in [("TCP", "3389", 3), ("UDP", "53", 2), ("ICMP", "-", 2)] {
        let r = find(&rows, proto, port, SENSOR4, OUT4)
            .unwrap_or_else(|| panic!("no {proto} {port} row from hping3\n{}", ctx()));
        assert_eq!(r.count, want, "{proto} {port}: count\n{}", ctx());
    }
    for r in &rows {
        // Replies (RST, ICMP port unreachable, echo reply) go the other way: never counted.
        assert!(
            r.src == OUT4 && r.dst == SENSOR4,
            "unexpected row {r:?}\n{}",
            ctx()
        );
        assert!(
            r.first + 1 >= started && r.last <= ended + 1,
            "row times outside the test's run ({started}..{ended}): {r:?}"
        );
    }
    assert_eq!(
        rows.len(),
        8,
        "rows: 4 nmap ports, TCP 9, TCP 3389, UDP 53, ICMP\n{}",
        ctx()
    );
    drop(sensor);
    drop(pair);
}

/// IPv6: nmap -6 SYN and UDP scan, ICMPv6 echo; a long write period, so the rows reach the file
/// only through the flush on SIGTERM.
#[test]
fn live_ipv6_scan_is_counted() {
    if let Some(why) = tool_skip(&["ip", "nmap"]) {
        say!("SKIP live_ipv6_scan_is_counted: {why}");
        return;
    }
    let started = now_secs();
    let pair = match make_pair("6", false, true) {
        Ok(p) => p,
        Err(e) => panic!("network namespace set-up failed: {e}"),
    };
    let tmp = TempDir::new("v6");
    let logs = tmp.path().join("log");
    fs::create_dir_all(&logs).unwrap();
    let logs_s = logs.to_str().unwrap().to_string();
    let mut sensor = Sensor::start(
        &pair.ns_sensor,
        &[
            "--interface",
            &pair.veth_sensor,
            "--log-dir",
            &logs_s,
            "--local",
            "2001:db8:100::/48",
            "--write-period",
            "3600",
        ],
        tmp.path(),
    );
    if !wait_packet_socket(&pair.ns_sensor, &mut sensor, Duration::from_secs(10)) {
        say!("note: no packet socket seen in the sensor namespace after 10 s; going on");
        thread::sleep(Duration::from_secs(2));
    }
    sensor.assert_running("before the traffic");

    in_netns(
        &pair.ns_out,
        &[
            "nmap",
            "-6",
            "-sS",
            "-sU",
            "-Pn",
            "-n",
            "--max-retries",
            "1",
            "--host-timeout",
            "30s",
            "-p",
            "T:22,80,443,U:53",
            SENSOR6,
        ],
        Duration::from_secs(60),
    );
    let ping = which("ping").is_some();
    if ping {
        in_netns(
            &pair.ns_out,
            &[
                "ping", "-6", "-n", "-c", "2", "-i", "0.2", "-W", "2", SENSOR6,
            ],
            Duration::from_secs(20),
        );
    } else {
        say!("note: `ping` not installed: ICMPv6 echo not tested");
    }
    thread::sleep(Duration::from_millis(300));
    sensor.assert_running("after the traffic");
    assert!(
        read_csvs(&logs).values().all(|r| r.is_empty()),
        "rows written before SIGTERM though --write-period is 3600"
    );

    let st = sensor
        .stop(Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("{e}\n{}", sensor.output()));
    let ended = now_secs();
    eprintln!("live v6: tsusen run exit after SIGTERM: {st}");
    assert!(
        st.code().is_some(),
        "tsusen run was killed by the signal instead of handling SIGTERM ({st})\n{}",
        sensor.output()
    );

    let rows = rows_of_today(&logs, started);
    eprintln!("live v6 rows:\n{}", show(&rows));
    let ctx = || format!("rows:\n{}\n{}", show(&rows), sensor.output());
    for (proto, port) in [("TCP", "22"), ("TCP", "80"), ("TCP", "443"), ("UDP", "53")] {
        find(&rows, proto, port, SENSOR6, OUT6)
            .unwrap_or_else(|| panic!("no {proto} {port} row from nmap -6\n{}", ctx()));
    }
    if ping {
        let r = find(&rows, "ICMPV6", "-", SENSOR6, OUT6)
            .unwrap_or_else(|| panic!("no ICMPV6 - row from ping -6\n{}", ctx()));
        assert_eq!(r.count, 2, "ICMPV6 echo requests: count\n{}", ctx());
    }
    for r in &rows {
        // Neighbour discovery, MLD reports, router solicitations, replies: never counted.
        assert!(
            r.src == OUT6 && r.dst == SENSOR6,
            "unexpected row {r:?}\n{}",
            ctx()
        );
        assert!(
            r.first + 1 >= started && r.last <= ended + 1,
            "row times outside the test's run ({started}..{ended}): {r:?}"
        );
    }
    assert_eq!(rows.len(), 4 + usize::from(ping), "rows\n{}", ctx());
    drop(sensor);
    drop(pair);
}

/// Splits a message into words that may be interface names.
fn words(s: &str) -> Vec<&str> {
    s.split(|c: char| !(c.is_ascii_alphanumeric() || "_.-".contains(c)))
        .filter(|w| !w.is_empty())
        .collect()
}

/// `--interface doesnotexist0` → exit 1, a message naming it and listing the interfaces.
#[test]
fn live_unknown_interface_is_refused() {
    let tmp = TempDir::new("if");
    let logs = tmp.path().join("log");
    fs::create_dir_all(&logs).unwrap();
    let logs_s = logs.to_str().unwrap().to_string();
    let args = [
        "run",
        "--interface",
        "doesnotexist0",
        "--log-dir",
        &logs_s,
        "--local",
        "198.51.100.0/24",
    ];
    let limit = Duration::from_secs(15);

    let (f, expected): (Finished, Vec<String>) = if is_root() && which("ip").is_some() {
        // In a namespace of our own, the interfaces are known: lo and a veth pair.
        let pid = std::process::id();
        let ns = format!("{NS_PREFIX}i-{pid}-x");
        remove_stale_namespaces();
        ip(&["netns", "add", &ns]).expect("create namespace");
        let _guard = Netns {
            names: vec![ns.clone()],
        };
        let (a, b) = (format!("tsia{pid}"), format!("tsib{pid}"));
        ip(&[
            "-n", &ns, "link", "add", &a, "type", "veth", "peer", "name", &b,
        ])
        .expect("veth pair");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns, BIN]).args(args);
        let f = run_timeout(&mut cmd, limit).unwrap_or_else(|e| panic!("{e}"));
        (f, vec!["lo".into(), a, b])
    } else {
        say!("note: not root: unknown interface tested in this namespace");
        let f = run_timeout(Command::new(BIN).args(args), limit).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<String> = fs::read_dir("/sys/class/net")
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        // Interfaces may come and go; one of them named is enough here.
        let seen: Vec<String> = names
            .into_iter()
            .filter(|n| words(&f.stderr).contains(&n.as_str()))
            .take(1)
            .collect();
        assert!(
            !seen.is_empty(),
            "the message lists no interface of /sys/class/net:\n{}",
            f.stderr
        );
        (f, seen)
    };
    eprintln!(
        "unknown interface: exit {}, stderr: {}",
        f.status,
        f.stderr.trim()
    );
    assert_eq!(
        f.status.code(),
        Some(1),
        "exit code for an unknown interface\nstdout:\n{}\nstderr:\n{}",
        f.stdout,
        f.stderr
    );
    assert!(
        f.stderr.contains("doesnotexist0"),
        "the message does not name the interface:\n{}",
        f.stderr
    );
    let w = words(&f.stderr);
    for name in &expected {
        assert!(
            w.contains(&name.as_str()),
            "the message does not list interface {name}:\n{}",
            f.stderr
        );
    }
}

/// Without root or CAP_NET_RAW: exit 1 with a one-line message saying what is needed.
#[test]
fn live_without_permission_is_refused() {
    let (uid, caps) = uid_and_caps();
    let dir = TempDir::new("perm");
    let logs = dir.path().join("log");
    fs::create_dir_all(&logs).unwrap();
    let limit = Duration::from_secs(15);

    let mut runs: Vec<(String, Finished)> = Vec::new();
    let interfaces: [&[&str]; 2] = [&["--interface", "lo"], &[]];
    if uid == 0 {
        // Drop to nobody. The binary and the log directory are copied/opened up so that nobody
        // can reach them (the checkout may sit under a private home directory).
        let bin = dir.path().join("tsusen");
        fs::copy(BIN, &bin).expect("copy the binary");
        chmod(dir.path(), "755");
        chmod(&bin, "755");
        chmod(&logs, "1777");
        let (bin_s, logs_s) = (bin.to_str().unwrap(), logs.to_str().unwrap());
        let prefix: Vec<String> = if which("setpriv").is_some() {
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--",
            ]
            .map(String::from)
            .to_vec()
        } else if which("su").is_some() {
            Vec::new()
        } else {
            say!("SKIP live_without_permission_is_refused: neither setpriv nor su to drop root");
            return;
        };
        for iface in interfaces {
            let mut sensor_args = vec![bin_s, "run"];
            sensor_args.extend_from_slice(iface);
            sensor_args.extend_from_slice(&["--log-dir", logs_s, "--local", "198.51.100.0/24"]);
            let mut cmd = if prefix.is_empty() {
                let mut c = Command::new("su");
                c.args(["nobody", "-s", "/bin/sh", "-c", &sensor_args.join(" ")]);
                c
            } else {
                let mut c = Command::new(&prefix[0]);
                c.args(&prefix[1..]).args(&sensor_args);
                c
            };
            let shown = format!("{cmd:?}");
            runs.push((
                shown,
                run_timeout(&mut cmd, limit).unwrap_or_else(|e| panic!("{e}")),
            ));
        }
    } else if caps & CAP_NET_RAW == 0 {
        let logs_s = logs.to_str().unwrap();
        for iface in interfaces {
            let mut cmd = Command::new(BIN);
            cmd.arg("run")
                .args(iface)
                .args(["--log-dir", logs_s, "--local", "198.51.100.0/24"]);
            let shown = format!("{cmd:?}");
            runs.push((
                shown,
                run_timeout(&mut cmd, limit).unwrap_or_else(|e| panic!("{e}")),
            ));
        }
    } else {
        say!("SKIP live_without_permission_is_refused: not root but holding CAP_NET_RAW");
        return;
    }

    for (shown, f) in runs {
        eprintln!(
            "no permission: {shown}: exit {}, stderr: {}",
            f.status,
            f.stderr.trim()
        );
        assert_eq!(
            f.status.code(),
            Some(1),
            "{shown}: exit code without permission\nstdout:\n{}\nstderr:\n{}",
            f.stdout,
            f.stderr
        );
        let lines: Vec<&str> = f.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(
            lines.len(),
            1,
            "{shown}: a one-line message expected:\n{}",
            f.stderr
        );
        let lower = lines[0].to_lowercase();
        assert!(
            lower.contains("root") || lower.contains("cap_net_raw"),
            "{shown}: the message does not say it needs root or CAP_NET_RAW:\n{}",
            f.stderr
        );
    }
}

fn chmod(p: &Path, mode: &str) {
    let st = Command::new("chmod").arg(mode).arg(p).status();
    assert!(
        st.map(|s| s.success()).unwrap_or(false),
        "chmod {mode} {}",
        p.display()
    );
}

/// A figure of `/proc/PID/status` (such as VmHWM, the peak resident set), in KiB.
fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim_start_matches(':').split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// CPU seconds (user + system) a process has used.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// A metric of the sensor's `/metrics`, with its labels (`name{type="winscan"}`).
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// A flood of spoofed sources (hping3 --rand-source --flood, SYNs to 445 so that every packet
/// is a new winscan offender) into `tsusen run` with every detector on: the sensor keeps going,
/// its memory stays bounded, events are rate limited per type. Prints peak RSS, CPU and events.
#[test]
fn live_spoofed_flood_with_alerts() {
    if let Some(why) = tool_skip(&["ip", "hping3", "curl"]) {
        say!("SKIP live_spoofed_flood_with_alerts: {why}");
        return;
    }
    let pair = make_pair("f", true, false)
        .unwrap_or_else(|e| panic!("network namespace set-up failed: {e}"));
    let tmp = TempDir::new("flood");
    let logs = tmp.path().join("log");
    fs::create_dir_all(&logs).unwrap();
    let events = tmp.path().join("events.jsonl");
    let conf = tmp.path().join("tsusen.conf");
    fs::write(
        &conf,
        format!("EVENTS_FILE {}\nSYSLOG no\n", events.display()),
    )
    .unwrap();
    let mut sensor = Sensor::start(
        &pair.ns_sensor,
        &[
            "--config",
            conf.to_str().unwrap(),
            "--interface",
            &pair.veth_sensor,
            "--log-dir",
            logs.to_str().unwrap(),
            "--local",
            "198.51.100.0/24",
            "--write-period",
            "5",
        ],
        tmp.path(),
    );
    if !wait_packet_socket(&pair.ns_sensor, &mut sensor, Duration::from_secs(10)) {
        say!("note: no packet socket seen in the sensor namespace after 10 s; going on");
    }
    let pid = sensor.child.as_ref().unwrap().id();
    let rss_before = proc_status_kib(pid, "VmRSS").unwrap_or(0);
    let cpu_before = cpu_seconds(pid).unwrap_or(0.0);
    let secs = 15;
    let flood = run_timeout(
        Command::new("ip").args([
            "netns",
            "exec",
            &pair.ns_out,
            "timeout",
            "-s",
            "INT",
            &secs.to_string(),
            "hping3",
            "--flood",
            "--rand-source",
            "-S",
            "-p",
            "445",
            SENSOR4,
        ]),
        Duration::from_secs(secs + 30),
    )
    .unwrap_or_else(|e| panic!("hping3: {e}"));
    // Let the sensor catch up, then read its figures.
    thread::sleep(Duration::from_secs(3));
    sensor.assert_running("after the flood");
    let metrics = run_timeout(
        Command::new("ip").args([
            "netns",
            "exec",
            &pair.ns_sensor,
            "curl",
            "-s",
            "-m",
            "10",
            "http://127.0.0.1:8339/metrics",
        ]),
        Duration::from_secs(15),
    )
    .map(|f| f.stdout)
    .unwrap_or_default();
    let hwm = proc_status_kib(pid, "VmHWM").unwrap_or(0);
    let cpu = cpu_seconds(pid).unwrap_or(0.0) - cpu_before;
    let st = sensor.stop(Duration::from_secs(30)).expect("sensor stops");
    assert!(st.success(), "{}", sensor.output());
    let text = fs::read_to_string(&events).unwrap_or_default();
    let count = |t: &str| {
        text.lines()
            .filter(|l| l.starts_with(&format!("{{\"type\":\"{t}\"")))
            .count()
    };
    let packets = metric(&metrics, "tsusen_packets_total");
    let winscan = metric(&metrics, "tsusen_events_total{type=\"winscan\"}");
    let suppressed = metric(&metrics, "tsusen_events_suppressed_total{type=\"winscan\"}");
    let dropped = metric(&metrics, "tsusen_alerts_dropped_total{sink=\"queue\"}");
    say!(
        "live flood: hping3 --flood --rand-source -S -p 445 for {secs} s: {} ({}); sensor saw {packets} \
         packets; peak RSS {hwm} KiB (before the flood {rss_before} KiB); CPU {cpu:.1} s; \
         winscan events raised {winscan}, suppressed {suppressed}, queue drops {dropped}; in the \
         events file: winscan {}, scan {}, portscan {}, tool {}, spike {}",
        flood.stderr.lines().rev().find(|l| l.contains("packets")).unwrap_or(""),
        flood.status,
        count("winscan"),
        count("scan"),
        count("portscan"),
        count("tool"),
        count("spike"),
    );
    assert!(packets > 1000, "the flood reached the sensor\n{metrics}");
    assert!(hwm < 256 * 1024, "peak RSS {hwm} KiB");
    // 600 per type and minute: the flood spans at most two minutes of the clock... or three.
    assert!(count("winscan") <= 3 * 600, "{}", count("winscan"));
    assert!(count("winscan") > 0);
}

/// Spikes live: five days of history files (3 to 5 sources a day on telnet), then 60 spoofed
/// sources on telnet today into `tsusen run`: one `spike` event (the baseline is read on a
/// helper thread at one flush and judged at a later one), and only one however many flushes.
#[test]
fn live_spike_event_from_run() {
    if let Some(why) = tool_skip(&["ip", "hping3"]) {
        say!("SKIP live_spike_event_from_run: {why}");
        return;
    }
    let now = now_secs();
    if now % 86_400 > 86_400 - 120 {
        say!("SKIP live_spike_event_from_run: too close to midnight UTC");
        return;
    }
    let pair = make_pair("k", true, false)
        .unwrap_or_else(|e| panic!("network namespace set-up failed: {e}"));
    let tmp = TempDir::new("spike");
    let logs = tmp.path().join("log");
    fs::create_dir_all(&logs).unwrap();
    for d in 1..=5u64 {
        let t = now - d * 86_400;
        let mut text = format!("{HEADER}\n");
        for s in 0..(3 + d % 3) {
            text.push_str(&format!("TCP 23 {SENSOR4} 192.0.2.{} {t} {t} 1\n", 1 + s));
        }
        fs::write(logs.join(format!("{}.csv", utc_date(t))), text).unwrap();
    }
    let events = tmp.path().join("events.jsonl");
    let conf = tmp.path().join("tsusen.conf");
    fs::write(
        &conf,
        format!("EVENTS_FILE {}\nSYSLOG no\n", events.display()),
    )
    .unwrap();
    let mut sensor = Sensor::start(
        &pair.ns_sensor,
        &[
            "--config",
            conf.to_str().unwrap(),
            "--interface",
            &pair.veth_sensor,
            "--log-dir",
            logs.to_str().unwrap(),
            "--local",
            "198.51.100.0/24",
            "--write-period",
            "1",
        ],
        tmp.path(),
    );
    if !wait_packet_socket(&pair.ns_sensor, &mut sensor, Duration::from_secs(10)) {
        say!("note: no packet socket seen in the sensor namespace after 10 s; going on");
    }
    // 60 spoofed sources, one SYN each, 50 ms apart: three seconds of flushes. (hping3 exits 1
    // when nothing answers, which spoofed sources never get.)
    let hping = run_timeout(
        Command::new("ip").args([
            "netns",
            "exec",
            &pair.ns_out,
            "hping3",
            "-q",
            "-i",
            "u50000",
            "-c",
            "60",
            "--rand-source",
            "-S",
            "-p",
            "23",
            SENSOR4,
        ]),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("hping3: {e}"));
    assert!(
        hping.stderr.contains("60 packets transmitted"),
        "{}",
        hping.stderr
    );
    let spikes = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("{\"type\":\"spike\""))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(15)
        && spikes(&fs::read_to_string(&events).unwrap_or_default()).is_empty()
    {
        sensor.assert_running("waiting for the spike");
        thread::sleep(Duration::from_millis(200));
    }
    // A few more flushes: still one.
    thread::sleep(Duration::from_secs(3));
    let st = sensor.stop(Duration::from_secs(30)).expect("sensor stops");
    assert!(st.success(), "{}", sensor.output());
    let got = spikes(&fs::read_to_string(&events).unwrap_or_default());
    say!("live spike: {got:?}");
    assert_eq!(got.len(), 1, "{}", sensor.output());
    assert!(got[0].contains("\"port\":23"), "{}", got[0]);
    assert!(got[0].contains("\"median\":4"), "{}", got[0]);
    assert!(got[0].contains("\"history_days\":5"), "{}", got[0]);
}

/// CAPTURE_METHOD ring (TPACKET_V3 with the kernel filter) and pnet read the same traffic on
/// the same interface side by side, and write the same rows: SYN probes, a connect scan, a
/// spoofed SYN burst, UDP and ICMP count; ACK and FIN probes (which the ring's filter keeps in
/// the kernel, or passes for the detectors) never do.
#[test]
fn ring_and_pnet_write_the_same_rows() {
    if let Some(why) = tool_skip(&["ip", "nmap", "hping3"]) {
        say!("SKIP ring_and_pnet_write_the_same_rows: {why}");
        return;
    }
    let started = now_secs();
    let pair = make_pair("r", true, false)
        .unwrap_or_else(|e| panic!("network namespace set-up failed: {e}"));
    let tmp = TempDir::new("ring");
    let mut sensors = Vec::new();
    for (method, port) in [("ring", "18339"), ("pnet", "18340")] {
        let dir = tmp.path().join(method);
        let logs = dir.join("log");
        fs::create_dir_all(&logs).unwrap();
        let conf = dir.join("tsusen.conf");
        fs::write(
            &conf,
            format!("CAPTURE_METHOD {method}\nHTTP_ADDRESS 127.0.0.1\nHTTP_PORT {port}\n"),
        )
        .unwrap();
        let mut sensor = Sensor::start(
            &pair.ns_sensor,
            &[
                "--config",
                conf.to_str().unwrap(),
                "--interface",
                &pair.veth_sensor,
                "--log-dir",
                logs.to_str().unwrap(),
                "--local",
                "198.51.100.0/24",
            ],
            &dir,
        );
        if !wait_packet_socket(&pair.ns_sensor, &mut sensor, Duration::from_secs(10)) {
            say!("note: no packet socket seen for {method} after 10 s; going on");
        }
        sensors.push((method, sensor, logs));
    }
    thread::sleep(Duration::from_secs(1));
    let hping = |args: &[&str]| {
        let mut a = vec!["hping3", "-q"];
        a.extend_from_slice(args);
        a.push(SENSOR4);
        in_netns(&pair.ns_out, &a, Duration::from_secs(60));
    };
    hping(&["-i", "u100000", "-S", "-p", "25", "-c", "3"]);
    hping(&["-i", "u100000", "-A", "-p", "26", "-c", "3"]);
    hping(&["-i", "u100000", "-F", "-p", "27", "-c", "3"]);
    hping(&["-i", "u100000", "--udp", "-p", "161", "-c", "2"]);
    hping(&["-i", "u100000", "-1", "-c", "2"]);
    // No replies come back to spoofed sources: hping3 exits 1 on "100% packet loss".
    let f = run_timeout(
        Command::new("ip").args([
            "netns",
            "exec",
            &pair.ns_out,
            "hping3",
            "-q",
            "-i",
            "u1000",
            "--rand-source",
            "-S",
            "-p",
            "23",
            "-c",
            "1500",
            SENSOR4,
        ]),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("hping3 --rand-source: {e}"));
    assert!(
        f.stdout.contains("1500 packets transmitted")
            || f.stderr.contains("1500 packets transmitted"),
        "hping3 --rand-source did not send its packets:\n{}\n{}",
        f.stdout,
        f.stderr
    );
    in_netns(
        &pair.ns_out,
        &[
            "nmap",
            "-sT",
            "-Pn",
            "-n",
            "--max-retries",
            "1",
            "-p",
            "21,22,80",
            SENSOR4,
        ],
        Duration::from_secs(60),
    );
    thread::sleep(Duration::from_millis(500));
    let mut results = Vec::new();
    for (method, mut sensor, logs) in sensors {
        sensor.assert_running("after the traffic");
        let st = sensor
            .stop(Duration::from_secs(15))
            .unwrap_or_else(|e| panic!("{method}: {e}\n{}", sensor.output()));
        assert!(st.success(), "{method}: exit {st}\n{}", sensor.output());
        let out = sensor.output();
        assert!(
            out.contains(&format!("with {method}")),
            "{method}: the log does not say it captured with {method}\n{out}"
        );
        results.push((method, rows_of_today(&logs, started), out));
    }
    let key = |r: &Row| {
        (
            r.proto.clone(),
            r.port.clone(),
            r.dst.clone(),
            r.src.clone(),
        )
    };
    let (ring, pnet) = (&results[0].1, &results[1].1);
    let ctx = || {
        format!(
            "ring rows: {}\n{}\npnet rows: {}\n{}",
            ring.len(),
            results[0].2,
            pnet.len(),
            results[1].2
        )
    };
    assert!(
        find(ring, "TCP", "25", SENSOR4, OUT4).is_some_and(|r| r.count == 3),
        "{}",
        ctx()
    );
    for port in ["21", "22", "80"] {
        assert!(
            find(ring, "TCP", port, SENSOR4, OUT4).is_some(),
            "nmap -sT {port}: {}",
            ctx()
        );
    }
    assert!(
        find(ring, "UDP", "161", SENSOR4, OUT4).is_some_and(|r| r.count == 2),
        "{}",
        ctx()
    );
    assert!(
        find(ring, "ICMP", "-", SENSOR4, OUT4).is_some_and(|r| r.count == 2),
        "{}",
        ctx()
    );
    let spoofed = ring
        .iter()
        .filter(|r| r.port == "23")
        .map(|r| r.count)
        .sum::<u64>();
    assert_eq!(spoofed, 1500, "spoofed SYNs counted by the ring\n{}", ctx());
    for port in ["26", "27"] {
        assert!(
            ring.iter().all(|r| r.port != port),
            "ACK/FIN probes counted\n{}",
            ctx()
        );
    }
    assert_eq!(ring.len(), pnet.len(), "row counts differ\n{}", ctx());
    for (a, b) in ring.iter().zip(pnet.iter()) {
        assert_eq!(key(a), key(b), "keys differ\n{}", ctx());
        assert_eq!(a.count, b.count, "counts differ for {a:?} / {b:?}");
        // Kernel receive time against the time pnet read the frame: the same second, or the next.
        assert!(
            a.first.abs_diff(b.first) <= 1 && a.last.abs_diff(b.last) <= 1,
            "times differ: {a:?} / {b:?}"
        );
    }
    eprintln!(
        "ring and pnet: {} rows each, {} attempts",
        ring.len(),
        ring.iter().map(|r| r.count).sum::<u64>()
    );
    drop(pair);
}
