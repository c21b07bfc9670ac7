//! How the report copes with a million rows: 10 daily files of 100 000 rows each, then one day
//! of a million. Prints cold and warm latencies per endpoint, the cost of new live rows, and
//! requests per second with p99 latency at 50 concurrent keep-alive connections, and (with wrk)
//! the same for the real `tsusen serve` process with its peak RSS.
//! Ignored by default (it writes ~100 MB); run with
//! `cargo test --release --test report_perf -- --ignored --nocapture`.

mod report_support;

use report_support::{get, read_response, start_on, temp_dir, Server, DAY0};
use std::io::Write;
use std::net::{IpAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tsusen::addr::Addr;
use tsusen::report::{publish, LiveSummary};
use tsusen::store::RowWriter;
use tsusen::tables::{Key, Row, RowOrder};

/// A small deterministic generator (xorshift), so runs compare.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Scans look like this: most attempts on a few dozen ports, a long tail on the others, sources
/// spread over the whole address space, a handful of our addresses.
fn day_rows(day: i64, n: usize, rng: &mut Rng) -> Vec<Row> {
    const HOT: [u16; 12] = [22, 23, 80, 443, 445, 3389, 8080, 5900, 1433, 3306, 6379, 53];
    let order = RowOrder::new();
    let mut rows = Vec::with_capacity(n);
    while rows.len() < n {
        let r = rng.next();
        let (proto, port) = match r % 20 {
            0 => (1u8, None),
            1..=3 => (17, Some(HOT[(r >> 8) as usize % HOT.len()])),
            4..=12 => (6, Some(HOT[(r >> 8) as usize % HOT.len()])),
            _ => (6, Some((r >> 16) as u16 | 1)),
        };
        let s = rng.next();
        let first = day * 86_400 + (s % 80_000) as i64;
        rows.push(Row {
            key: Key {
                proto,
                port,
                dst: Addr::v4([198, 51, 100, (r >> 40) as u8 % 8]),
                src: Addr::v4([
                    (s >> 8) as u8 | 1,
                    (s >> 16) as u8,
                    (s >> 24) as u8,
                    (s >> 32) as u8,
                ]),
            },
            first,
            last: first + (s >> 40) as i64 % 3000,
            count: 1 + (s >> 50) % 5,
        });
    }
    rows.sort_unstable_by(|a, b| order.keys(&a.key, &b.key));
    rows.dedup_by(|a, b| a.key == b.key);
    rows
}

fn write_day(dir: &std::path::Path, day: i64, rows: &[Row]) {
    let date = chrono::NaiveDate::from_num_days_from_ce_opt((day + 719_163) as i32).unwrap();
    let f = std::fs::File::create(dir.join(format!("{}.csv", date.format("%Y-%m-%d")))).unwrap();
    let mut w = RowWriter::new(std::io::BufWriter::new(f));
    w.header().unwrap();
    for r in rows {
        w.row(r).unwrap();
    }
    w.finish().unwrap().flush().unwrap();
}

fn time(s: &Server, path: &str) -> (Duration, usize) {
    let t = Instant::now();
    let a = get(s, path, &[("Accept-Encoding", "gzip")]);
    assert_eq!(a.status, 200, "{path}: {}", a.text());
    (t.elapsed(), a.body.len())
}

fn report(s: &Server, label: &str, path: &str) {
    let (cold, n) = time(s, path);
    let mut warm: Vec<Duration> = (0..5).map(|_| time(s, path).0).collect();
    warm.sort();
    println!(
        "{label:<44} first {:>8.1} ms, then median {:>7.1} ms ({n} bytes gzipped)",
        cold.as_secs_f64() * 1e3,
        warm[2].as_secs_f64() * 1e3
    );
}

/// Pages never asked for before, so each is computed over the merged period: the cost of
/// paging through a million rows.
fn uncached(s: &Server, label: &str, prefix: &str) {
    let mut t: Vec<Duration> = (2..9).map(|p| time(s, &format!("{prefix}{p}")).0).collect();
    t.sort();
    println!(
        "{label:<44} median {:>7.1} ms, max {:>7.1} ms",
        t[t.len() / 2].as_secs_f64() * 1e3,
        t[t.len() - 1].as_secs_f64() * 1e3
    );
}

/// 50 connections with keep-alive, each sending requests back to back for `secs`.
fn load(s: &Server, label: &str, path: &str, secs: u64) {
    let until = Instant::now() + Duration::from_secs(secs);
    let threads: Vec<_> = (0..50)
        .map(|_| {
            let addr = s.addr;
            let path = path.to_string();
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                let mut c = TcpStream::connect(addr).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let req =
                    format!("GET {path} HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n\r\n");
                while Instant::now() < until {
                    let t = Instant::now();
                    if c.write_all(req.as_bytes()).is_err() {
                        c = TcpStream::connect(addr).unwrap();
                        continue;
                    }
                    let a = read_response(&mut c);
                    if a.status == 0 {
                        c = TcpStream::connect(addr).unwrap();
                        continue;
                    }
                    assert_eq!(a.status, 200);
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut all: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort();
    let p = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)].as_secs_f64() * 1e3;
    println!(
        "{label:<44} {:>8.0} req/s, p50 {:>7.1} ms, p99 {:>7.1} ms",
        all.len() as f64 / secs as f64,
        p(0.5),
        p(0.99)
    );
}

/// Whether wrk is absent (said once, for the test to skip).
fn wrk_missing() -> bool {
    let missing = std::process::Command::new("wrk")
        .arg("--version")
        .output()
        .is_err();
    if missing {
        println!("SKIP: wrk is not installed (apt-get install wrk)");
    }
    missing
}

/// `GET path` on a connection of its own to a server of another process, waiting up to `secs`
/// for the answer.
fn get_from(addr: std::net::SocketAddr, path: &str, secs: u64) -> report_support::Answer {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(secs))).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    read_response(&mut c)
}

