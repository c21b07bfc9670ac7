//! Side by side with the real scanlogd (Debian's package): the same scans, from real tools in a
//! network namespace, seen by scanlogd on the sensor host and, through a capture of the same
//! traffic, by `tsusen::detect::scan`. Both must report the same sources with the same ports,
//! the same report lines (time of day within a second), and the same flood control.
//! The capture also checks the tool fingerprints on the real tools. A second test replays
//! ESnet's curated scanner captures (`../shared/corpus/esnet-curated/attacks/scanners/`,
//! re-addressed to the sensor host with tcprewrite) with tcpreplay, the same way.
//!
//! Set-up: two network namespaces joined by a veth pair. In the sensor namespace, scanlogd runs
//! in a private mount namespace (and its own pid namespace, so it dies with the test) where a
//! tmpfs covers /dev and /run: /dev/log there is a bind mount of a Unix datagram socket this
//! test listens on, so the host's /dev/log is never touched; /run/scanlogd/empty is its chroot.
//! tcpdump captures the sensor end of the pair. The scanners (nmap -sS, hping3 SYN and FIN
//! scans from spoofed sources, masscan and zmap when installed) run in the outside namespace.
//!
//! Needs root, iproute2, util-linux (unshare, mount), scanlogd, nmap, hping3 and tcpdump (and
//! tcpreplay's tcprewrite and tcpreplay, and the corpus, for the second test); without them a
//! test prints `SKIP: <reason>` and passes. The two tests run one after the other. Every namespace and process it starts is
//! removed by a Drop guard, by pid; every wait is bounded.

use std::fs;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use tsusen::addr::Addr;
use tsusen::decode::{decode, Packet};
use tsusen::detect::fingerprint::{FingerprintParams, Fingerprinter, Tool};
use tsusen::detect::scan::{Report, ScanDetector, ScanParams, MORE_FOLLOW};
use tsusen::source::capfile::CaptureFile;

const SENSOR: [u8; 4] = [198, 51, 100, 10];
const SENSOR_S: &str = "198.51.100.10";
const NMAP_SRC: &str = "203.0.113.7";
const HPING_SYN_SRC: &str = "203.0.113.8";
const HPING_FIN_SRC: &str = "203.0.113.9";
const MASSCAN_SRC: &str = "203.0.113.11";
const ZMAP_SRC: &str = "203.0.113.12";
/// Six sources scanning one after the other: scanlogd's flood control.
const FLOOD_SRCS: [&str; 6] = [
    "203.0.113.20",
    "203.0.113.21",
    "203.0.113.22",
    "203.0.113.23",
    "203.0.113.24",
    "203.0.113.25",
];

macro_rules! say {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|r| r.split_whitespace().nth(1).map(|u| u == "0"))
        .unwrap_or(false)
}

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

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The live tests share scanlogd's flood control and the machine's two cores: one at a time.
static LIVE: Mutex<()> = Mutex::new(());

/// Runs a command to its end within `limit`; Err carries its output.
fn run(args: &[&str], limit: Duration) -> Result<String, String> {
    let shown = args.join(" ");
    let dir = std::env::temp_dir();
    let n = format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    );
    let out_p = dir.join(format!("tsusen-det-run-{n}.out"));
    let err_p = dir.join(format!("tsusen-det-run-{n}.err"));
    let mut child = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_p).map_err(|e| e.to_string())?)
        .stderr(fs::File::create(&err_p).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("cannot start `{shown}`: {e}"))?;
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("`{shown}` did not finish within {limit:?}: killed"));
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for `{shown}`: {e}")),
        }
    };
    let out = fs::read_to_string(&out_p).unwrap_or_default();
    let err = fs::read_to_string(&err_p).unwrap_or_default();
    let _ = fs::remove_file(&out_p);
    let _ = fs::remove_file(&err_p);
    if status.success() {
        Ok(out)
    } else {
        Err(format!("`{shown}` failed ({status}):\n{out}\n{err}"))
    }
}

fn ip(args: &[&str]) -> Result<String, String> {
    let mut v = vec!["ip"];
    v.extend_from_slice(args);
    run(&v, Duration::from_secs(15))
}

