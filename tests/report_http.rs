//! The report server against a real listening socket: every endpoint over a prepared log
//! directory, filters, paging, gzip, downloads, path traversal, the limits, slow clients.
//! Requests are raw HTTP over `TcpStream`, so nothing here trusts a client library.

mod report_support;

use report_support::{get, request, start, Json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tsusen::report::{publish, LiveSummary};
use tsusen::tables::{Key, Row};

#[test]
fn page_is_one_file_and_gzipped_when_asked() {
    let s = start();
    let plain = get(&s, "/", &[]);
    assert_eq!(plain.status, 200);
    assert!(plain
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    let html = String::from_utf8(plain.body.clone()).unwrap();
    assert!(html.contains("<svg id=\"chart\""));
    // Nothing from another host: no absolute URL in any src/href, and a CSP that forbids it.
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    assert!(plain
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'none'"));
    let gz = get(&s, "/", &[("Accept-Encoding", "deflate, gzip")]);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(gz.gunzip(), plain.body);
    assert!(
        gz.body.len() < 100 * 1024,
        "{} bytes gzipped",
        gz.body.len()
    );
    println!(
        "page: {} bytes, {} gzipped",
        plain.body.len(),
        gz.body.len()
    );
    let refused = get(&s, "/", &[("Accept-Encoding", "gzip;q=0")]);
    assert_eq!(refused.header("content-encoding"), None);
    let head = request(
        &s,
        "HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-length").unwrap(),
        plain.body.len().to_string()
    );
}

#[test]
fn trendlines_follow_tsusens_rules_and_mark_spikes() {
    let s = start();
    let r = get(&s, "/api/trendlines", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(
        j["days"].strings(),
        [
            "2024-03-01",
            "2024-03-02",
            "2024-03-03",
            "2024-03-04",
            "2024-03-05"
        ]
    );
    let labels: Vec<String> = j["series"]
        .items()
        .iter()
        .map(|x| x["label"].str().to_string())
        .collect();
    // Ordered by the last day; UDP 53 (never steady, no burst) and TCP 80 (once) are hidden.
    assert_eq!(labels, ["TCP 23 (telnet)", "TCP 22 (ssh)", "ICMP"]);
    assert_eq!(j["hidden"].num(), 2.0);
    let s23 = &j["series"].items()[0];
    assert_eq!(s23["counts"].nums(), [0.0, 0.0, 0.0, 0.0, 40.0]);
    assert!(s23["spike"].bool());
    assert!(!j["series"].items()[1]["spike"].bool());
    assert_eq!(j["series"].items()[1]["counts"].nums(), [5.0; 5]);
    // A filter draws every matching series, as tsusen did.
    let f = get(&s, "/api/trendlines?ip%5B%5D=192.0.2.77", &[]).json();
    let labels: Vec<&str> = f["series"]
        .items()
        .iter()
        .map(|x| x["label"].str())
        .collect();
    assert_eq!(labels, ["UDP 53 (dns)"]);
    // The period: the last TRENDLINE_PERIOD days, or from/to.
    let p = get(&s, "/api/trendlines?from=2024-03-02&to=2024-03-03", &[]).json();
    assert_eq!(p["days"].strings(), ["2024-03-02", "2024-03-03"]);
}

#[test]
fn attempts_merge_the_period_per_key_filter_sort_and_page() {
    let s = start();
    let j = get(&s, "/api/attempts?size=500", &[]).json();
    assert_eq!(j["total"].num(), 50.0);
    // TCP 22 from 203.0.113.1: five days of 2 attempts, first on the first day, last on the last.
    let j = get(&s, "/api/attempts?ip[]=203.0.113.1&port=22&proto=tcp", &[]).json();
    assert_eq!(j["total"].num(), 1.0);
    let row = &j["rows"].items()[0];
    assert_eq!(row[0].str(), "TCP");
    assert_eq!(row[1].num(), 22.0);
    assert_eq!(row[2].str(), "ssh");
    assert_eq!(row[3].str(), "198.51.100.10");
    assert_eq!(row[4].str(), "203.0.113.1");
    assert_eq!(row[5].num(), (report_support::DAY0 * 86_400 + 100) as f64);
    assert_eq!(
        row[6].num(),
        ((report_support::DAY0 + 4) * 86_400 + 150) as f64
    );
    assert_eq!(row[7].num(), 10.0);
    // The original's unsorted file with a repeated line is folded too.
    let j = get(
        &s,
        "/api/attempts?ip[]=198.51.100.0/24&port=-&proto=ICMP",
        &[],
    )
    .json();
    assert_eq!(j["total"].num(), 3.0);
    assert!(j["rows"].items().iter().all(|r| r[7].num() == 5.0 + 1.0));
    // CIDR, range, IPv6, text.
    let n = |q: &str| get(&s, &format!("/api/attempts?{q}"), &[]).json()["total"].num();
    assert_eq!(n("ip[]=203.0.113.0/29"), 5.0 + 7.0);
    assert_eq!(n("ip[]=203.0.113.1-203.0.113.3"), 3.0 + 3.0);
    assert_eq!(n("ip[]=2001:db8::/32"), 1.0);
    assert_eq!(n("q=telnet"), 40.0);
    assert_eq!(n("q=dns+192.0.2"), 1.0);
    assert_eq!(n("from=2024-03-05&to=2024-03-05&port=23"), 40.0);
    assert_eq!(n("from=2024-03-01&to=2024-03-01&port=23"), 0.0);
    // Sort on every column, both ways, and pages that neither overlap nor skip.
    for col in [
        "proto", "port", "service", "dst", "src", "first", "last", "count",
    ] {
        for dir in ["asc", "desc"] {
            let mut seen = Vec::new();
            for page in 1..=4 {
                let j = get(
                    &s,
                    &format!("/api/attempts?sort={col}&dir={dir}&size=15&page={page}"),
                    &[],
                )
                .json();
                assert_eq!(j["sort"].str(), col);
                seen.extend(j["rows"].items().iter().cloned());
            }
            assert_eq!(seen.len(), 50, "{col} {dir}");
            let keys: Vec<String> = seen
                .iter()
                .map(|r| {
                    format!(
                        "{} {} {} {}",
                        r[0].str(),
                        r[1].text(),
                        r[3].str(),
                        r[4].str()
                    )
                })
                .collect();
            let mut unique = keys.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), 50, "{col} {dir}: a row repeated across pages");
            if col == "count" {
                let counts: Vec<f64> = seen.iter().map(|r| r[7].num()).collect();
                let mut sorted = counts.clone();
                sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
                if dir == "desc" {
                    sorted.reverse();
                }
                assert_eq!(counts, sorted);
            }
        }
    }
    for bad in [
        "sort=nope",
        "dir=up",
        "size=0",
        "size=100000",
        "page=0",
        "ip[]=300.1.1.1",
        "from=2024-03-05&to=2024-03-01",
        "from=yesterday",
    ] {
        let r = get(&s, &format!("/api/attempts?{bad}"), &[]);
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.json()["error"].str().len() > 3);
    }
}

