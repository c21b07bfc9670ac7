//! `PUT /YYYY-MM-DD.csv` against a real listening server: the token, refusals that change
//! nothing (bad rows with their line number, oversized and cut bodies), the merge checked
//! against a hand-computed file, atomicity seen by concurrent downloads, and an upload into the
//! day a running sensor is counting, which its next flushes must neither lose nor clobber.

mod common;
mod report_support;

use common::pcapgen::{eth, ipv4, tcp};
use report_support::{get, read_response, sample_days, start_with, temp_dir, Answer, Server, DAY0};
use std::io::Write;
use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};
use tsusen::addr::NetSet;
use tsusen::config::Settings;
use tsusen::policy::PUT_MAX_BYTES;
use tsusen::sensor::{Flush, Sensor};
use tsusen::source::{Frame, Link};

const TOKEN: &str = "s3cret-token-for-the-tests";

fn server(token: Option<&str>) -> Server {
    let dir = temp_dir("put");
    sample_days(&dir);
    start_with(Settings {
        log_directory: dir,
        put_token: token.map(str::to_string),
        ..Default::default()
    })
}

/// One PUT over a fresh connection, `auth` as the Authorization header.
fn put(s: &Server, path: &str, auth: Option<&str>, body: &[u8]) -> Answer {
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!(
        "PUT {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(a) = auth {
        head.push_str(&format!("Authorization: {a}\r\n"));
    }
    head.push_str("\r\n");
    c.write_all(head.as_bytes()).unwrap();
    let _ = c.write_all(body);
    read_response(&mut c)
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

fn day_file(dir: &Path, day: i64) -> std::path::PathBuf {
    let date = chrono::DateTime::from_timestamp(day * 86_400, 0)
        .unwrap()
        .format("%Y-%m-%d");
    dir.join(format!("{date}.csv"))
}

/// The directory holds no temporary file (a refused or finished PUT leaves none).
fn no_temp_files(dir: &Path) {
    let left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

/// The file's bytes and inode: "unchanged" means both are.
fn state(path: &Path) -> (Vec<u8>, u64) {
    use std::os::unix::fs::MetadataExt;
    (
        std::fs::read(path).unwrap(),
        std::fs::metadata(path).unwrap().ino(),
    )
}

#[test]
fn put_is_refused_without_a_configured_token() {
    let s = server(None);
    let path = day_file(&s.dir, DAY0 + 1);
    let before = state(&path);
    let body = format!(
        "TCP 22 198.51.100.10 203.0.113.1 {0} {0} 1\n",
        (DAY0 + 1) * 86_400 + 7
    );
    let r = put(&s, "/2024-03-02.csv", Some(&bearer()), body.as_bytes());
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("PUT_TOKEN"), "{}", r.text());
    assert_eq!(state(&path), before);
    no_temp_files(&s.dir);
}

#[test]
fn put_needs_the_right_bearer_token() {
    let s = server(Some(TOKEN));
    let path = day_file(&s.dir, DAY0 + 1);
    let before = state(&path);
    let base = (DAY0 + 1) * 86_400;
    let body = format!(
        "TCP 22 198.51.100.10 203.0.113.1 {} {} 1\n",
        base + 7,
        base + 7
    );
    for auth in [
        None,
        Some("Bearer wrong-token-of-some-length".to_string()),
        Some(format!("Bearer {TOKEN}x")),
        Some(format!("Bearer {}", &TOKEN[..TOKEN.len() - 1])),
        Some(format!("Basic {TOKEN}")),
        Some("Bearer".to_string()),
    ] {
        let r = put(&s, "/2024-03-02.csv", auth.as_deref(), body.as_bytes());
        assert_eq!(r.status, 401, "{auth:?}: {}", r.text());
        assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
        assert_eq!(state(&path), before, "{auth:?} changed the file");
    }
    // Not a day: refused before any body is read, and nothing is created.
    for bad in [
        "/2024-13-01.csv",
        "/../2024-03-02.csv",
        "/2024-03-02",
        "/x.csv",
    ] {
        let r = put(&s, bad, Some(&bearer()), body.as_bytes());
        assert_eq!(r.status, 404, "{bad}: {}", r.text());
    }
    // The scheme is case-insensitive, as RFC 9110 has it.
    let r = put(
        &s,
        "/2024-03-02.csv",
        Some(&format!("bearer {TOKEN}")),
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_ne!(state(&path).0, before.0);
    no_temp_files(&s.dir);
}

#[test]
fn put_merges_per_key_as_computed_by_hand() {
    let s = server(Some(TOKEN));
    let b = (DAY0 + 1) * 86_400;
    // Out of order, no header, one key twice, one key already in the file, one new IPv6 key.
    let upload = format!(
        "UDP 53 198.51.100.10 192.0.2.77 {} {} 1\n\
         TCP 8080 198.51.100.10 203.0.113.99 {} {} 2\n\
         TCP 22 198.51.100.10 203.0.113.1 {} {} 5\r\n\
         \n\
         TCP 8080 198.51.100.10 203.0.113.99 {} {} 1\n\
         TCP 22 2001:db8::1 2001:db8:9::2 {} {} 1",
        b + 3,
        b + 20,
        b + 500,
        b + 600,
        b + 50,
        b + 120,
        b + 400,
        b + 450,
        b + 1,
        b + 2
    );
    let r = put(&s, "/2024-03-02.csv", Some(&bearer()), upload.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("merged 5 rows"), "{}", r.text());
    assert!(r.text().contains("now has 11 rows"), "{}", r.text());
    // The day as sample_days wrote it, with the upload folded in by hand.
    let mut want = vec!["proto dst_port dst_ip src_ip first_seen last_seen count".to_string()];
    for k in 1..=3 {
        want.push(format!(
            "ICMP - 198.51.100.10 192.0.2.{k} {} {} 1",
            b + 5,
            b + 5
        ));
    }
    // 203.0.113.1: earliest first (upload), latest last (file), 2 + 5.
    want.push(format!(
        "TCP 22 198.51.100.10 203.0.113.1 {} {} 7",
        b + 50,
        b + 150
    ));
    for k in 2..=5 {
        want.push(format!(
            "TCP 22 198.51.100.10 203.0.113.{k} {} {} 2",
            b + 100,
            b + 150
        ));
    }
    want.push(format!(
        "TCP 22 2001:db8::1 2001:db8:9::2 {} {} 1",
        b + 1,
        b + 2
    ));
    want.push(format!(
        "TCP 8080 198.51.100.10 203.0.113.99 {} {} 3",
        b + 400,
        b + 600
    ));
    want.push(format!(
        "UDP 53 198.51.100.10 192.0.2.77 {} {} 4",
        b + 3,
        b + 20
    ));
    let got = std::fs::read_to_string(day_file(&s.dir, DAY0 + 1)).unwrap();
    assert_eq!(got, want.join("\n") + "\n");
    // The API sees the merged day at once (its cache follows the file).
    let a = get(&s, "/api/summary?day=2024-03-02", &[]).json();
    assert_eq!(a["rows"].num(), 11.0);
    assert_eq!(a["attempts"].num(), 3.0 + 7.0 + 8.0 + 1.0 + 3.0 + 4.0);

    // The first sample day is the original tsusen's kind (unsorted, each ICMP line twice):
    // the merge sorts it and folds its duplicates too.
    let b0 = DAY0 * 86_400;
    let r = put(
        &s,
        "/2024-03-01.csv",
        Some(&bearer()),
        format!("ICMP - 198.51.100.10 192.0.2.1 {} {} 3\n", b0 + 1, b0 + 1).as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let day0 = std::fs::read_to_string(day_file(&s.dir, DAY0)).unwrap();
    let lines: Vec<&str> = day0.lines().collect();
    assert_eq!(lines.len(), 1 + 3 + 5, "{day0}");
    assert_eq!(
        lines[1],
        format!("ICMP - 198.51.100.10 192.0.2.1 {} {} 5", b0 + 1, b0 + 5)
    );
    assert_eq!(
        lines[2],
        format!("ICMP - 198.51.100.10 192.0.2.2 {} {} 2", b0 + 5, b0 + 5)
    );

    // A day with no file yet gets one.
    let b9 = (DAY0 + 9) * 86_400;
    let r = put(
        &s,
        "/2024-03-10.csv",
        Some(&bearer()),
        format!("proto dst_port dst_ip src_ip first_seen last_seen count\nTCP 23 198.51.100.10 203.0.113.5 {b9} {b9} 1\n").as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        std::fs::read_to_string(day_file(&s.dir, DAY0 + 9)).unwrap(),
        format!("proto dst_port dst_ip src_ip first_seen last_seen count\nTCP 23 198.51.100.10 203.0.113.5 {b9} {b9} 1\n")
    );
    no_temp_files(&s.dir);
    let m = get(&s, "/metrics", &[]).text();
    assert!(m.contains("\ntsusen_http_puts_total 3\n"), "{m}");
}

#[test]
fn bad_rows_are_refused_with_their_line_and_change_nothing() {
    let s = server(Some(TOKEN));
    let path = day_file(&s.dir, DAY0 + 1);
    let before = state(&path);
    let b = (DAY0 + 1) * 86_400;
    let good = format!("TCP 22 198.51.100.10 203.0.113.1 {} {} 1", b + 1, b + 2);
    let cases = [
        (
            format!("{good}\n{good}\nTCP eighty 198.51.100.10 203.0.113.1 1 2 1\n"),
            "line 3",
            "port",
        ),
        (
            format!(
                "proto dst_port dst_ip src_ip first_seen last_seen count\n{good}\nTCP 22 1.2.3.4\n"
            ),
            "line 3",
            "fields",
        ),
        (
            format!(
                "{good}\nTCP 22 198.51.100.10 203.0.113.1 {} {} 1\n",
                b - 10,
                b - 5
            ),
            "line 2",
            "2024-03-01",
        ),
        (
            format!("{good}\nTCP 22 198.51.100.10 not-an-ip {} {} 1\n", b, b),
            "line 2",
            "address",
        ),
        (
            format!("TCP 22 198.51.100.10 203.0.113.1 {} {} 1\n", b + 9, b + 2),
            "line 1",
            "before",
        ),
        (
            format!("{good}\nTCP 22 198.51.100.10 203.0.113.1 {} {} -1\n", b, b),
            "line 2",
            "count",
        ),
        (format!("{good}\n{}\n", "A".repeat(70_000)), "line 2", ""),
    ];
    for (body, line, why) in &cases {
        let r = put(&s, "/2024-03-02.csv", Some(&bearer()), body.as_bytes());
        assert_eq!(r.status, 400, "{body:.80}: {}", r.text());
        assert!(r.text().contains(line), "want {line}: {}", r.text());
        assert!(r.text().contains(why), "want {why}: {}", r.text());
        assert!(r.text().contains("nothing was changed"), "{}", r.text());
        assert_eq!(state(&path), before, "{body:.80} changed the file");
        no_temp_files(&s.dir);
    }
}

#[test]
fn oversized_and_cut_bodies_change_nothing() {
    let s = server(Some(TOKEN));
    let path = day_file(&s.dir, DAY0 + 1);
    let before = state(&path);
    // Over the limit: refused on the Content-Length alone, without waiting for the body.
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let t = Instant::now();
    write!(
        c,
        "PUT /2024-03-02.csv HTTP/1.1\r\nHost: t\r\nAuthorization: {}\r\nContent-Length: {}\r\n\r\n",
        bearer(),
        PUT_MAX_BYTES + 1
    )
    .unwrap();
    let _ = c.write_all(&[b'x'; 64 * 1024]);
    let r = read_response(&mut c);
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    // Without the token, even an oversized body is a 401: who may upload is asked first.
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        c,
        "PUT /2024-03-02.csv HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        PUT_MAX_BYTES + 1
    )
    .unwrap();
    assert_eq!(read_response(&mut c).status, 401);
    // A body cut short by the client.
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let b = (DAY0 + 1) * 86_400;
    write!(
        c,
        "PUT /2024-03-02.csv HTTP/1.1\r\nHost: t\r\nAuthorization: {}\r\nContent-Length: 1000\r\n\r\nTCP 22 198.51.100.10 203.0.113.1 {b} {b} 1\n",
        bearer()
    )
    .unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let r = read_response(&mut c);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("ended after"), "{}", r.text());
    // Chunked bodies are not taken.
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        c,
        "PUT /2024-03-02.csv HTTP/1.1\r\nHost: t\r\nAuthorization: {}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        bearer()
    )
    .unwrap();
    assert_eq!(read_response(&mut c).status, 411);
    assert_eq!(state(&path), before);
    no_temp_files(&s.dir);
    // The server is still there.
    assert_eq!(get(&s, "/api/summary", &[]).status, 200);
}