/// Runs a scanner in a namespace; its failure fails the test.
fn in_ns(ns: &str, args: &[&str], limit: Duration) {
    let mut v = vec!["ip", "netns", "exec", ns];
    v.extend_from_slice(args);
    if let Err(e) = run(&v, limit) {
        panic!("{e}");
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("tsusen-det-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).expect("temporary directory");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A process this test started, stopped by its pid on drop: SIGTERM, then SIGKILL.
struct Proc {
    child: Option<Child>,
    name: &'static str,
    /// Stop with SIGKILL at once (`unshare --fork` ignores SIGTERM while it waits; its
    /// `--kill-child` then takes the whole pid namespace down).
    kill_only: bool,
}

impl Proc {
    fn start(name: &'static str, args: &[&str], out: &Path, err: &Path) -> Proc {
        let child = Command::new(args[0])
            .args(&args[1..])
            .stdin(Stdio::null())
            .stdout(fs::File::create(out).expect("stdout file"))
            .stderr(fs::File::create(err).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            child: Some(child),
            name,
            kill_only: false,
        }
    }

    fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if self.kill_only {
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        say!("warning: {} did not stop on SIGTERM: killed", self.name);
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until `file` contains `text`, at most `limit`.
fn wait_for(file: &Path, text: &str, limit: Duration, p: &mut Proc) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if fs::read_to_string(file).unwrap_or_default().contains(text) {
            return Ok(());
        }
        if !p.running() {
            return Err(format!(
                "{} exited early: {}",
                p.name,
                fs::read_to_string(file).unwrap_or_default()
            ));
        }
        thread::sleep(Duration::from_millis(50));
    }
    Err(format!("{} not ready within {limit:?}", p.name))
}

// ---------------------------------------------------------------------------------------------
// Network namespaces.

struct Pair {
    out: String,
    sensor: String,
    veth_out: String,
    veth_sensor: String,
}

impl Drop for Pair {
    fn drop(&mut self) {
        for n in [&self.out, &self.sensor] {
            if let Err(e) = ip(&["netns", "del", n]) {
                say!("warning: could not remove network namespace {n}: {e}");
            }
        }
    }
}

/// Removes namespaces left by a run of this test that was killed before its guards ran.
fn remove_stale() {
    let Ok(list) = ip(&["netns", "list"]) else {
        return;
    };
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        if let Some(rest) = name.strip_prefix("tsusen-det-") {
            let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
            if let Some(pid) = pid {
                if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = ip(&["netns", "del", name]);
                }
            }
        }
    }
}

fn make_pair(tag: &str, sources: &[&str]) -> Result<Pair, String> {
    remove_stale();
    let pid = std::process::id();
    let pair = Pair {
        out: format!("tsusen-det-{pid}-{tag}o"),
        sensor: format!("tsusen-det-{pid}-{tag}s"),
        veth_out: format!("td{tag}{pid}o"),
        veth_sensor: format!("td{tag}{pid}s"),
    };
    ip(&["netns", "add", &pair.out])?;
    if let Err(e) = ip(&["netns", "add", &pair.sensor]) {
        let _ = ip(&["netns", "del", &pair.out]);
        return Err(e);
    }
    let (o, s, vo, vs) = (&pair.out, &pair.sensor, &pair.veth_out, &pair.veth_sensor);
    ip(&[
        "link", "add", vo, "netns", o, "type", "veth", "peer", "name", vs, "netns", s,
    ])?;
    for (ns, dev) in [(o, vo), (s, vs)] {
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        ip(&["-n", ns, "link", "set", dev, "up"])?;
    }
    // The outside host owns every scanning address (so replies reach it), all outside the
    // sensor's network; the sensor routes them back over the pair.
    for a in sources {
        ip(&["-n", o, "addr", "add", &format!("{a}/32"), "dev", vo])?;
    }
    ip(&["-n", o, "route", "add", "198.51.100.0/24", "dev", vo])?;
    ip(&["-n", s, "addr", "add", &format!("{SENSOR_S}/24"), "dev", vs])?;
    ip(&["-n", s, "route", "add", "203.0.113.0/24", "dev", vs])?;
    // Replayed captures come from anywhere: with no route back, reverse-path filtering (which a
    // new namespace may inherit) would drop them before scanlogd sees them. The default route
    // leads only to the outside namespace, which drops what is not its own.
    ip(&["-n", s, "route", "add", "default", "dev", vs])?;
    Ok(pair)
}

fn mac_of(ns: &str, dev: &str) -> String {
    let out = ip(&["-n", ns, "link", "show", dev]).unwrap_or_default();
    out.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or("")
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// Reading the two sides.

/// One scan as a line of text: scanlogd's, or ours.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    Scan {
        src: String,
        ports: Vec<u16>,
        /// The line up to " @".
        body: String,
        /// Seconds of the day.
        time: u32,
    },
    More,
}

