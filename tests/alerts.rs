//! Alerts end to end through `tsusen replay --alerts` on captures this test builds: spikes
//! (several days of history, then a spike day: one event, and none on a normal day), net-security's
//! flow sensors on flows built from the packets (portscan, winscan, spam; UDP probes, and the
//! packets no sensor could count left unbuilt), TCP with ACK set dropped as live, remote syslog over
//! UDP in RFC 3164 and 5424, and the broker sinks against real brokers on loopback: mosquitto
//! (killed and restarted mid-stream: the events sent after it comes back arrive) and RabbitMQ
//! (a durable queue, read back with Basic.Get). A broker test prints "SKIP: reason" when its
//! Debian package is missing (mosquitto mosquitto-clients; rabbitmq-server, which also needs root
//! here to run as the test's own node).

mod common;

use common::pcapgen::{icmp, ipv4, ipv6, tcp, udp, write_pcap, Packet, LINKTYPE_RAW};
use std::fs;
use std::io::Write;
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
/// 2026-01-01T00:00:00Z.
const DAY0: u64 = 1_767_225_600;

macro_rules! say {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("tsusen-alerts-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).expect("temporary directory");
        TempDir(p)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A process this test started, stopped by its pid on drop (SIGTERM, then SIGKILL).
struct Proc(Option<Child>);

impl Proc {
    fn spawn(cmd: &mut Command) -> Proc {
        Proc(Some(cmd.spawn().expect("start a process")))
    }
    fn pid(&self) -> u32 {
        self.0.as_ref().map_or(0, |c| c.id())
    }
    fn stop(&mut self) {
        let Some(mut c) = self.0.take() else { return };
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
    fn wait(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let c = self.0.as_mut()?;
        let t = Instant::now();
        while t.elapsed() < limit {
            if let Ok(Some(s)) = c.try_wait() {
                self.0 = None;
                return Some(s);
            }
            thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn which(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
        || Path::new("/usr/sbin").join(tool).is_file()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(port: u16, limit: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        thread::sleep(Duration::from_millis(100));
    }
    false
}

fn a(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn syn(t: f64, src: &str, sport: u16, dst: &str, dport: u16, flags: u8) -> Packet {
    let sec = t.floor();
    Packet::new(
        sec as u64,
        ((t - sec) * 1e6) as u32,
        ipv4(a(src), a(dst), 6, &tcp(sport, dport, flags, &[])),
    )
}

/// `tsusen replay` with a config file of `conf` lines; returns its output.
fn replay(dir: &TempDir, conf: &str, extra: &[&str], caps: &[&Path]) -> Output {
    let conf_path = dir.path("tsusen.conf");
    fs::write(&conf_path, conf).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tsusen"));
    cmd.arg("replay")
        .arg("--config")
        .arg(&conf_path)
        .arg("--log-dir")
        .arg(dir.path("logs"))
        .args(["--local", "198.51.100.0/24", "--alerts"])
        .args(extra)
        .args(caps);
    let out = cmd.output().expect("run tsusen replay");
    if !out.status.success() {
        say!(
            "replay failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// `replay` with an events file and no other settings: its output, which it checks is a
/// success, and the file.
fn replay_events(dir: &TempDir, extra: &[&str], cap: &Path) -> (Output, PathBuf) {
    let ev = dir.path("events.jsonl");
    let out = replay(
        dir,
        &format!("EVENTS_FILE {}\n", ev.display()),
        extra,
        &[cap],
    );
    assert!(out.status.success());
    (out, ev)
}

/// Events of one type from an events file (one JSON object per line).
fn events(path: &Path, kind: &str) -> Vec<String> {
    let tag = format!("{{\"type\":\"{kind}\"");
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with(&tag))
        .map(String::from)
        .collect()
}

fn field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let k = format!("\"{key}\":");
    let at = json.find(&k)? + k.len();
    let rest = &json[at..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim_matches('"'))
}

// ---------------------------------------------------------------------------------------------
// Spikes.

#[test]
fn spike_fires_once_on_the_spike_day_only() {
    let dir = TempDir::new("spike");
    let mut pkts = Vec::new();
    // Six ordinary days: 4 to 6 sources on telnet, 3 on ssh.
    for d in 0..6u64 {
        let base = (DAY0 + d * 86_400) as f64;
        for s in 0..(4 + d % 3) {
            let src = format!("203.0.113.{}", 1 + s);
            pkts.push(syn(
                base + 3600.0 + s as f64,
                &src,
                40000,
                "198.51.100.10",
                23,
                SYN,
            ));
        }
        for s in 0..3 {
            let src = format!("203.0.113.{}", 50 + s);
            pkts.push(syn(
                base + 7200.0 + s as f64,
                &src,
                40000,
                "198.51.100.10",
                22,
                SYN,
            ));
        }
    }
    // The spike day: 60 sources on telnet over ten hours (several flushes), ssh as usual.
    let base = (DAY0 + 6 * 86_400) as f64;
    for s in 0..60u64 {
        let src = format!("192.0.2.{}", 1 + s);
        pkts.push(syn(
            base + 3600.0 + s as f64 * 600.0,
            &src,
            40000,
            "198.51.100.10",
            23,
            SYN,
        ));
    }
    for s in 0..3 {
        let src = format!("203.0.113.{}", 50 + s);
        pkts.push(syn(
            base + 7300.0 + s as f64,
            &src,
            40000,
            "198.51.100.10",
            22,
            SYN,
        ));
    }
    // And a quiet next morning, so the spike day also ends by the day change.
    pkts.push(syn(
        base + 86_400.0 + 60.0,
        "203.0.113.50",
        40000,
        "198.51.100.10",
        22,
        SYN,
    ));
    pkts.sort_by_key(|p| (p.sec, p.usec));
    let cap = dir.path("days.pcap");
    write_pcap(&cap, LINKTYPE_RAW, &pkts).unwrap();
    let ev = dir.path("events.jsonl");
    let conf = format!("EVENTS_FILE {}\nWRITE_PERIOD 3600\n", ev.display());
    let out = replay(&dir, &conf, &[], &[&cap]);
    assert!(out.status.success());
    let spikes = events(&ev, "spike");
    say!("spike events: {spikes:#?}");
    assert_eq!(spikes.len(), 1, "one spike, on one day, once");
    let e = &spikes[0];
    assert_eq!(field(e, "offender"), Some("null"));
    assert_eq!(field(e, "observer"), Some("replay"));
    assert_eq!(field(e, "port"), Some("23"));
    assert_eq!(field(e, "day"), Some("2026-01-07"));
    assert_eq!(field(e, "median"), Some("5"));
    assert_eq!(field(e, "threshold"), Some("10"));
    let sources: u64 = field(e, "sources").unwrap().parse().unwrap();
    assert!((10..=60).contains(&sources), "{sources}");
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("spike 1"), "{summary}");
}

// ---------------------------------------------------------------------------------------------
// net-security's sensors on flows built from the packets.

/// A portscan (150 ports in 8 s), a winscan (one SYN to 445), and a local host sending mail to
/// 30 servers within a minute.
fn flow_capture(path: &Path) {
    let t0 = (DAY0 + 3600) as f64;
    let mut pkts = Vec::new();
    for i in 0..150u16 {
        pkts.push(syn(
            t0 + i as f64 * 0.05,
            "203.0.113.9",
            41000,
            "198.51.100.10",
            1000 + i,
            SYN,
        ));
    }
    pkts.push(syn(
        t0 + 1.0,
        "203.0.113.20",
        42000,
        "198.51.100.11",
        445,
        SYN,
    ));
    for i in 0..30u16 {
        let server = format!("192.0.2.{}", 1 + i);
        let t = t0 + 10.0 + i as f64;
        pkts.push(syn(t, "198.51.100.20", 50000 + i, &server, 25, SYN));
        pkts.push(syn(t + 0.1, "198.51.100.20", 50000 + i, &server, 25, ACK));
    }
    pkts.sort_by_key(|p| (p.sec, p.usec));
    write_pcap(path, LINKTYPE_RAW, &pkts).unwrap();
}

#[test]
fn flow_sensors_on_a_built_capture() {
    let dir = TempDir::new("flows");
    let cap = dir.path("flows.pcap");
    flow_capture(&cap);
    let (out, ev) = replay_events(&dir, &[], &cap);
    let portscan = events(&ev, "portscan");
    assert_eq!(portscan.len(), 1, "{portscan:?}");
    assert_eq!(field(&portscan[0], "offender"), Some("203.0.113.9"));
    assert_eq!(field(&portscan[0], "observer"), Some("replay"));
    assert_eq!(field(&portscan[0], "flows"), Some("101"));
    let winscan = events(&ev, "winscan");
    assert_eq!(winscan.len(), 1, "{winscan:?}");
    assert_eq!(field(&winscan[0], "offender"), Some("203.0.113.20"));
    assert_eq!(field(&winscan[0], "dst_port"), Some("445"));
    let spam = events(&ev, "spam");
    assert_eq!(spam.len(), 1, "{spam:?}");
    assert_eq!(field(&spam[0], "offender"), Some("198.51.100.20"));
    // scanlogd's detector sees the portscan too.
    assert!(!events(&ev, "scan").is_empty());
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("portscan 1 winscan 1 spam 1"), "{summary}");
}

/// Two replays of one capture write the same events, byte for byte, though each process keys
/// its flow table's hash anew: flows go out in time order, not in the order of their buckets.
/// 400 sources each knock on 445 of one of our hosts, and 40 of them scan 150 ports, over ten
/// minutes; many flows of a second fall due in the same second.
#[test]
fn a_replay_writes_the_same_events_every_time() {
    let dir = TempDir::new("repeat");
    let cap = dir.path("repeat.pcap");
    let t0 = (DAY0 + 7200) as f64;
    let mut pkts = Vec::new();
    for i in 0..400u32 {
        let src = format!("203.0.{}.{}", 1 + i / 200, 1 + i % 200);
        let dst = format!("198.51.100.{}", 1 + i % 50);
        let t = t0 + (i * 7919 % 600) as f64 + (i % 10) as f64 / 10.0;
        pkts.push(syn(t, &src, 40000 + i as u16, &dst, 445, SYN));
        if i % 10 == 0 {
            for port in 0..150u16 {
                let at = t + 1.0 + port as f64 * 0.05;
                pkts.push(syn(at, &src, 41000, &dst, 2000 + port, SYN));
            }
        }
    }
    pkts.sort_by_key(|p| (p.sec, p.usec));
    write_pcap(&cap, LINKTYPE_RAW, &pkts).unwrap();
    let mut runs = Vec::new();
    for run in 0..2 {
        let ev = dir.path(&format!("events-{run}.jsonl"));
        let out = replay(
            &dir,
            &format!("EVENTS_FILE {}\n", ev.display()),
            &[],
            &[&cap],
        );
        assert!(out.status.success());
        runs.push(fs::read_to_string(&ev).unwrap());
    }
    let winscan = runs[0]
        .lines()
        .filter(|l| l.contains("\"winscan\""))
        .count();
    let portscan = runs[0]
        .lines()
        .filter(|l| l.contains("\"portscan\""))
        .count();
    assert_eq!((winscan, portscan), (400, 40));
    assert!(
        runs[0] == runs[1],
        "two replays of one capture wrote other events"
    );
}

/// UDP probes: 150 empty datagrams from one source, to 150 ports within 8 s, are a portscan.
/// 150 datagrams with a payload from another source, 150 empty ones over IPv6 and 150 pings
/// are not, and the flow builder leaves them out: only the probes' 150 flows are built.
#[test]
fn udp_probes_are_built_and_what_cannot_count_is_not() {
    let dir = TempDir::new("udpflows");
    let t0 = (DAY0 + 3600) as f64;
    let at = |i: u16| {
        let t = t0 + i as f64 * 0.05;
        (t.floor() as u64, ((t - t.floor()) * 1e6) as u32)
    };
    let (v6src, v6dst) = (
        "2001:db8:ffff::1".parse().unwrap(),
        "2001:db8::10".parse().unwrap(),
    );
    let mut pkts = Vec::new();
    for i in 0..150u16 {
        let (sec, usec) = at(i);
        let (dst, port) = (a("198.51.100.10"), 2000 + i);
        let empty = udp(41000, port, &[]);
        pkts.push(Packet::new(
            sec,
            usec,
            ipv4(a("203.0.113.30"), dst, 17, &empty),
        ));
        let data = udp(41000, port, b"hello");
        pkts.push(Packet::new(
            sec,
            usec,
            ipv4(a("203.0.113.31"), dst, 17, &data),
        ));
        pkts.push(Packet::new(sec, usec, ipv6(v6src, v6dst, 17, &empty)));
        let ping = icmp(8, 0, [0, 1, 0, i as u8], b"ping");
        let to = Ipv4Addr::new(198, 51, 100, 1 + i as u8);
        pkts.push(Packet::new(
            sec,
            usec,
            ipv4(a("203.0.113.32"), to, 1, &ping),
        ));
    }
    let cap = dir.path("udp.pcap");
    write_pcap(&cap, LINKTYPE_RAW, &pkts).unwrap();
    let (out, ev) = replay_events(&dir, &["--local", "2001:db8::/48"], &cap);
    let portscan = events(&ev, "portscan");
    assert_eq!(portscan.len(), 1, "{portscan:?}");
    assert_eq!(field(&portscan[0], "offender"), Some("203.0.113.30"));
    assert_eq!(field(&portscan[0], "flows"), Some("101"));
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("flows built 150 "), "{summary}");
}

/// TCP segments with ACK set are dropped as the live kernel filter drops them, so a replay's
/// detectors see what a live sensor's would. One source opens with a SYN and then sends ACK
/// segments to 25 more ports within 2 s: connections under way, which the flow builder, fed
/// every segment, would build into 25 more flows (scanlogd's detector ignores an ACK to a new
/// port either way). Another source's 25 SYNs are a scan, and 25 flows.
#[test]
fn established_tcp_is_dropped_as_the_live_filter_drops_it() {
    let dir = TempDir::new("acked");
    let t0 = (DAY0 + 3600) as f64;
    let mut pkts = vec![syn(t0, "203.0.113.40", 43000, "198.51.100.10", 3000, SYN)];
    for i in 0..25u16 {
        let t = t0 + 0.05 + i as f64 * 0.05;
        pkts.push(syn(
            t,
            "203.0.113.40",
            43000,
            "198.51.100.10",
            3001 + i,
            ACK,
        ));
        pkts.push(syn(
            t,
            "203.0.113.41",
            44000,
            "198.51.100.11",
            3001 + i,
            SYN,
        ));
    }
    let cap = dir.path("acked.pcap");
    write_pcap(&cap, LINKTYPE_RAW, &pkts).unwrap();
    let (out, ev) = replay_events(&dir, &[], &cap);
    let scans = events(&ev, "scan");
    assert_eq!(scans.len(), 1, "{scans:?}");
    assert_eq!(field(&scans[0], "offender"), Some("203.0.113.41"));
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("packets 51, attempts 26,"), "{summary}");
    assert!(summary.contains("flows built 26 "), "{summary}");
}

// ---------------------------------------------------------------------------------------------
// Remote syslog.

#[test]
fn remote_syslog_over_udp_in_both_formats() {
    let dir = TempDir::new("syslog");
    let cap = dir.path("flows.pcap");
    flow_capture(&cap);
    for format in ["3164", "5424"] {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let port = sock.local_addr().unwrap().port();
        let conf = format!("SYSLOG udp://127.0.0.1:{port}\nSYSLOG_FORMAT {format}\n");
        let out = replay(&dir, &conf, &[], &[&cap]);
        assert!(out.status.success());
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        while let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        say!("{format}: {} datagrams, first {:?}", got.len(), got.first());
        assert!(!got.is_empty());
        for m in &got {
            if format == "5424" {
                assert!(m.starts_with("<25>1 20"), "{m}");
                assert!(m.contains(" tsusen "), "{m}");
            } else {
                assert!(m.starts_with("<25>") && !m.starts_with("<25>1 "), "{m}");
                assert!(m.contains(" tsusen["), "{m}");
            }
        }
        // The scan as scanlogd's line, the other events as their JSON.
        assert!(
            got.iter()
                .any(|m| m.contains("203.0.113.9:41000 to 198.51.100.10 ports ")),
            "{got:?}"
        );
        assert!(got.iter().any(|m| m.contains("{\"type\":\"portscan\"")));
        assert!(got.iter().any(|m| m.contains("{\"type\":\"winscan\"")));
        assert!(!got.iter().any(|m| m.contains("{\"type\":\"scan\"")));
    }
}

// ---------------------------------------------------------------------------------------------
// MQTT against mosquitto.

/// Twenty winscan sources, one every second of packet time.
fn stream_capture(path: &Path, n: u16) {
    let t0 = (DAY0 + 3600) as f64;
    let pkts: Vec<Packet> = (0..n)
        .map(|i| {
            let src = format!("203.0.113.{}", 100 + i);
            syn(t0 + i as f64, &src, 42000, "198.51.100.11", 445, SYN)
        })
        .collect();
    write_pcap(path, LINKTYPE_RAW, &pkts).unwrap();
}

fn mosquitto(dir: &TempDir, port: u16, log: &str) -> Proc {
    let conf = dir.path("mosquitto.conf");
    fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nuser root\npersistence true\n\
             persistence_location {}/\nautosave_interval 1\nlog_dest file {}\nlog_type all\n",
            dir.0.display(),
            dir.path(log).display()
        ),
    )
    .unwrap();
    let p = Proc::spawn(
        Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    assert!(wait_port(port, Duration::from_secs(10)), "mosquitto up");
    p
}

fn mosquitto_sub(dir: &TempDir, port: u16, out: &str) -> Proc {
    let p = Proc::spawn(
        Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args([
                "-t",
                "tsusen/+/events",
                "-q",
                "1",
                "-c",
                "-i",
                "tsusen-test-sub",
                "-v",
            ])
            .stdout(fs::File::create(dir.path(out)).unwrap())
            .stderr(Stdio::null()),
    );
    // Subscribed once the broker logs it.
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        let logs: String = ["mosquitto1.log", "mosquitto2.log"]
            .iter()
            .map(|l| fs::read_to_string(dir.path(l)).unwrap_or_default())
            .collect();
        if logs.matches("tsusen-test-sub").count() >= 2 {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    thread::sleep(Duration::from_millis(200));
    p
}

#[test]
fn mqtt_qos1_to_mosquitto_across_a_broker_restart() {
    if !which("mosquitto") || !which("mosquitto_sub") {
        say!("SKIP: mqtt test needs mosquitto and mosquitto_sub (Debian: mosquitto mosquitto-clients)");
        return;
    }
    let dir = TempDir::new("mqtt");
    let port = free_port();
    let mut broker = mosquitto(&dir, port, "mosquitto1.log");
    let mut sub = mosquitto_sub(&dir, port, "sub1.out");
    let cap = dir.path("stream.pcap");
    let n = 20;
    stream_capture(&cap, n);
    let ev = dir.path("events.jsonl");
    let conf = format!(
        "EVENTS_FILE {}\nMQTT_URL mqtt://127.0.0.1:{port}\nSENSOR_NAME testsensor\nFLOW_EXPORT_IDLE 1\n",
        ev.display()
    );
    fs::write(dir.path("tsusen.conf"), &conf).unwrap();
    let mut tsusen = Proc::spawn(
        Command::new(env!("CARGO_BIN_EXE_tsusen"))
            .arg("replay")
            .arg("--config")
            .arg(dir.path("tsusen.conf"))
            .arg("--log-dir")
            .arg(dir.path("logs"))
            .args(["--local", "198.51.100.0/24", "--realtime", "--speed", "2"])
            .arg(&cap)
            .stdout(fs::File::create(dir.path("replay.out")).unwrap())
            .stderr(fs::File::create(dir.path("replay.err")).unwrap()),
    );
    // Mid-stream the broker dies, and comes back a moment later.
    thread::sleep(Duration::from_secs(4));
    let before = events(&ev, "winscan").len();
    say!(
        "killing mosquitto (pid {}) after {before} events",
        broker.pid()
    );
    broker.stop();
    sub.stop();
    thread::sleep(Duration::from_millis(1500));
    let _broker2 = mosquitto(&dir, port, "mosquitto2.log");
    let status = tsusen.wait(Duration::from_secs(60)).expect("replay ends");
    let summary = fs::read_to_string(dir.path("replay.out")).unwrap();
    say!("{summary}");
    assert!(
        status.success(),
        "{}",
        fs::read_to_string(dir.path("replay.err")).unwrap()
    );
    // The subscriber's persistent session kept what came while it was away.
    let mut sub2 = mosquitto_sub(&dir, port, "sub2.out");
    thread::sleep(Duration::from_secs(2));
    sub2.stop();
    let sent = events(&ev, "winscan");
    assert_eq!(sent.len(), n as usize);
    assert!(
        before > 0 && before < n as usize,
        "the broker died mid-stream"
    );
    let mut got = std::collections::HashSet::new();
    for f in ["sub1.out", "sub2.out"] {
        for line in fs::read_to_string(dir.path(f)).unwrap_or_default().lines() {
            let (topic, payload) = line.split_once(' ').unwrap();
            assert_eq!(topic, "tsusen/testsensor/events");
            got.insert(payload.to_string());
        }
    }
    for e in &sent {
        assert!(got.contains(e), "not delivered: {e}");
    }
    assert!(summary.contains("mqtt sent"), "{summary}");
    assert!(summary.contains("dropped 0"), "{summary}");
    let log2 = fs::read_to_string(dir.path("mosquitto2.log")).unwrap();
    assert!(
        log2.contains("tsusen-"),
        "tsusen reconnected to the new broker"
    );
}

// ---------------------------------------------------------------------------------------------
// AMQP against RabbitMQ.

struct Rabbit {
    node: String,
    home: PathBuf,
    proc: Proc,
    /// Erlang's port mapper was started by our node (so we stop it too).
    own_epmd: bool,
}

impl Rabbit {
    fn ctl(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("/usr/lib/rabbitmq/bin/rabbitmqctl")
            .env("HOME", &self.home)
            .args(["-n", &self.node])
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

impl Drop for Rabbit {
    fn drop(&mut self) {
        let _ = self.ctl(&["stop"]);
        self.proc.stop();
        if self.own_epmd {
            let _ = Command::new("epmd").arg("-kill").output();
        }
    }
}

fn rabbitmq(dir: &TempDir, port: u16) -> Option<Rabbit> {
    let server = Path::new("/usr/lib/rabbitmq/bin/rabbitmq-server");
    if !server.is_file() {
        say!("SKIP: amqp test needs rabbitmq-server (Debian: rabbitmq-server)");
        return None;
    }
    if unsafe { libc::geteuid() } != 0 {
        say!("SKIP: amqp test runs its own RabbitMQ node, which needs root here");
        return None;
    }
    let home = dir.path("home");
    fs::create_dir_all(&home).unwrap();
    fs::write(dir.path("enabled_plugins"), "[].\n").unwrap();
    let node = format!("tsusen{}@localhost", std::process::id());
    let own_epmd = TcpStream::connect(("127.0.0.1", 4369)).is_err();
    let proc = Proc::spawn(
        Command::new(server)
            .env("HOME", &home)
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", free_port().to_string())
            .env("RABBITMQ_NODENAME", &node)
            .env("RABBITMQ_MNESIA_BASE", dir.path("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.path("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.path("enabled_plugins"))
            .stdout(fs::File::create(dir.path("rabbit.out")).unwrap())
            .stderr(Stdio::null()),
    );
    let r = Rabbit {
        node,
        home,
        proc,
        own_epmd,
    };
    // RabbitMQ takes a while: poll its port.
    if !wait_port(port, Duration::from_secs(120)) {
        panic!(
            "rabbitmq did not start: {}",
            fs::read_to_string(dir.path("rabbit.out")).unwrap_or_default()
        );
    }
    Some(r)
}

#[test]
fn amqp_to_a_durable_queue_on_rabbitmq() {
    let dir = TempDir::new("amqp");
    let port = free_port();
    let Some(rabbit) = rabbitmq(&dir, port) else {
        return;
    };
    let cap = dir.path("flows.pcap");
    flow_capture(&cap);
    let ev = dir.path("events.jsonl");
    let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    let conf = format!("EVENTS_FILE {}\nAMQP_URL {url}\n", ev.display());
    let out = replay(&dir, &conf, &[], &[&cap]);
    assert!(out.status.success());
    let summary = String::from_utf8_lossy(&out.stdout);
    say!("{summary}");
    let sent: Vec<String> = fs::read_to_string(&ev)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert!(sent.len() >= 4, "{sent:?}");
    assert!(
        summary.contains(&format!("amqp sent {} dropped 0", sent.len())),
        "{summary}"
    );
    // The queue is net-security's, durable, and holds every event.
    let queues = rabbit
        .ctl(&["list_queues", "name", "durable", "messages"])
        .unwrap();
    say!("{queues}");
    assert!(
        queues
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["security-threat", "true", &sent.len().to_string()]),
        "{queues}"
    );
    // Read them back with our own client.
    use tsusen::alerts::netsink::{BrokerUrl, Publisher};
    let mut c = tsusen::alerts::amqp::Amqp::new(
        BrokerUrl::parse(&url, "amqp", 5672).unwrap(),
        "security-threat".into(),
    );
    c.connect().unwrap();
    let mut got = Vec::new();
    while let Some(m) = c.get().unwrap() {
        got.push(String::from_utf8(m).unwrap());
    }
    c.close();
    assert_eq!(got, sent);
}