#[test]
fn a_large_upload_streams_and_readers_see_old_or_new_never_half() {
    let s = server(Some(TOKEN));
    let path = day_file(&s.dir, DAY0 + 1);
    let old_lines = std::fs::read_to_string(&path).unwrap().lines().count();
    let b = (DAY0 + 1) * 86_400;
    // 60 000 new keys (about 3.5 MB), far beyond the 8 KiB request buffer.
    let mut body = String::new();
    for i in 0..60_000u32 {
        body.push_str(&format!(
            "TCP {} 198.51.100.{} 10.{}.{}.{} {} {} 1\n",
            1000 + i % 7,
            1 + i % 200,
            i >> 16,
            (i >> 8) & 255,
            i & 255,
            b + (i % 1000) as i64,
            b + 1000
        ));
    }
    let new_lines = old_lines + 60_000;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let addr = s.addr;
    let stop2 = stop.clone();
    let reader = std::thread::spawn(move || {
        let mut seen = std::collections::BTreeSet::new();
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let mut c = TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            c.write_all(b"GET /2024-03-02.csv HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                .unwrap();
            let r = read_response(&mut c);
            assert_eq!(r.status, 200);
            assert!(r.body.ends_with(b"\n"), "a download cut mid-line");
            seen.insert(r.body.iter().filter(|&&c| c == b'\n').count());
        }
        seen
    });
    let t = Instant::now();
    let r = put(&s, "/2024-03-02.csv", Some(&bearer()), body.as_bytes());
    let took = t.elapsed();
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = reader.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    println!(
        "PUT of {} bytes ({} rows): {took:?}; downloads saw line counts {seen:?}",
        body.len(),
        60_000
    );
    assert!(
        seen.iter().all(|n| *n == old_lines || *n == new_lines),
        "a reader saw {seen:?}, not {old_lines} or {new_lines}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap().lines().count(),
        new_lines
    );
    no_temp_files(&s.dir);
}