fn parse_line(text: &str) -> Result<Line, String> {
    if text == MORE_FOLLOW {
        return Ok(Line::More);
    }
    let (body, time) = text.rsplit_once(" @").ok_or("no time")?;
    let t: Vec<u32> = time.split(':').filter_map(|x| x.parse().ok()).collect();
    if t.len() != 3 {
        return Err(format!("bad time in {text:?}"));
    }
    let src = body.split(" to ").next().unwrap_or("");
    let src = src.split(':').next().unwrap_or("").to_string();
    let ports_text = body
        .split(" ports ")
        .nth(1)
        .and_then(|r| r.split(", ...").next())
        .ok_or_else(|| format!("no ports in {text:?}"))?;
    let ports = ports_text
        .split(", ")
        .map(|p| p.parse::<u16>().map_err(|e| format!("{p:?}: {e}")))
        .collect::<Result<Vec<u16>, String>>()?;
    Ok(Line::Scan {
        src,
        ports,
        body: body.to_string(),
        time: t[0] * 3600 + t[1] * 60 + t[2],
    })
}

/// The message part of a syslog datagram ("<25>Nov 23 18:00:00 scanlogd: MESSAGE").
fn syslog_message(d: &str) -> Option<&str> {
    let i = d.find("scanlogd")?;
    let rest = &d[i..];
    let j = rest.find(": ")?;
    Some(rest[j + 2..].trim_end_matches(['\n', '\0']))
}

struct Replay {
    lines: Vec<Line>,
    labels: Vec<(Addr, Tool)>,
    packets: usize,
}

/// Feeds the capture through the detectors: packets to the sensor host (what scanlogd sees)
/// to the scan detector, every inbound packet to the fingerprinter.
fn replay(path: &Path) -> Replay {
    let mut cap = CaptureFile::open(path).unwrap_or_else(|e| panic!("{e}"));
    let mut scan = ScanDetector::new(ScanParams::default());
    let mut fp = Fingerprinter::new(FingerprintParams::default());
    let sensor = Addr::v4(SENSOR);
    let mut out = Replay {
        lines: Vec::new(),
        labels: Vec::new(),
        packets: 0,
    };
    while let Some(frame) = cap.next_frame().unwrap_or_else(|e| panic!("{e}")) {
        let Ok(p): Result<Packet, _> = decode(&frame) else {
            continue;
        };
        if p.src == sensor {
            continue;
        }
        out.packets += 1;
        // As the sensor asks: with the option layout the decoder gave.
        if let Some(l) = fp.observe(&p, Some(&p.tcp_opts), frame.ts) {
            out.labels.push((l.src, l.tool));
        }
        if p.dst != sensor {
            continue;
        }
        if let Some(r) = scan.observe(&p, frame.ts * 1_000_000) {
            let text = r.line_local();
            say!("tsusen:   {text}");
            let line = parse_line(&text).unwrap_or_else(|e| panic!("our own line: {e}"));
            if let Report::Scan(s) = &r {
                // The detector's ports are the line's when the line was not cut.
                if let Line::Scan { ports, .. } = &line {
                    assert!(s.ports.starts_with(ports));
                }
            }
            out.lines.push(line);
        }
    }
    out
}

/// The sensor side of a run: the namespaces, the capture, scanlogd and its syslog listener.
struct Bench {
    // Dropped in this order: scanlogd and tcpdump first, then the namespaces, then the files.
    scanlogd: Proc,
    tcpdump: Proc,
    log: UnixDatagram,
    pair: Pair,
    pcap: PathBuf,
    tmp: TempDir,
}

