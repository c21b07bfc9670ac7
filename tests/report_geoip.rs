//! Countries, autonomous systems and tool labels in the details: the API over the tiny MaxMind
//! DB files in tests/geoip/ (written by tests/geoip/make_test_dbs.py, committed so no Python is
//! needed), in MaxMind's nested layout and the flat `country_code` layout; no database; a
//! database that does not open (one log line, and serving goes on); tools from a live sensor.

mod common;
mod report_support;

use report_support::{get, sample_days, start_with, temp_dir, Json, Server};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tsusen::addr::Addr;
use tsusen::config::Settings;
use tsusen::report::{publish, LiveSummary};

fn db(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/geoip")
        .join(name)
}

fn server(geoip: Option<&str>, asn: Option<&str>) -> Server {
    let dir = temp_dir("geoip");
    sample_days(&dir);
    start_with(Settings {
        log_directory: dir,
        geoip_database: geoip.map(db),
        asn_database: asn.map(db),
        ..Default::default()
    })
}

/// A row's source and last columns: (src, country, asn, as_name, tool).
type Extra = (String, Json, Json, Json, Json);

/// The rows of the whole sample period, by source.
fn by_source(s: &Server) -> (Json, Vec<Extra>) {
    let a = get(
        s,
        "/api/attempts?from=2024-03-01&to=2024-03-05&size=500&sort=src&dir=asc",
        &[],
    )
    .json();
    let rows = a["rows"]
        .items()
        .iter()
        .map(|r| {
            (
                r[4].str().to_string(),
                r[8].clone(),
                r[9].clone(),
                r[10].clone(),
                r[11].clone(),
            )
        })
        .collect();
    (a, rows)
}

fn s(v: &str) -> Json {
    Json::Str(v.into())
}

#[test]
fn countries_and_as_of_known_sources_in_the_nested_layout() {
    let srv = server(Some("country.mmdb"), Some("asn.mmdb"));
    let (a, rows) = by_source(&srv);
    assert!(a["geoip"].bool() && a["asn"].bool());
    assert!(!a["tools"].bool(), "no sensor, no tools");
    let cols = a["columns"].strings();
    assert_eq!(&cols[8..], ["country", "asn", "as_name", "tool"]);
    for (src, country, asn, name, tool) in &rows {
        assert_eq!(*tool, Json::Null);
        if let Some(k) = src.strip_prefix("203.0.113.") {
            let k: u8 = k.parse().unwrap();
            // 203.0.113.0/25 is JP in the test database, the rest of the /24 US.
            assert_eq!(*country, s(if k < 128 { "JP" } else { "US" }), "{src}");
            assert_eq!((asn.num(), name.str()), (64500.0, "Example Transit"));
        } else if src.starts_with("192.0.2.") {
            assert_eq!(*country, s("FR"), "{src}");
            assert_eq!((asn, name), (&Json::Null, &Json::Null), "{src}");
        } else {
            assert_eq!(src, "2001:db8:9::2");
            assert_eq!(*country, s("DE"));
            assert_eq!((asn.num(), name.str()), (64501.0, "Documentation Net"));
        }
    }
    assert!(rows.len() > 40);
    // The summary's top sources carry the country too.
    let sum = get(&srv, "/api/summary?day=2024-03-05", &[]).json();
    let top = sum["top_sources"].items();
    assert!(!top.is_empty());
    for t in top {
        let want = if t["ip"].str().starts_with("203.0.113.") {
            "JP"
        } else {
            "FR"
        };
        assert_eq!(t["country"], s(want), "{:?}", t);
    }
}

#[test]
fn the_flat_country_code_layout_and_a_city_database() {
    let srv = server(Some("flat-country.mmdb"), None);
    let (a, rows) = by_source(&srv);
    assert!(a["geoip"].bool() && !a["asn"].bool());
    for (src, country, asn, _, _) in &rows {
        let want = if src.starts_with("203.0.113.") {
            s("NL")
        } else if src.starts_with("192.0.2.") {
            s("BR")
        } else {
            Json::Null
        };
        assert_eq!(*country, want, "{src}");
        assert_eq!(*asn, Json::Null);
    }
    let city = server(Some("city.mmdb"), None);
    let (_, rows) = by_source(&city);
    let r = rows.iter().find(|r| r.0 == "203.0.113.1").unwrap();
    assert_eq!(r.1, s("CA"));
}