/// An inbound SYN to 198.51.100.10:`dport` from 203.0.113.`src`.
fn syn(src: u8, sport: u16, dport: u16) -> Vec<u8> {
    eth(&ipv4(
        Ipv4Addr::new(203, 0, 113, src),
        Ipv4Addr::new(198, 51, 100, 10),
        6,
        &tcp(sport, dport, 0x02, &[]),
    ))
}

/// A sensor counting into `dir`, flushing every minute.
fn sensor(dir: &Path) -> Sensor {
    let settings = Settings {
        log_directory: dir.to_owned(),
        write_period: 60,
        ..Default::default()
    };
    let local = NetSet::new(vec!["198.51.100.0/24".parse().unwrap()]);
    Sensor::new(&settings, local).unwrap()
}

/// Frames of one script, fed at their seconds.
fn feed(s: &mut Sensor, frames: &[(i64, Vec<u8>)]) {
    for (ts, data) in frames {
        s.frame(&Frame {
            ts: *ts,
            ts_us: 0,
            link: Link::Ethernet,
            data,
            outgoing: false,
        });
    }
}

/// The rows of a day file as (line without count, count), for comparing sums.
fn rows(path: &Path) -> std::collections::BTreeMap<String, (i64, i64, u64)> {
    let mut m = std::collections::BTreeMap::new();
    for l in std::fs::read_to_string(path).unwrap().lines().skip(1) {
        let f: Vec<&str> = l.split(' ').collect();
        let key = f[..4].join(" ");
        let v = (
            f[4].parse().unwrap(),
            f[5].parse().unwrap(),
            f[6].parse().unwrap(),
        );
        assert!(m.insert(key, v).is_none(), "a key twice in {l}");
    }
    m
}