#[test]
fn summary_and_metrics_without_and_with_a_sensor() {
    let s = start();
    let j = get(&s, "/api/summary", &[]).json();
    assert_eq!(j["day"].str(), "2024-03-05");
    assert_eq!(j["sources"].num(), 40.0 + 3.0);
    assert!(!j["sensor"]["running"].bool());
    assert_eq!(j["top_ports"].items()[0]["label"].str(), "TCP 23 (telnet)");
    let m = get(&s, "/metrics", &[]).text();
    assert!(m.contains("tsusen_sensor_up 0"), "{m}");
    assert!(!m.contains("tsusen_packets_total"));

    // A sensor publishes today's rows held in memory: the API shows them at once.
    let today = report_support::DAY0 + 5;
    let mut summary = LiveSummary {
        started: today * 86_400,
        at: today * 86_400 + 500,
        interface: "eth1".into(),
        table_rows: 1,
        table_capacity: 1000,
        ..Default::default()
    };
    summary.stats.packets = 1234;
    summary.stats.attempts = 7;
    let row = Row {
        key: Key {
            proto: 6,
            port: Some(22),
            dst: "198.51.100.10".parse::<std::net::IpAddr>().unwrap().into(),
            src: "203.0.113.1".parse::<std::net::IpAddr>().unwrap().into(),
        },
        first: today * 86_400 + 400,
        last: today * 86_400 + 450,
        count: 7,
    };
    summary.rows.push(row);
    summary.stamp_files(&s.dir);
    publish(&s.live, summary);
    let j = get(&s, "/api/summary", &[]).json();
    assert_eq!(j["day"].str(), "2024-03-06");
    assert!(j["live"].bool());
    assert_eq!(j["attempts"].num(), 7.0);
    assert!(j["sensor"]["running"].bool());
    assert_eq!(j["sensor"]["packets"].num(), 1234.0);
    let t = get(&s, "/api/trendlines", &[]).json();
    assert!(t["live"].bool());
    assert_eq!(t["days"].strings().last().unwrap(), "2024-03-06");
    let a = get(&s, "/api/attempts?ip[]=203.0.113.1&port=22", &[]).json();
    assert_eq!(a["rows"].items()[0][7].num(), 17.0);
    let m = get(&s, "/metrics", &[]).text();
    for line in [
        "tsusen_sensor_up 1",
        "tsusen_packets_total 1234",
        "tsusen_attempts_total 7",
        "tsusen_table_capacity 1000",
        "# TYPE tsusen_flow_evictions_total counter",
    ] {
        assert!(m.contains(line), "{line} in\n{m}");
    }
    // The sensor flushes that row into the day's file: until it publishes again, the report
    // counts it once, from the file, not twice.
    let mut w = tsusen::store::RowWriter::new(Vec::new());
    w.header().unwrap();
    w.row(&row).unwrap();
    std::fs::write(s.dir.join("2024-03-06.csv"), w.into_inner()).unwrap();
    let a = get(&s, "/api/attempts?ip[]=203.0.113.1&port=22", &[]).json();
    assert_eq!(a["rows"].items()[0][7].num(), 17.0);
    assert_eq!(get(&s, "/api/summary", &[]).json()["attempts"].num(), 7.0);
}