fn peak_rss_mib() -> f64 {
    status_mib("self", "VmHWM")
}

#[test]
#[ignore]
fn a_million_rows() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // Ten days of 100 000 rows.
    let dir = temp_dir("perf10");
    for i in 0..10 {
        write_day(&dir, DAY0 + i, &day_rows(DAY0 + i, 100_000, &mut rng));
    }
    let rss0 = peak_rss_mib();
    let s = start_on(dir);
    println!("-- 10 days x 100 000 rows (1 M rows)");
    report(&s, "/api/trendlines", "/api/trendlines");
    report(
        &s,
        "/api/attempts (last_seen desc, page 1)",
        "/api/attempts",
    );
    report(
        &s,
        "/api/attempts?port=22&sort=count",
        "/api/attempts?port=22&sort=count",
    );
    report(
        &s,
        "/api/attempts?ip[]=10.0.0.0/8&q=ssh",
        "/api/attempts?ip%5B%5D=10.0.0.0/8&q=ssh",
    );
    report(
        &s,
        "/api/attempts?sort=src&page=1000",
        "/api/attempts?sort=src&page=1000",
    );
    report(&s, "/api/summary", "/api/summary");
    uncached(
        &s,
        "new pages, default sort (no answer cache)",
        "/api/attempts?page=",
    );
    uncached(
        &s,
        "new pages, sort=count (no answer cache)",
        "/api/attempts?sort=count&page=",
    );
    uncached(
        &s,
        "new pages, port=22 (no answer cache)",
        "/api/attempts?port=22&page=",
    );
    load(&s, "files only: load /", "/", 5);
    load(&s, "files only: load /api/trendlines", "/api/trendlines", 5);
    load(
        &s,
        "files only: load /api/attempts?port=22&sort=count",
        "/api/attempts?port=22&sort=count",
        5,
    );
    // Today live: 100 000 rows held in memory by a sensor that republishes them when asked
    // (at most once a second), as `tsusen run` does.
    let today = DAY0 + 10;
    let live_rows = day_rows(today, 100_000, &mut rng);
    let stop = Arc::new(AtomicBool::new(false));
    publish(
        &s.live,
        LiveSummary {
            rows: live_rows.clone(),
            ..Default::default()
        },
    );
    let sensor = {
        let (live, stop) = (s.live.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if live.wanted() {
                    publish(
                        &live,
                        LiveSummary {
                            rows: live_rows.clone(),
                            ..Default::default()
                        },
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    report(&s, "live 100k rows: /api/attempts", "/api/attempts");
    report(&s, "live 100k rows: /api/trendlines", "/api/trendlines");
    load(&s, "live: load /api/trendlines", "/api/trendlines", 5);
    load(
        &s,
        "live: load /api/attempts?port=22&sort=count",
        "/api/attempts?port=22&sort=count",
        5,
    );
    stop.store(true, Ordering::Relaxed);
    sensor.join().unwrap();
    println!(
        "peak RSS of the test process: {:.0} MiB (before serving: {rss0:.0} MiB)",
        peak_rss_mib()
    );
    drop(s);

    // One day of a million rows.
    let dir = temp_dir("perf1");
    write_day(&dir, DAY0, &day_rows(DAY0, 1_000_000, &mut rng));
    let len = std::fs::metadata(dir.join("2024-03-01.csv")).unwrap().len();
    let s = start_on(dir);
    println!("-- 1 day of 1 000 000 rows ({} MB)", len / 1_000_000);
    report(&s, "/api/attempts", "/api/attempts");
    report(
        &s,
        "/api/attempts?port=445&sort=count",
        "/api/attempts?port=445&sort=count",
    );
    report(&s, "/api/trendlines", "/api/trendlines");
    let _: IpAddr = "203.0.113.1".parse().unwrap();
    println!("peak RSS of the test process: {:.0} MiB", peak_rss_mib());
}

/// The load measure: `wrk -t2 -c50 -d10s --latency` against `/`, `/api/trendlines` and a
/// filtered `/api/attempts` page, over 10 days of 100 000 rows. First against the real binary,
/// `tsusen serve` with the GeoIP and ASN test databases (so every page also looks up its rows'
/// countries), whose peak RSS (VmHWM) is read from /proc when the load is over; then in this
/// process with a live sensor republishing 100 000 rows whenever asked. Skips when wrk is not
/// installed.
#[test]
#[ignore]
fn wrk_load() {
    if wrk_missing() {
        return;
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let dir = temp_dir("wrk");
    for i in 0..10 {
        write_day(&dir, DAY0 + i, &day_rows(DAY0 + i, 100_000, &mut rng));
    }
    let live_rows = day_rows(DAY0 + 10, 100_000, &mut rng);
    let attempts = "/api/attempts?port=22&sort=count&page=2";

    // The server as shipped, in a process of its own.
    let db = |f: &str| format!("{}/tests/geoip/{f}", env!("CARGO_MANIFEST_DIR"));
    let (mut child, addr) = serve_process(&[
        "--log-dir",
        dir.to_str().unwrap(),
        "--geoip",
        &db("country.mmdb"),
        "--asn",
        &db("asn.mmdb"),
    ]);
    let warm = |path: &str| assert_eq!(get_from(addr, path, 60).status, 200);
    let before = vm_hwm_mib(child.id());
    // Warm the caches as a first visit would.
    for p in ["/api/trendlines", attempts] {
        warm(p);
    }
    println!("-- tsusen serve, 10 days x 100 000 rows, GeoIP and ASN databases, files only");
    wrk(addr, "/", "/");
    wrk(addr, "/api/trendlines", "/api/trendlines");
    wrk(addr, attempts, attempts);
    println!(
        "peak RSS of tsusen serve: {:.0} MiB (idle after start: {before:.0} MiB)",
        vm_hwm_mib(child.id())
    );
    // SAFETY: signalling the child we started, by its pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let _ = child.wait();

    // In this process, with a live sensor.
    let rss0 = peak_rss_mib();
    let s = start_on(dir);
    for p in ["/api/trendlines", attempts] {
        assert_eq!(get(&s, p, &[]).status, 200);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sensor = {
        let (live, stop) = (s.live.clone(), stop.clone());
        std::thread::spawn(move || {
            let summary = || LiveSummary {
                rows: live_rows.clone(),
                ..Default::default()
            };
            publish(&live, summary());
            let mut n = 1;
            while !stop.load(Ordering::Relaxed) {
                if live.wanted() {
                    publish(&live, summary());
                    n += 1;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            n
        })
    };
    println!("-- in-process server, with a live sensor holding 100 000 rows of today");
    wrk(s.addr, "/api/trendlines", "/api/trendlines");
    wrk(s.addr, attempts, attempts);
    stop.store(true, Ordering::Relaxed);
    println!("live publications: {}", sensor.join().unwrap());
    println!(
        "peak RSS of the test process: {:.0} MiB (of which {rss0:.0} MiB before the server started)",
        peak_rss_mib()
    );
}

/// One `wrk -t2 -c50 -d10s --latency` run on `path`, summarised on one line.
fn wrk(addr: std::net::SocketAddr, label: &str, path: &str) {
    let url = format!("http://{addr}{path}");
    run_wrk(label, &["-H", "Accept-Encoding: gzip", &url]);
}

/// `wrk -t2 -c50 -d10s --latency` with `args` (the URL among them), summarised on one line.
fn run_wrk(label: &str, args: &[&str]) {
    let out = std::process::Command::new("wrk")
        .args(["-t2", "-c50", "-d10s", "--latency"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let pick = |prefix: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string())
            .unwrap_or_else(|| "?".into())
    };
    let errors = text
        .lines()
        .find(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
        .unwrap_or("no errors");
    println!(
        "{label:<48} {:>9} req/s  p50 {:>8}  p99 {:>8}  ({})",
        pick("Requests/sec:"),
        pick("50%"),
        pick("99%"),
        errors.trim()
    );
}

/// REPORT_CACHE_ROWS measured: the real `tsusen serve` over 30 days of 30 000 rows (a router's
/// month), once with the default and once with each board value, under the same requests, in
/// phases whose single requests cover one day at most until the last two:
/// 1. a visitor browsing each day's summary and details pages (90 requests);
/// 2. `wrk -t2 -c50 -d10s` on `/api/trendlines`, then rotating over those 90 pages (too many
///    for the answer cache, so the day cache does the work);
/// 3. the default page's details (`/api/attempts`: the last TRENDLINE_PERIOD days merged);
/// 4. the whole month's details.
///
/// The peak RSS (VmHWM) after 1 and 2 is what the caches cost; 3 and 4 add a single request's
/// own memory (its days and their merge, up to 2 × 64 B a row of the period). Prints VmHWM and
/// VmRSS after each phase, req/s and the cached rows the server reports. Skips when wrk is not
/// installed. `cargo test --release --test report_perf cache_rows -- --ignored --nocapture`;
/// with `TSUSEN_BIN=target/cross/x86_64-unknown-linux-musl/tsusen` (made by `cross/build
/// x86_64-unknown-linux-musl`) it measures the static musl build the boards run instead.
#[test]
#[ignore]
fn wrk_report_cache_rows() {
    if wrk_missing() {
        return;
    }
    const DAYS: i64 = 30;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let dir = temp_dir("cache-rows");
    for i in 0..DAYS {
        write_day(&dir, DAY0 + i, &day_rows(DAY0 + i, 30_000, &mut rng));
    }
    let date = |i: i64| {
        chrono::NaiveDate::from_num_days_from_ce_opt((DAY0 + i + 719_163) as i32)
            .unwrap()
            .format("%Y-%m-%d")
            .to_string()
    };
    let mut rotating = Vec::new();
    for i in 0..DAYS {
        let d = date(i);
        rotating.push(format!("/api/summary?day={d}"));
        rotating.push(format!("/api/attempts?from={d}&to={d}&sort=count"));
        rotating.push(format!("/api/attempts?from={d}&to={d}&page=2"));
    }
    let script = dir.join("rotate.lua");
    let list: Vec<String> = rotating.iter().map(|p| format!("\"{p}\"")).collect();
    std::fs::write(
        &script,
        format!(
            "local paths = {{{}}}\nlocal i = math.random(#paths)\n\
             request = function()\n  i = i % #paths + 1\n  \
             return wrk.format(\"GET\", paths[i], {{[\"Accept-Encoding\"] = \"gzip\"}})\nend\n",
            list.join(",")
        ),
    )
    .unwrap();
    let month = format!("/api/attempts?from={}&to={}", date(0), date(DAYS - 1));
    println!(
        "-- tsusen serve ({}), {DAYS} days x 30 000 rows ({} rows)",
        std::env::var("TSUSEN_BIN").unwrap_or_else(|_| "this build".into()),
        DAYS * 30_000
    );
    // The default, then the two OpenWrt profiles' REPORT_CACHE_ROWS and REPORT_REQUEST_ROWS.
    for (rows, request) in [
        (None, None),
        (Some(65_536), Some(524_288)),
        (Some(32_768), Some(262_144)),
    ] {
        let mut setting = rows.map_or(String::new(), |r| format!("REPORT_CACHE_ROWS {r}\n"));
        if let Some(r) = request {
            setting.push_str(&format!("REPORT_REQUEST_ROWS {r}\n"));
        }
        let (mut child, addr) = serve_configured(&dir, &setting);
        let pid = child.id();
        let idle = vm_hwm_mib(pid);
        let fetch = |path: &str| get_from(addr, path, 120);
        let browse = |path: &str| {
            let a = fetch(path);
            assert_eq!(a.status, 200, "{path}");
            a
        };
        let cached =
            || report_support::Json::parse(&browse("/api/summary").text())["cached_rows"].num();
        let label = rows.map_or("default (1 048 576)".to_string(), |r| r.to_string());
        let request = request.map_or("default (8 388 608)".to_string(), |r| r.to_string());
        println!("REPORT_CACHE_ROWS {label}, REPORT_REQUEST_ROWS {request}: idle {idle:.1} MiB");
        for p in &rotating {
            browse(p);
        }
        println!(
            "  1. browsed 30 days' pages: {}, cached_rows {}",
            memory(pid),
            cached()
        );
        wrk(addr, "  2. wrk /api/trendlines", "/api/trendlines");
        // Let the server close the last run's connections: a peer may hold 64 at most.
        std::thread::sleep(Duration::from_secs(2));
        wrk_script(addr, "  2. wrk rotating 90 day pages", &script);
        println!("  after wrk: {}, cached_rows {}", memory(pid), cached());
        for (what, path) in [
            ("3. the default page's details (10 days)", "/api/attempts"),
            ("4. the month's details (30 days)", month.as_str()),
        ] {
            let t = Instant::now();
            // A period over REPORT_REQUEST_ROWS is refused (400) before it is read whole.
            let status = fetch(path).status;
            assert!(status == 200 || status == 400, "{path}: {status}");
            let ms = t.elapsed().as_secs_f64() * 1e3;
            println!(
                "  {what}, {status} in {ms:.0} ms: {}, cached_rows {}",
                memory(pid),
                cached()
            );
        }
        // SAFETY: signalling the child we started, by its pid.
        unsafe {
            libc::kill(pid as i32, libc::SIGTERM);
        }
        let _ = child.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A flood's day on a router: the figures of a day far larger than REPORT_REQUEST_ROWS stream
/// from its file, in fixed memory. Two flooded days of spoofed SYNs to port 23 next to 8
/// ordinary ones: a compacted day of 3 M rows, and "today" of 2 M rows in 20 appended runs.
/// `tsusen serve` with the 128 MiB router's values draws the chart and the summaries (the
/// estimates are checked against the exact counts) and pages the details.
#[test]
#[ignore]
fn a_flooded_day() {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let dir = temp_dir("flooded-day");
    let order = RowOrder::new();
    // `n` spoofed SYNs to 23/tcp and `normal` rows of an ordinary day.
    let flood = |day: i64, n: usize, normal: usize, rng: &mut Rng| -> Vec<Row> {
        let mut rows: Vec<Row> = (0..n)
            .map(|_| {
                let s = rng.next();
                let first = day * 86_400 + (s % 86_000) as i64;
                Row {
                    key: Key {
                        proto: 6,
                        port: Some(23),
                        dst: Addr::v4([198, 51, 100, (s >> 40) as u8 % 8]),
                        src: Addr::v4(((s >> 8) as u32 | 1).to_be_bytes()),
                    },
                    first,
                    last: first,
                    count: 1,
                }
            })
            .collect();
        rows.extend(day_rows(day, normal, rng));
        rows.sort_unstable_by(|a, b| order.keys(&a.key, &b.key));
        rows.dedup_by(|a, b| a.key == b.key);
        rows
    };
    // (distinct sources on port 23/tcp, distinct sources) of a day's rows.
    let exact = |rows: &[Row]| {
        let telnet: std::collections::HashSet<Addr> = rows
            .iter()
            .filter(|r| r.key.proto == 6 && r.key.port == Some(23))
            .map(|r| r.key.src)
            .collect();
        let all: std::collections::HashSet<Addr> = rows.iter().map(|r| r.key.src).collect();
        (telnet.len() as u64, all.len() as u64)
    };
    for i in 0..8 {
        write_day(&dir, DAY0 + i, &day_rows(DAY0 + i, 30_000, &mut rng));
    }
    let compacted = flood(DAY0 + 8, 3_000_000, 30_000, &mut rng);
    write_day(&dir, DAY0 + 8, &compacted);
    let compacted_exact = exact(&compacted);
    drop(compacted);
    // Today: runs appended one after another, as the sensor's flushes leave them.
    let today_path = dir.join(format!("{}.csv", date_of(DAY0 + 9)));
    let mut w = RowWriter::new(std::io::BufWriter::new(
        std::fs::File::create(&today_path).unwrap(),
    ));
    w.header().unwrap();
    let mut today_all: Vec<Row> = Vec::new();
    for i in 0..20 {
        let run = flood(
            DAY0 + 9,
            100_000,
            if i == 0 { 30_000 } else { 1_500 },
            &mut rng,
        );
        for r in &run {
            w.row(r).unwrap();
        }
        today_all.extend(run);
    }
    w.finish().unwrap().flush().unwrap();
    let today_exact = exact(&today_all);
    drop(today_all);
    let (mut child, addr) = serve_configured(
        &dir,
        "REPORT_CACHE_ROWS 32768\nREPORT_REQUEST_ROWS 262144\n",
    );
    let pid = child.id();
    println!(
        "-- tsusen serve ({}), REPORT_CACHE_ROWS 32768, REPORT_REQUEST_ROWS 262144: idle {:.1} MiB",
        std::env::var("TSUSEN_BIN").unwrap_or_else(|_| "this build".into()),
        vm_hwm_mib(pid)
    );
    let fetch = |path: &str| {
        let t = Instant::now();
        let a = get_from(addr, path, 300);
        assert_eq!(a.status, 200, "{path}: {}", a.text());
        (report_support::Json::parse(&a.text()), t.elapsed())
    };
    let (trend, took) = fetch("/api/trendlines");
    println!(
        "  /api/trendlines (10 days, two flooded), first {:.0} ms: VmHWM {:.1} MiB, estimated {:?}",
        took.as_secs_f64() * 1e3,
        vm_hwm_mib(pid),
        trend["estimated"]
    );
    let (_, again) = fetch("/api/trendlines");
    println!("  again (kept answer): {:.1} ms", again.as_secs_f64() * 1e3);
    for (day, (telnet, all), label) in [
        (DAY0 + 8, compacted_exact, "compacted day, 3 M rows"),
        (DAY0 + 9, today_exact, "today, 2 M rows in 20 runs"),
    ] {
        let (sum, took) = fetch(&format!("/api/summary?day={}", date_of(day)));
        assert!(sum["estimated"].bool());
        let sources = sum["sources"].num();
        let port23 = sum["top_ports"][0]["sources"].num();
        let off = |e: f64, x: u64| 100.0 * (e - x as f64) / x as f64;
        println!(
            "  {label}: summary in {:.0} ms; sources {sources} (exact {all}, {:+.2} %), \
             23/tcp {port23} (exact {telnet}, {:+.2} %); VmHWM {:.1} MiB",
            took.as_secs_f64() * 1e3,
            off(sources, all),
            off(port23, telnet),
            vm_hwm_mib(pid)
        );
        assert!(off(sources, all).abs() < 4.0 && off(port23, telnet).abs() < 4.0);
    }
    // The details stream too: the loudest rows of a flooded day, and of the whole period.
    for (label, path) in [
        (
            "details of the compacted day by count",
            format!(
                "/api/attempts?from={0}&to={0}&sort=count",
                date_of(DAY0 + 8)
            ),
        ),
        (
            "details of the 10 days (default page)",
            "/api/attempts".to_string(),
        ),
    ] {
        let (a, took) = fetch(&path);
        println!(
            "  {label}: {} rows, in {:.0} ms; VmHWM {:.1} MiB",
            a["total"].num(),
            took.as_secs_f64() * 1e3,
            vm_hwm_mib(pid)
        );
    }
    // A stream runs without the data lock: an ordinary day's summary meanwhile waits for no
    // more than its own work.
    let long = std::thread::spawn(move || {
        let t = Instant::now();
        assert_eq!(get_from(addr, "/api/attempts?sort=first", 300).status, 200);
        t.elapsed()
    });
    std::thread::sleep(Duration::from_millis(500));
    let (_, meanwhile) = fetch(&format!("/api/summary?day={}", date_of(DAY0 + 3)));
    let long = long.join().unwrap();
    println!(
        "  an ordinary day's summary while the 10 days' details stream ({:.0} ms): {:.0} ms",
        long.as_secs_f64() * 1e3,
        meanwhile.as_secs_f64() * 1e3
    );
    assert!(meanwhile < long / 2);
    // SAFETY: signalling the child we started, by its pid.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

fn date_of(day: i64) -> String {
    chrono::NaiveDate::from_num_days_from_ce_opt((day + 719_163) as i32)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string()
}

/// `tsusen serve` over the day files of `dir`, with `settings` as its configuration file.
fn serve_configured(
    dir: &std::path::Path,
    settings: &str,
) -> (std::process::Child, std::net::SocketAddr) {
    let conf = dir.join("serve.conf");
    std::fs::write(&conf, settings).unwrap();
    serve_process(&[
        "--config",
        conf.to_str().unwrap(),
        "--log-dir",
        dir.to_str().unwrap(),
    ])
}

/// `tsusen serve ARGS` on a free port of loopback, once it listens. TSUSEN_BIN, when set,
/// names the binary (the static musl build the boards run, say).
fn serve_process(args: &[&str]) -> (std::process::Child, std::net::SocketAddr) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bin = std::env::var("TSUSEN_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_tsusen").into());
    let child = std::process::Command::new(bin)
        .arg("serve")
        .args(args)
        .args(["--http", &format!("127.0.0.1:{port}")])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let t = Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "tsusen serve is not listening"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, addr)
}

/// A memory figure of `/proc/PID/status` (`pid` may be "self"), MiB; 0 when unreadable.
fn status_mib(pid: &str, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

/// `VmHWM x MiB (VmRSS y)` of a process.
fn memory(pid: u32) -> String {
    format!(
        "VmHWM {:.1} MiB (VmRSS {:.1})",
        vm_hwm_mib(pid),
        status_mib(&pid.to_string(), "VmRSS")
    )
}

/// The process's peak resident memory (VmHWM), MiB.
fn vm_hwm_mib(pid: u32) -> f64 {
    status_mib(&pid.to_string(), "VmHWM")
}

/// `wrk -t2 -c50 -d10s` with a request script, summarised on one line.
fn wrk_script(addr: std::net::SocketAddr, label: &str, script: &std::path::Path) {
    let url = format!("http://{addr}/");
    run_wrk(label, &["-s", script.to_str().unwrap(), &url]);
}