#[test]
fn put_into_the_day_a_running_sensor_counts_survives_its_flushes() {
    let day = DAY0 + 20;
    let t = day * 86_400 + 1000;
    let first: Vec<(i64, Vec<u8>)> = (0..5)
        .map(|i| (t + i, syn(50 + (i % 2) as u8, 40000 + i as u16, 22)))
        .collect();
    let later: Vec<(i64, Vec<u8>)> = (0..4)
        .map(|i| (t + 70 + i, syn(50 + (i % 3) as u8, 41000 + i as u16, 22)))
        .collect();
    let upload = format!(
        "TCP 22 198.51.100.10 203.0.113.50 {} {} 10\nTCP 443 198.51.100.10 203.0.113.60 {} {} 1\n",
        t - 500,
        t + 5,
        t + 2,
        t + 3
    );

    // The control: the same traffic with no upload.
    let control_dir = temp_dir("put-control");
    let mut control = sensor(&control_dir);
    control.prepare_day(t).unwrap();
    feed(&mut control, &first);
    control.advance(t + 61);
    feed(&mut control, &later);
    control.advance(t + 140);
    control.flush(Flush::Stop);
    let mut want = rows(&day_file(&control_dir, day));
    // ... and the upload folded in by hand.
    for l in upload.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        let (first, last, count): (i64, i64, u64) = (
            f[4].parse().unwrap(),
            f[5].parse().unwrap(),
            f[6].parse().unwrap(),
        );
        let e = want.entry(f[..4].join(" ")).or_insert((first, last, 0));
        e.0 = e.0.min(first);
        e.1 = e.1.max(last);
        e.2 += count;
    }

    let s = start_with(Settings {
        log_directory: temp_dir("put-live"),
        put_token: Some(TOKEN.into()),
        ..Default::default()
    });
    let mut live = sensor(&s.dir);
    live.prepare_day(t).unwrap();
    feed(&mut live, &first);
    // The first flush writes the day's file; the sensor then knows its layout and appends.
    live.advance(t + 61);
    assert!(day_file(&s.dir, day).exists());
    feed(&mut live, &later);
    // The upload lands while the sensor holds rows of the same keys in memory.
    let date = chrono::DateTime::from_timestamp(t, 0)
        .unwrap()
        .format("%Y-%m-%d");
    let r = put(
        &s,
        &format!("/{date}.csv"),
        Some(&bearer()),
        upload.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // The sensor's next periodic flush (an append were the file as it left it) merges into
    // the uploaded file instead of writing over it.
    live.advance(t + 140);
    assert_eq!(
        rows(&day_file(&s.dir, day)),
        want,
        "after the periodic flush"
    );
    live.flush(Flush::Stop);
    assert_eq!(rows(&day_file(&s.dir, day)), want, "after the final flush");
    no_temp_files(&s.dir);
    let _ = std::fs::remove_dir_all(control_dir);
}