impl Bench {
    /// Sets everything up, or says why it cannot (a skip).
    fn start(tag: &str, sources: &[&str]) -> Result<Bench, String> {
        let scanlogd = which("scanlogd").ok_or("no scanlogd")?;
        let tmp = TempDir::new(tag);
        let pair = make_pair(tag, sources).map_err(|e| format!("cannot make namespaces: {e}"))?;

        // The syslog listener: a Unix datagram socket that becomes /dev/log in scanlogd's mount
        // namespace.
        let log = UnixDatagram::bind(tmp.0.join("log")).expect("bind the syslog listener");
        log.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();

        // Capture first, so it sees everything scanlogd sees.
        let pcap = tmp.0.join("scan.pcap");
        let tcpdump_err = tmp.0.join("tcpdump.err");
        let mut tcpdump = Proc::start(
            "tcpdump",
            &[
                "ip",
                "netns",
                "exec",
                &pair.sensor,
                "tcpdump",
                "-n",
                "-U",
                "-i",
                &pair.veth_sensor,
                "-w",
                pcap.to_str().unwrap(),
                "tcp or udp",
            ],
            &tmp.0.join("tcpdump.out"),
            &tcpdump_err,
        );
        wait_for(
            &tcpdump_err,
            "listening on",
            Duration::from_secs(15),
            &mut tcpdump,
        )?;

        // scanlogd: private mount and pid namespaces inside the sensor's network namespace.
        let script = format!(
            "set -e\n\
             d='{dir}'\n\
             touch \"$d/null\" && mount --bind /dev/null \"$d/null\" || true\n\
             mount -t tmpfs -o mode=0755 tsusen-dev /dev\n\
             touch /dev/null && mount --bind \"$d/null\" /dev/null || true\n\
             touch /dev/log\n\
             mount --bind \"$d/log\" /dev/log\n\
             mount -t tmpfs -o mode=0755 tsusen-run /run\n\
             mkdir -p /run/scanlogd/empty\n\
             {scanlogd}\n\
             echo ready\n\
             exec sleep 600\n",
            dir = tmp.0.display(),
            scanlogd = scanlogd.display(),
        );
        let out = tmp.0.join("scanlogd.out");
        let mut sl = Proc::start(
            "scanlogd",
            &[
                "ip",
                "netns",
                "exec",
                &pair.sensor,
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "--pid",
                "--kill-child",
                "sh",
                "-c",
                &script,
            ],
            &out,
            &tmp.0.join("scanlogd.err"),
        );
        sl.kill_only = true;
        if let Err(e) = wait_for(&out, "ready", Duration::from_secs(15), &mut sl) {
            panic!(
                "{e}\n{}",
                fs::read_to_string(tmp.0.join("scanlogd.err")).unwrap_or_default()
            );
        }
        Ok(Bench {
            scanlogd: sl,
            tcpdump,
            log,
            pair,
            pcap,
            tmp,
        })
    }

    /// Stops the capture and scanlogd; returns scanlogd's lines.
    fn finish(&mut self) -> Vec<Line> {
        thread::sleep(Duration::from_secs(2));
        self.tcpdump.stop();
        assert!(
            self.scanlogd.running(),
            "scanlogd's namespace died during the run"
        );
        let mut lines = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok(n) = self.log.recv(&mut buf) {
            let d = String::from_utf8_lossy(&buf[..n]).into_owned();
            let Some(msg) = syslog_message(&d) else {
                say!("(not scanlogd's: {d:?})");
                continue;
            };
            say!("scanlogd: {msg}");
            lines.push(parse_line(msg).unwrap_or_else(|e| panic!("scanlogd line {msg:?}: {e}")));
        }
        self.scanlogd.stop();
        lines
    }
}