#[test]
fn without_a_database_the_columns_are_empty() {
    let srv = server(None, None);
    let (a, rows) = by_source(&srv);
    assert!(!a["geoip"].bool() && !a["asn"].bool());
    assert!(rows
        .iter()
        .all(|r| r.1 == Json::Null && r.2 == Json::Null && r.3 == Json::Null));
    let sum = get(&srv, "/api/summary", &[]).json();
    assert!(sum["top_sources"]
        .items()
        .iter()
        .all(|t| t["country"] == Json::Null));
}

#[test]
fn a_database_that_fails_to_open_is_one_log_line_and_serving_goes_on() {
    let dir = temp_dir("geoip-bad");
    sample_days(&dir);
    let bad = dir.join("not-a-database.mmdb");
    std::fs::write(&bad, b"this is not a MaxMind DB").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tsusen"))
        .args(["serve", "--log-dir", dir.to_str().unwrap()])
        .args(["--http", &format!("127.0.0.1:{port}")])
        .args(["--geoip", bad.to_str().unwrap()])
        .args(["--asn", "/nonexistent/GeoLite2-ASN.mmdb"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let answer = loop {
        if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::Write;
            c.write_all(b"GET /api/attempts HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut a = String::new();
            c.read_to_string(&mut a).unwrap();
            break a;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "not listening");
        std::thread::sleep(Duration::from_millis(20));
    };
    // SAFETY: signalling the child we started, by its pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"geoip\":false"), "{answer}");
    let about = |f: &str| err.lines().filter(|l| l.contains(f)).count();
    assert_eq!(about("not-a-database.mmdb"), 1, "{err}");
    assert_eq!(about("GeoLite2-ASN.mmdb"), 1, "{err}");
    assert!(
        err.lines()
            .any(|l| l.contains("GEOIP_DATABASE") && l.contains("not-a-database.mmdb")),
        "{err}"
    );
}

#[test]
fn tools_a_live_sensor_labels_join_the_rows() {
    let srv = server(None, None);
    let today = LiveSummary {
        at: 1,
        tools: vec![
            (Addr::v4([192, 0, 2, 2]), "masscan".into()),
            (Addr::v4([203, 0, 113, 3]), "nmap+hping3".into()),
        ],
        ..Default::default()
    };
    publish(&srv.live, today);
    let (a, rows) = by_source(&srv);
    assert!(a["tools"].bool());
    for (src, _, _, _, tool) in &rows {
        let want = match src.as_str() {
            "192.0.2.2" => s("masscan"),
            "203.0.113.3" => s("nmap+hping3"),
            _ => Json::Null,
        };
        assert_eq!(*tool, want, "{src}");
    }
}

#[test]
fn the_sensor_publishes_the_fingerprinters_labels() {
    use common::pcapgen::{eth, ipv4, TcpHdr};
    use std::net::Ipv4Addr;
    use tsusen::alerts::{Alerts, Sinks};
    use tsusen::source::{Frame, Link};
    let dir = temp_dir("tools");
    let settings = Settings {
        log_directory: dir.clone(),
        ..Default::default()
    };
    let local = tsusen::addr::NetSet::new(vec!["198.51.100.0/24".parse().unwrap()]);
    let mut sensor = tsusen::sensor::Sensor::new(&settings, local).unwrap();
    sensor.alerts = Some(Alerts::new(
        settings.scan.clone(),
        "test".into(),
        Sinks::default(),
    ));
    // Mirai's SYN: the sequence number is the target's address. One probe makes a label.
    let dst = Ipv4Addr::new(198, 51, 100, 23);
    let mut h = TcpHdr::new(40000, 23, 0x02);
    h.seq = u32::from(dst);
    let frame = eth(&ipv4(Ipv4Addr::new(203, 0, 113, 66), dst, 6, &h.build(&[])));
    // An ordinary SYN from another source is no label.
    let plain = eth(&ipv4(
        Ipv4Addr::new(203, 0, 113, 67),
        dst,
        6,
        &TcpHdr::new(40001, 22, 0x02).build(&[]),
    ));
    for data in [&frame, &plain] {
        sensor.frame(&Frame {
            ts: 1_700_000_000,
            ts_us: 0,
            link: Link::Ethernet,
            data,
            outgoing: false,
        });
    }
    // Frames wait a few places before their count: take them all in first.
    sensor.drain();
    let live = sensor.live_summary(1_700_000_000, "test", true);
    assert_eq!(
        live.tools,
        vec![(Addr::v4([203, 0, 113, 66]), "mirai".to_string())]
    );
    assert_eq!(live.tool_of(&Addr::v4([203, 0, 113, 66])), Some("mirai"));
    assert_eq!(live.tool_of(&Addr::v4([203, 0, 113, 67])), None);
    drop(sensor);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn tsusen_serve_takes_tool_labels_from_the_events_file() {
    let dir = temp_dir("tools-events");
    sample_days(&dir);
    let events = dir.join("events.jsonl");
    std::fs::write(
        &events,
        "{\"type\":\"tool\",\"observer\":\"eth0\",\"offender\":\"203.0.113.4\",\"timestamp\":1709251200,\"details\":{\"tool\":\"zmap\",\"probes\":2,\"dst\":\"198.51.100.10\",\"dst_port\":23}}\n\
         {\"type\":\"scan\",\"observer\":\"eth0\",\"offender\":\"203.0.113.5\",\"timestamp\":1709251200,\"details\":{}}\n",
    )
    .unwrap();
    let srv = start_with(Settings {
        log_directory: dir,
        event_file: Some(events),
        ..Default::default()
    });
    let (a, rows) = by_source(&srv);
    assert!(a["tools"].bool());
    for (src, _, _, _, tool) in &rows {
        let want = if src == "203.0.113.4" {
            s("zmap")
        } else {
            Json::Null
        };
        assert_eq!(*tool, want, "{src}");
    }
    // The live sensor's label wins over the file's.
    publish(
        &srv.live,
        LiveSummary {
            at: 1,
            tools: vec![(Addr::v4([203, 0, 113, 4]), "mirai".into())],
            ..Default::default()
        },
    );
    let (_, rows) = by_source(&srv);
    let r = rows.iter().find(|r| r.0 == "203.0.113.4").unwrap();
    assert_eq!(r.4, s("mirai"));
}

/// Country and AS are columns like the others: a sort on them orders every row of the period
/// (unknown first when ascending), pages stay disjoint, and the file order breaks ties.
#[test]
fn rows_sort_on_country_and_as() {
    let srv = server(Some("country.mmdb"), Some("asn.mmdb"));
    let (_, all) = by_source(&srv);
    let total = all.len();
    assert!(total > 4, "sample too small: {total} rows");
    let code = |j: &Json| match j {
        Json::Str(c) => Some(c.clone()),
        _ => None,
    };
    let asn = |j: &Json| match j {
        Json::Null => None,
        n => Some(n.num() as u64),
    };
    for dir in ["asc", "desc"] {
        // Two pages of half the rows each: together, every row once, in order.
        let half = total.div_ceil(2);
        let mut countries = Vec::new();
        let mut ases = Vec::new();
        let mut seen = Vec::new();
        for page in [1, 2] {
            for (sort, out) in [("country", &mut countries), ("asn", &mut ases)] {
                let a = get(
                    &srv,
                    &format!(
                        "/api/attempts?from=2024-03-01&to=2024-03-05&size={half}&page={page}&sort={sort}&dir={dir}"
                    ),
                    &[],
                )
                .json();
                assert_eq!(a["sort"].str(), sort);
                for r in a["rows"].items() {
                    out.push((code(&r[8]), asn(&r[9])));
                    if sort == "country" {
                        let port = asn(&r[1]).map_or("-".to_string(), |p| p.to_string());
                        seen.push(format!(
                            "{} {port} {} {}",
                            r[0].str(),
                            r[3].str(),
                            r[4].str()
                        ));
                    }
                }
            }
        }
        assert_eq!(countries.len(), total, "{dir}: pages cover every row");
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), total, "{dir}: no row twice across pages");
        let mut want_c: Vec<Option<String>> = countries.iter().map(|(c, _)| c.clone()).collect();
        want_c.sort();
        let mut want_a: Vec<Option<u64>> = ases.iter().map(|(_, a)| *a).collect();
        want_a.sort();
        if dir == "desc" {
            want_c.reverse();
            want_a.reverse();
        }
        let got_c: Vec<Option<String>> = countries.iter().map(|(c, _)| c.clone()).collect();
        let got_a: Vec<Option<u64>> = ases.iter().map(|(_, a)| *a).collect();
        assert_eq!(got_c, want_c, "{dir}: rows in country order");
        assert_eq!(got_a, want_a, "{dir}: rows in AS order");
        // Several countries, so the order is one the sort made, not the file's.
        for c in ["DE", "FR", "JP"] {
            assert!(
                got_c.iter().any(|x| x.as_deref() == Some(c)),
                "{c}: {got_c:?}"
            );
        }
        assert!(got_a.iter().any(|a| a.is_some()), "{got_a:?}");
    }
    // A sort the server cannot do within its bound says why, and an unknown one is refused.
    let r = get(&srv, "/api/attempts?sort=planet", &[]);
    assert_eq!(r.status, 400);
}