/// A file replaced by a PUT with the very same length as the sensor left it: the sensor must
/// still notice (by inode), or its run offsets would cut lines of the new file in two and the
/// cut rows would be lost at the next compaction.
#[test]
fn a_replacement_of_the_same_length_is_noticed() {
    use tsusen::store::DayFiles;
    use tsusen::tables::{Key, Row};
    let dir = temp_dir("put-same-len");
    let day = DAY0 + 30;
    let t = day * 86_400 + 10;
    let row = |src: [u8; 4], count: u64| Row {
        key: Key {
            proto: 6,
            port: Some(22),
            dst: tsusen::addr::Addr::v4([198, 51, 100, 10]),
            src: tsusen::addr::Addr::v4(src),
        },
        first: t,
        last: t,
        count,
    };
    let mut sensor = DayFiles::open(&dir, 1024).unwrap();
    // A base run with 203.0.113.10 once, then an appended run with it again (count 9).
    sensor
        .write(day, &[row([203, 0, 113, 10], 1)], true)
        .unwrap();
    assert_eq!(
        sensor
            .write(day, &[row([203, 0, 113, 10], 9)], false)
            .unwrap(),
        None
    );
    let path = day_file(&dir, day);
    let len = std::fs::metadata(&path).unwrap().len();
    // The upload adds 203.0.113.1 (one character shorter) and the merge folds 1 + 9 into 10
    // (one character longer): the new file has the old length.
    let upload = dir.join("upload.csv");
    std::fs::write(
        &upload,
        format!("TCP 22 198.51.100.10 203.0.113.1 {t} {t} 5\n"),
    )
    .unwrap();
    let mut other = DayFiles::attach(&dir, 1024).unwrap();
    assert_eq!(other.merge_upload(day, &upload, "test").unwrap(), 2);
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        len,
        "not the same length"
    );
    // The sensor's next flush and its final compaction.
    sensor
        .write(day, &[row([203, 0, 113, 20], 1)], false)
        .unwrap();
    sensor.write(day, &[], true).unwrap();
    let got = rows(&path);
    let count = |src: &str| got[&format!("TCP 22 198.51.100.10 {src}")].2;
    assert_eq!(
        (
            count("203.0.113.1"),
            count("203.0.113.10"),
            count("203.0.113.20")
        ),
        (5, 10, 1),
        "{got:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