/// Same sources, same ports, same order, same lines but for the time of day, which may differ
/// by the second scanlogd read its clock in.
fn assert_same(ours: &[Line], theirs: &[Line]) {
    let scans = |v: &[Line]| {
        v.iter()
            .map(|l| match l {
                Line::Scan { src, ports, .. } => format!("{src} {ports:?}"),
                Line::More => MORE_FOLLOW.to_string(),
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(scans(ours), scans(theirs), "sources and ports");
    for (a, b) in ours.iter().zip(theirs) {
        if let (
            Line::Scan {
                body: ba, time: ta, ..
            },
            Line::Scan {
                body: bb, time: tb, ..
            },
        ) = (a, b)
        {
            assert_eq!(ba, bb, "report line");
            let d = (*ta as i64 - *tb as i64).rem_euclid(86_400);
            assert!(d <= 1 || d >= 86_399, "time of day {ta} vs {tb}");
        }
    }
}

fn addr(s: &str) -> Addr {
    s.parse::<std::net::IpAddr>().unwrap().into()
}

// ---------------------------------------------------------------------------------------------

#[test]
fn same_scans_as_scanlogd() {
    let _one = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    if !is_root() {
        say!("SKIP: detect_scanlogd needs root (network namespaces, scanlogd's raw socket)");
        return;
    }
    for tool in [
        "ip", "unshare", "mount", "scanlogd", "nmap", "hping3", "tcpdump",
    ] {
        if which(tool).is_none() {
            say!("SKIP: detect_scanlogd needs {tool} (Debian: scanlogd, nmap, hping3, tcpdump, iproute2, util-linux)");
            return;
        }
    }
    let masscan = which("masscan");
    let zmap = which("zmap");
    let mut sources = vec![
        NMAP_SRC,
        HPING_SYN_SRC,
        HPING_FIN_SRC,
        MASSCAN_SRC,
        ZMAP_SRC,
    ];
    sources.extend(FLOOD_SRCS);
    let mut bench = match Bench::start("s", &sources) {
        Ok(b) => b,
        Err(e) => {
            say!("SKIP: {e}");
            return;
        }
    };

    // The scans, one source each.
    let o = bench.pair.out.clone();
    let o = o.as_str();
    let veth_out = bench.pair.veth_out.clone();
    let secs = Duration::from_secs;
    say!("nmap -sS from {NMAP_SRC}");
    in_ns(
        o,
        &[
            "nmap", "-sS", "-Pn", "-n", "-p", "1-100", "-e", &veth_out, "-S", NMAP_SRC, SENSOR_S,
        ],
        secs(120),
    );
    thread::sleep(secs(1));
    say!("hping3 SYN scan from {HPING_SYN_SRC}");
    in_ns(
        o,
        &[
            "hping3",
            "-q",
            "-S",
            "-a",
            HPING_SYN_SRC,
            "-p",
            "++20",
            "-c",
            "12",
            "-i",
            "u50000",
            SENSOR_S,
        ],
        secs(60),
    );
    thread::sleep(secs(1));
    say!("hping3 FIN scan across port 1024 from {HPING_FIN_SRC}");
    in_ns(
        o,
        &[
            "hping3",
            "-q",
            "-F",
            "-a",
            HPING_FIN_SRC,
            "-p",
            "++1020",
            "-c",
            "16",
            "-i",
            "u50000",
            SENSOR_S,
        ],
        secs(60),
    );
    let sensor_mac = mac_of(&bench.pair.sensor, &bench.pair.veth_sensor);
    if masscan.is_some() {
        thread::sleep(secs(1));
        say!("masscan from {MASSCAN_SRC}");
        in_ns(
            o,
            &[
                "masscan",
                SENSOR_S,
                "-p1-40",
                "--rate",
                "400",
                "--source-ip",
                MASSCAN_SRC,
                "-e",
                &veth_out,
                "--router-mac",
                &sensor_mac,
                "--wait",
                "0",
            ],
            secs(60),
        );
    } else {
        say!("note: masscan not installed: not part of this run");
    }
    if zmap.is_some() {
        // One port over eight other addresses: no scan for scanlogd, a fingerprint for us.
        say!("zmap from {ZMAP_SRC}");
        in_ns(
            o,
            &[
                "zmap",
                "-q",
                "-p",
                "80",
                "198.51.100.0/29",
                "-S",
                ZMAP_SRC,
                "-G",
                &sensor_mac,
                "-i",
                &veth_out,
                "-b",
                "/dev/null",
                "-r",
                "100",
                "-c",
                "1",
                "-o",
                "/dev/null",
            ],
            secs(60),
        );
    } else {
        say!("note: zmap not installed: not part of this run");
    }
    thread::sleep(secs(1));
    say!("flood: six sources, one after the other");
    for src in FLOOD_SRCS {
        in_ns(
            o,
            &[
                "hping3", "-q", "-S", "-a", src, "-p", "++100", "-c", "8", "-i", "u20000", SENSOR_S,
            ],
            secs(60),
        );
    }
    let theirs = bench.finish();
    let ours = replay(&bench.pcap);
    say!("capture: {} inbound packets", ours.packets);
    assert_same(&ours.lines, &theirs);

    // What the run must contain: nmap's, both hping3 scans, five reports in all then the "more"
    // line (the flood sources come last).
    let srcs: Vec<String> = ours
        .lines
        .iter()
        .filter_map(|l| match l {
            Line::Scan { src, .. } => Some(src.clone()),
            Line::More => None,
        })
        .collect();
    for s in [NMAP_SRC, HPING_SYN_SRC, HPING_FIN_SRC] {
        assert!(srcs.iter().any(|x| x == s), "no scan from {s}");
    }
    assert_eq!(srcs.len(), 5, "five reports, then flood control");
    assert_eq!(ours.lines.last(), Some(&Line::More));
    // The hping3 SYN scan: 20 … 25 weigh 18, port 26 completes it (not listed, as scanlogd).
    let hp = ours.lines.iter().find_map(|l| match l {
        Line::Scan {
            src, ports, body, ..
        } if src == HPING_SYN_SRC => Some((ports, body)),
        _ => None,
    });
    let (ports, body) = hp.unwrap();
    assert_eq!(ports, &[20, 21, 22, 23, 24, 25]);
    assert!(body.ends_with("..., fSrpauxy, TOS 00, TTL 64"), "{body}");
    // The FIN scan: 1020 … 1023 weigh 12, eight more high ports reach 20, the ninth 21; the
    // line keeps seven of the twelve ports listed (LOG_MAX_LENGTH), as scanlogd's.
    let fin = ours.lines.iter().find_map(|l| match l {
        Line::Scan {
            src, ports, body, ..
        } if src == HPING_FIN_SRC => Some((ports, body)),
        _ => None,
    });
    let (ports, body) = fin.unwrap();
    assert_eq!(ports, &(1020..1027).collect::<Vec<u16>>());
    assert!(body.contains("..., Fsrpauxy"), "{body}");

    // Fingerprints on the real tools.
    say!("labels: {:?}", ours.labels);
    let has = |src: &str, tool: Tool| ours.labels.contains(&(addr(src), tool));
    assert!(has(NMAP_SRC, Tool::Nmap), "nmap not recognised");
    assert!(has(HPING_SYN_SRC, Tool::Hping3) && has(HPING_FIN_SRC, Tool::Hping3));
    if masscan.is_some() {
        assert!(has(MASSCAN_SRC, Tool::Masscan), "masscan not recognised");
    }
    if zmap.is_some() {
        assert!(has(ZMAP_SRC, Tool::Zmap), "zmap not recognised");
    }
    // And nothing else: each source is labelled with its own tool only.
    for (a, t) in &ours.labels {
        let want = match a.to_string().as_str() {
            NMAP_SRC => Tool::Nmap,
            MASSCAN_SRC => Tool::Masscan,
            ZMAP_SRC => Tool::Zmap,
            _ => Tool::Hping3,
        };
        assert_eq!(*t, want, "{a} labelled {t}");
    }
    say!(
        "detect_scanlogd: {} scanlogd lines, {} ours, identical; {} labels",
        theirs.len(),
        ours.lines.len(),
        ours.labels.len()
    );
}

/// The destination most probed in a capture (SYN without ACK, else UDP): the scanned host.
fn scanned_host(path: &Path) -> Option<Addr> {
    let mut cap = CaptureFile::open(path).ok()?;
    let mut syn: Vec<(Addr, usize)> = Vec::new();
    let mut udp: Vec<(Addr, usize)> = Vec::new();
    while let Ok(Some(frame)) = cap.next_frame() {
        let Ok(p) = decode(&frame) else { continue };
        let v = match p.proto {
            6 if p.tcp_flags & 0x12 == 0x02 => &mut syn,
            17 => &mut udp,
            _ => continue,
        };
        match v.iter_mut().find(|(a, _)| *a == p.dst) {
            Some((_, n)) => *n += 1,
            None => v.push((p.dst, 1)),
        }
    }
    let best = |v: &Vec<(Addr, usize)>| v.iter().max_by_key(|(_, n)| *n).map(|(a, _)| *a);
    best(&syn).or_else(|| best(&udp))
}

#[test]
fn corpus_scanners_as_scanlogd() {
    let _one = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/corpus/esnet-curated/attacks/scanners");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|e| fs::read_dir(e.path()).into_iter().flatten().flatten())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect();
    files.sort();
    if files.is_empty() {
        say!(
            "SKIP: corpus_scanners_as_scanlogd: no captures under {}",
            dir.display()
        );
        return;
    }

    // Fingerprints on the original captures (masscan's trait involves the real destination).
    let mut labels = Vec::new();
    for f in &files {
        let mut fp = Fingerprinter::new(FingerprintParams::default());
        let mut cap = CaptureFile::open(f).unwrap_or_else(|e| panic!("{e}"));
        while let Some(frame) = cap.next_frame().unwrap_or_else(|e| panic!("{e}")) {
            let Ok(p) = decode(&frame) else { continue };
            if let Some(l) = fp.observe(&p, Some(&p.tcp_opts), frame.ts) {
                labels.push((
                    f.file_name().unwrap().to_string_lossy().into_owned(),
                    l.src,
                    l.tool,
                ));
            }
        }
    }
    say!("corpus labels: {labels:?}");
    let masscan_tcp = labels.iter().any(|(f, a, t)| {
        f.starts_with("tcp_") && *a == addr("172.31.15.102") && *t == Tool::Masscan
    });
    assert!(masscan_tcp, "masscan's corpus capture not recognised");
    // The nmap captures are connect scans through the operating system's stack: no label.
    assert!(
        labels.iter().all(|(_, _, t)| *t == Tool::Masscan),
        "{labels:?}"
    );

    if !is_root() {
        say!("SKIP: corpus_scanners_as_scanlogd (scanlogd side) needs root");
        return;
    }
    for tool in [
        "ip",
        "unshare",
        "mount",
        "scanlogd",
        "tcpdump",
        "tcprewrite",
        "tcpreplay",
    ] {
        if which(tool).is_none() {
            say!("SKIP: corpus_scanners_as_scanlogd needs {tool} (Debian: scanlogd, tcpdump, tcpreplay)");
            return;
        }
    }
    let mut bench = match Bench::start("c", &[]) {
        Ok(b) => b,
        Err(e) => {
            say!("SKIP: {e}");
            return;
        }
    };
    let sensor_mac = mac_of(&bench.pair.sensor, &bench.pair.veth_sensor);
    let out_mac = mac_of(&bench.pair.out, &bench.pair.veth_out);
    for (i, f) in files.iter().enumerate() {
        let Some(target) = scanned_host(f) else {
            continue;
        };
        // Re-address the scanned host to the sensor host (replies keep theirs and are dropped
        // there), with our link addresses and no VLAN tag; then replay at the capture's own
        // pace.
        let rewritten = bench.tmp.0.join(format!("corpus-{i}.pcap"));
        run(
            &[
                "tcprewrite",
                &format!("--infile={}", f.display()),
                &format!("--outfile={}", rewritten.display()),
                &format!("--dstipmap={target}/32:{SENSOR_S}/32"),
                &format!("--enet-dmac={sensor_mac}"),
                &format!("--enet-smac={out_mac}"),
                // masscan's capture carries a VLAN tag the sensor's interface would not take.
                "--enet-vlan=del",
                "--fixcsum",
            ],
            Duration::from_secs(60),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        say!("replaying {} ({target} → {SENSOR_S})", f.display());
        in_ns(
            &bench.pair.out,
            &[
                "tcpreplay",
                "-q",
                "-i",
                &bench.pair.veth_out,
                rewritten.to_str().unwrap(),
            ],
            Duration::from_secs(120),
        );
        // Longer than scanlogd's 3 s: a source in two files makes two scans.
        thread::sleep(Duration::from_secs(4));
    }
    let theirs = bench.finish();
    let ours = replay(&bench.pcap);
    say!("capture: {} inbound packets", ours.packets);
    assert_same(&ours.lines, &theirs);
    assert!(
        ours.lines
            .iter()
            .any(|l| matches!(l, Line::Scan { src, .. } if src == "172.31.15.102")),
        "masscan's corpus scan not detected"
    );
    say!(
        "corpus_scanners_as_scanlogd: {} scanlogd lines, {} ours, identical",
        theirs.len(),
        ours.lines.len()
    );
}