#[test]
fn csv_download_and_paths_that_must_not_reach_the_filesystem() {
    let s = start();
    let r = get(&s, "/2024-03-02.csv", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, std::fs::read(s.dir.join("2024-03-02.csv")).unwrap());
    assert!(r.header("content-type").unwrap().starts_with("text/csv"));
    // A file beside the day files that a traversal would reach.
    std::fs::write(s.dir.join("secret.csv"), "no").unwrap();
    for path in [
        "/2024-02-30.csv",
        "/2024-03-09.csv",
        "/../etc/passwd",
        "/%2e%2e/etc/passwd",
        "/%2e%2e%2fetc%2fpasswd",
        "/..%2f2024-03-02.csv",
        "//etc/passwd",
        "/secret.csv",
        "/2024-03-02.csv/",
        "/2024-03-02.CSV",
        "/./2024-03-02.csv",
        "/2024-03-02.csv%00",
        "/etc/passwd",
        "/api/../2024-03-02.csv",
    ] {
        let r = get(&s, path, &[]);
        assert_eq!(r.status, 404, "{path}");
        assert!(!r.text().contains("root:"), "{path}");
    }
}

#[test]
fn limits_refuse_what_does_not_fit() {
    let s = start();
    let r = request(
        &s,
        "POST /api/summary HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 405);
    let r = request(
        &s,
        "GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    );
    assert_eq!(r.status, 413);
    let mut many = String::from("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n");
    for i in 0..60 {
        many.push_str(&format!("X-{i}: y\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(request(&s, &many).status, 431);
    // A request head larger than the buffer.
    let big = format!(
        "GET /?{} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        "a".repeat(20_000)
    );
    let r = request(&s, &big);
    assert!(r.status == 400 || r.status == 0, "status {}", r.status);
    let r = request(&s, "NONSENSE\r\n\r\n");
    assert!(r.status == 400 || r.status == 0, "status {}", r.status);
    // The server still answers.
    assert_eq!(get(&s, "/api/summary", &[]).status, 200);
}

#[test]
fn slow_clients_are_cut_off_and_do_not_block_others() {
    let s = start();
    // Slowloris: a request head that never ends, a byte at a time.
    let t0 = Instant::now();
    let mut slow = TcpStream::connect(s.addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n").unwrap();
    let mut slow2 = TcpStream::connect(s.addr).unwrap();
    let dribble = std::thread::spawn(move || {
        for _ in 0..40 {
            if slow2.write_all(b"X").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    });
    // Meanwhile others are served at once.
    let t1 = Instant::now();
    assert_eq!(get(&s, "/api/summary", &[]).status, 200);
    assert!(t1.elapsed() < Duration::from_secs(2));
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "a slow client held its connection for {took:?}"
    );
    dribble.join().unwrap();
    println!("slow client cut off after {took:?}");
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let s = start();
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for _ in 0..3 {
        c.write_all(b"GET /api/summary HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let r = report_support::read_response(&mut c);
        assert_eq!(r.status, 200);
        let _ = Json::parse(&r.text());
    }
}

#[test]
fn malformed_clients_never_stop_the_server() {
    let s = start();
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let seeds: [&[u8]; 6] = [
        b"GET /api/attempts?ip[]=1.2.3.4 HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
        b"HEAD /2024-03-01.csv HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /api/trendlines?from=2024-03-01 HTTP/1.1\r\nAccept-Encoding: gzip\r\n\r\n",
        b"\xff\xfe\x00GET \x80 HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
    ];
    for i in 0..200 {
        let mut req = seeds[i % seeds.len()].to_vec();
        // Flip, cut or repeat bytes.
        for _ in 0..(next() % 6) {
            if req.is_empty() {
                break;
            }
            let at = (next() as usize) % req.len().max(1);
            match next() % 3 {
                0 => req[at] = next() as u8,
                1 => req.truncate(at),
                _ => {
                    let piece = req[at..].to_vec();
                    req.extend_from_slice(&piece);
                }
            }
        }
        let mut c = TcpStream::connect(s.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let _ = c.write_all(&req);
        let mut sink = [0u8; 4096];
        let _ = c.read(&mut sink);
    }
    // Many idle connections from one host: that host is refused past its share, and another
    // host (127.0.0.2) is still served at once.
    let idle: Vec<TcpStream> = (0..80)
        .map(|_| TcpStream::connect(s.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    let mut other = connect_from([127, 0, 0, 2], s.addr);
    other
        .write_all(b"GET /api/summary HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let a = report_support::read_response(&mut other);
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["day"].str(), "2024-03-05");
    assert!(t.elapsed() < Duration::from_secs(2));
    drop(idle);
}

/// A connection from a chosen local address (std cannot bind before connecting).
fn connect_from(src: [u8; 4], to: std::net::SocketAddr) -> TcpStream {
    use std::os::fd::FromRawFd;
    let std::net::SocketAddr::V4(to) = to else {
        panic!("IPv4 only")
    };
    let sin = |ip: [u8; 4], port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(ip),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor we own, with valid addresses.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let a = sin(src, 0);
        assert_eq!(
            libc::bind(fd, &a as *const _ as *const libc::sockaddr, len),
            0
        );
        let b = sin(to.ip().octets(), to.port());
        assert_eq!(
            libc::connect(fd, &b as *const _ as *const libc::sockaddr, len),
            0
        );
        let c = TcpStream::from_raw_fd(fd);
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c
    }
}

/// The answers that do not depend on the caches, from `/api/summary`.
fn summary_figures(s: &report_support::Server, query: &str) -> Json {
    let j = get(s, &format!("/api/summary{query}"), &[]).json();
    let Json::Obj(fields) = j else {
        panic!("summary is not an object")
    };
    Json::Obj(
        fields
            .into_iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "cached_rows" | "cached_bytes" | "cache_rows" | "sensor"
                )
            })
            .collect(),
    )
}

/// (cached_rows, cached_bytes, cache_rows) as the summary reports them.
fn cache_figures(s: &report_support::Server) -> (u64, u64, u64) {
    let j = get(s, "/api/summary", &[]).json();
    (
        j["cached_rows"].num() as u64,
        j["cached_bytes"].num() as u64,
        j["cache_rows"].num() as u64,
    )
}

/// REPORT_CACHE_ROWS bounds what the report keeps between requests; a small value changes
/// nothing in the answers. The sample days hold 8, 9, 9, 9 and 48 rows (50 merged over the
/// five days, 10 over the first three): with 20, some days fit and some periods do not.
#[test]
fn a_small_report_cache_gives_the_same_answers_and_keeps_within_it() {
    use report_support::{sample_days, start_with, temp_dir, DAY0};
    use tsusen::config::Settings;
    let server = |rows: usize| {
        let dir = temp_dir("cache");
        sample_days(&dir);
        start_with(Settings {
            log_directory: dir,
            report_cache_rows: rows,
            ..Default::default()
        })
    };
    let (big, small, none) = (server(1 << 20), server(20), server(0));
    // The summary itself reads the last day (48 rows): the default keeps it and its figures,
    // 20 keeps neither.
    let (rows, bytes, setting) = cache_figures(&big);
    assert_eq!((rows, setting), (48, 1 << 20));
    assert!(bytes > 0);
    assert_eq!(cache_figures(&small), (0, 0, 20));
    let paths = [
        "/api/trendlines",
        "/api/attempts",
        "/api/attempts?from=2024-03-01&to=2024-03-03",
        "/api/attempts?from=2024-03-02&to=2024-03-02",
        "/api/attempts?from=2024-03-05&to=2024-03-05&sort=count",
        "/api/attempts?port=22&sort=src&size=3&page=2",
        "/api/trendlines?from=2024-03-01&to=2024-03-03",
        "/api/trendlines?port=23",
    ];
    let check = |path: &str, most: &mut u64| {
        let want = get(&big, path, &[]);
        assert_eq!(want.status, 200, "{path}: {}", want.text());
        for s in [&small, &none] {
            let got = get(s, path, &[]);
            assert_eq!(got.status, 200, "{path}: {}", got.text());
            assert_eq!(got.text(), want.text(), "{path}");
        }
        let (rows, bytes, _) = cache_figures(&small);
        assert!(rows <= 20, "{path}: {rows} rows kept of 20");
        // Day figures at most 8 bytes per row of the setting, answers 4.
        assert!(bytes <= 20 * 12, "{path}: {bytes} bytes kept");
        assert_eq!(cache_figures(&none).0, 0, "{path}");
        assert_eq!(cache_figures(&none).1, 0, "{path}");
        *most = (*most).max(rows);
    };
    let mut most = 0;
    // Twice over, so the second round meets what the first one kept.
    for _ in 0..2 {
        for p in paths {
            check(p, &mut most);
        }
        for day in 1..=5 {
            let q = format!("?day=2024-03-0{day}");
            assert_eq!(summary_figures(&small, &q), summary_figures(&big, &q));
        }
    }
    // Days 2 and 3 are in the day cache (9 + 9 rows) after the three-day period (10 rows)
    // pushed day 1 out to keep itself: 19 of 20.
    check(
        "/api/attempts?from=2024-03-01&to=2024-03-03&page=1",
        &mut most,
    );
    assert_eq!(cache_figures(&small).0, 9 + 10);
    assert_eq!(most, 19);
    // The default keeps it all: the five days (83 rows) and a merged period.
    assert!(cache_figures(&big).0 >= 83, "{:?}", cache_figures(&big));

    // A sensor's live rows on the last day: still the same answers, still within the bound.
    for s in [&big, &small, &none] {
        let today = DAY0 + 4;
        let mut summary = LiveSummary::default();
        for k in 1..=30u8 {
            summary.rows.push(Row {
                key: Key {
                    proto: 6,
                    port: Some(3389),
                    dst: "198.51.100.10".parse::<std::net::IpAddr>().unwrap().into(),
                    src: std::net::IpAddr::from([203, 0, 113, k]).into(),
                },
                first: today * 86_400 + 600,
                last: today * 86_400 + 700,
                count: 2,
            });
        }
        summary.stamp_files(&s.dir);
        publish(&s.live, summary);
    }
    for _ in 0..2 {
        for p in paths {
            check(p, &mut most);
        }
    }
    let a = get(&small, "/api/attempts?port=3389", &[]).json();
    assert_eq!(a["total"].num(), 30.0);
    assert!(most <= 20);
    let m = get(&small, "/metrics", &[]).text();
    assert!(m.contains("tsusen_report_cache_rows 20\n"), "{m}");
    let kept = cache_figures(&small).0;
    assert!(
        m.contains(&format!("tsusen_report_cached_rows {kept}\n")),
        "{kept} in\n{m}"
    );
}

/// REPORT_REQUEST_ROWS bounds what one request reads: a period (or a day) with more rows is
/// not read into memory but streamed, holding only what the answer needs, and the answers are
/// those of a server that reads it whole. What streaming cannot give (a sort by a column that
/// needs a lookup per row, a page deep in the order) is refused with a 400 that says why. The
/// sample days hold 8, 9, 9, 9 and 48 rows.
#[test]
fn a_request_over_its_rows_streams_or_is_refused() {
    use report_support::{sample_days, start_with, temp_dir};
    use tsusen::config::Settings;
    let dir = temp_dir("request-rows");
    sample_days(&dir);
    let s = start_with(Settings {
        log_directory: dir,
        report_request_rows: 30,
        ..Default::default()
    });
    let roomy = start_with(Settings {
        log_directory: s.dir.clone(),
        ..Default::default()
    });
    // 8 + 9 + 9 rows fit 30 and are read; a fourth day (35) does not, nor the last day alone
    // (48): they stream, to the same answers. A page may reach 30 / 8 = 3 rows deep.
    // The streamed answers say so (the page then looks less often).
    let (streamed, read) = (r#""streamed":true"#, r#""streamed":false"#);
    for (path, streams) in [
        ("/api/attempts?from=2024-03-01&to=2024-03-03", false),
        ("/api/attempts?from=2024-03-01&to=2024-03-04&size=3", true),
        (
            "/api/attempts?from=2024-03-01&to=2024-03-05&size=3&sort=count",
            true,
        ),
        (
            "/api/attempts?from=2024-03-05&to=2024-03-05&size=2&page=1&sort=src&dir=asc",
            true,
        ),
        (
            "/api/attempts?from=2024-03-01&to=2024-03-05&size=3&port=23",
            true,
        ),
        (
            "/api/attempts?from=2024-03-01&to=2024-03-05&size=1&page=3&sort=first",
            true,
        ),
    ] {
        let (r, x) = (get(&s, path, &[]), get(&roomy, path, &[]));
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert!(
            r.text().contains(if streams { streamed } else { read }),
            "{path}"
        );
        assert_eq!(r.text().replace(streamed, read), x.text(), "{path}");
    }
    for (path, why) in [
        (
            "/api/attempts?from=2024-03-01&to=2024-03-04",
            "pages are kept",
        ),
        (
            "/api/attempts?from=2024-03-05&to=2024-03-05&size=3&page=2",
            "pages are kept",
        ),
        (
            "/api/attempts?from=2024-03-05&to=2024-03-05&size=3&sort=country",
            "lookup",
        ),
    ] {
        let r = get(&s, path, &[]);
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert!(
            r.text().contains("REPORT_REQUEST_ROWS") && r.text().contains(why),
            "{path}: {}",
            r.text()
        );
        assert_eq!(get(&roomy, path, &[]).status, 200, "{path}");
    }
    // Trendlines read day by day: four days of at most 9 rows each are fine.
    let r = get(&s, "/api/trendlines?from=2024-03-01&to=2024-03-04", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(get(&s, "/api/summary?day=2024-03-02", &[]).status, 200);
    // A day too large to read has its figures streamed: the same as those of a server that
    // reads it whole, but said to be estimates (past 30 / 4 sources, they are). Counts this
    // small come out exact.
    let (marked, exact) = (r#""estimated":["2024-03-05"]"#, r#""estimated":[]"#);
    let r = get(&s, "/api/trendlines", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains(marked), "{}", r.text());
    let x = get(&roomy, "/api/trendlines", &[]).text();
    assert_eq!(r.text().replace(marked, exact), x);
    let day = "?day=2024-03-05";
    let (Json::Obj(r), Json::Obj(x)) = (summary_figures(&s, day), summary_figures(&roomy, day))
    else {
        panic!("summary is not an object")
    };
    let field = |o: &[(String, Json)], k: &str| o.iter().find(|(n, _)| n == k).unwrap().1.clone();
    assert!(field(&r, "estimated").bool());
    assert!(!field(&x, "estimated").bool());
    for k in ["rows", "attempts", "sources", "ports", "top_ports"] {
        assert_eq!(field(&r, k), field(&x, k), "{k}");
    }
    // The loudest sources (3 attempts each) lead both; the ties of one attempt after them
    // may differ, as the streamed figures let some of them go.
    let (Json::Arr(rt), Json::Arr(xt)) = (field(&r, "top_sources"), field(&x, "top_sources"))
    else {
        panic!("top_sources is not a list")
    };
    assert_eq!(rt[..5], xt[..5]);
}

/// The threads that compute answers run niced (REPORT_NICE), so that a long merge or stream
/// yields the CPU to the capture.
#[test]
fn answers_are_computed_at_a_lower_priority() {
    let s = report_support::start();
    assert_eq!(get(&s, "/api/trendlines", &[]).status, 200);
    let mut seen = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != "tsusen-report" {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the command's closing parenthesis: state is the 3rd field, nice the 19th.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let nice: i32 = rest.split(' ').nth(16).unwrap().parse().unwrap();
        assert_eq!(nice, tsusen::policy::REPORT_NICE, "{stat}");
        seen += 1;
    }
    assert!(seen > 0, "no tsusen-report thread");
}
