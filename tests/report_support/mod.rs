//! Shared by the report tests: a log directory of sample days, a server on a free port, raw
//! HTTP requests, and a small JSON reader (the crate has no JSON parser to lean on).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::Index;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tsusen::config::Settings;
use tsusen::report::{serve_on, LiveHandle, Running};

/// 2024-03-01, the first sample day.
pub const DAY0: i64 = 19_783;

pub struct Server {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub live: LiveHandle,
    running: Option<Running>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            r.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn temp_dir(what: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tsusen-report-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Five days, 2024-03-01 to 05:
/// - TCP 22 to 198.51.100.10 from 203.0.113.1-5 every day (2 attempts each);
/// - TCP 23 from 203.0.113.1-40 on the last day only (a spike);
/// - ICMP from 192.0.2.1-3 every day; the first day's file is the original tsusen's kind:
///   unsorted, with each ICMP line twice;
/// - UDP 53 from 192.0.2.77 on days 2 and 4; TCP 80 over IPv6 on day 3.
pub fn sample_days(dir: &std::path::Path) {
    for i in 0..5i64 {
        let base = (DAY0 + i) * 86_400;
        let mut lines = Vec::new();
        for k in 1..=5 {
            lines.push(format!(
                "TCP 22 198.51.100.10 203.0.113.{k} {} {} 2",
                base + 100,
                base + 150
            ));
        }
        if i == 4 {
            for k in 1..=40 {
                lines.push(format!(
                    "TCP 23 198.51.100.10 203.0.113.{k} {} {} 1",
                    base + 200,
                    base + 200
                ));
            }
        }
        for k in 1..=3 {
            let l = format!(
                "ICMP - 198.51.100.10 192.0.2.{k} {} {} 1",
                base + 5,
                base + 5
            );
            if i == 0 {
                lines.push(l.clone());
            }
            lines.push(l);
        }
        if i == 1 || i == 3 {
            lines.push(format!(
                "UDP 53 198.51.100.10 192.0.2.77 {} {} 3",
                base + 9,
                base + 9
            ));
        }
        if i == 2 {
            lines.push(format!(
                "TCP 80 2001:db8::1 2001:db8:9::2 {} {} 1",
                base + 7,
                base + 8
            ));
        }
        if i == 0 {
            lines.reverse();
        } else {
            lines.sort();
        }
        let text = format!(
            "proto dst_port dst_ip src_ip first_seen last_seen count\n{}\n",
            lines.join("\n")
        );
        let date = chrono::NaiveDate::from_ymd_opt(2024, 3, 1 + i as u32).unwrap();
        std::fs::write(dir.join(format!("{}.csv", date.format("%Y-%m-%d"))), text).unwrap();
    }
}

pub fn start_on(dir: PathBuf) -> Server {
    start_with(Settings {
        log_directory: dir,
        ..Default::default()
    })
}

/// A server over `settings.log_directory` (removed when the server is dropped).
pub fn start_with(settings: Settings) -> Server {
    let dir = settings.log_directory.clone();
    let live = LiveHandle::new();
    let running = serve_on("127.0.0.1:0".parse().unwrap(), &settings, live.clone()).unwrap();
    Server {
        addr: running.addr,
        dir,
        live,
        running: Some(running),
    }
}

pub fn start() -> Server {
    let dir = temp_dir("http");
    sample_days(&dir);
    start_on(dir)
}

pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn gunzip(&self) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&self.body[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    pub fn json(&self) -> Json {
        let text = if self.header("content-encoding") == Some("gzip") {
            String::from_utf8(self.gunzip()).unwrap()
        } else {
            self.text()
        };
        Json::parse(&text)
    }
}

/// Reads one response; status 0 when the server closed without answering.
pub fn read_response(c: &mut TcpStream) -> Answer {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match c.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => {
                return Answer {
                    status: 0,
                    headers: Vec::new(),
                    body: Vec::new(),
                }
            }
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut a = Answer {
        status,
        headers,
        body: Vec::new(),
    };
    match a
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        Some(n) => {
            a.body = vec![0; n];
            c.read_exact(&mut a.body).unwrap();
        }
        None => {
            let _ = c.read_to_end(&mut a.body);
        }
    }
    a
}

/// Sends a raw request and reads the answer; HEAD answers have no body.
pub fn request(s: &Server, raw: &str) -> Answer {
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = c.write_all(raw.as_bytes());
    if raw.starts_with("HEAD ") {
        let mut a = read_response_head_only(&mut c);
        a.body.clear();
        return a;
    }
    read_response(&mut c)
}

fn read_response_head_only(c: &mut TcpStream) -> Answer {
    let mut all = Vec::new();
    let _ = c.read_to_end(&mut all);
    let text = String::from_utf8_lossy(&all).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Answer {
        status,
        headers: lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect(),
        body: body.as_bytes().to_vec(),
    }
}

pub fn get(s: &Server, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut raw = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (n, v) in headers {
        raw.push_str(&format!("{n}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    request(s, &raw)
}

/// Just enough JSON to check the answers.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

static NULL: Json = Json::Null;

impl Json {
    pub fn parse(s: &str) -> Json {
        let b = s.as_bytes();
        let mut i = 0;
        let v = value(b, &mut i);
        skip_ws(b, &mut i);
        assert_eq!(i, b.len(), "trailing text in {s}");
        v
    }

    pub fn str(&self) -> &str {
        match self {
            Json::Str(s) => s,
            other => panic!("not a string: {other:?}"),
        }
    }

    pub fn num(&self) -> f64 {
        match self {
            Json::Num(n) => *n,
            other => panic!("not a number: {other:?}"),
        }
    }

    pub fn bool(&self) -> bool {
        match self {
            Json::Bool(b) => *b,
            other => panic!("not a bool: {other:?}"),
        }
    }

    pub fn items(&self) -> &[Json] {
        match self {
            Json::Arr(v) => v,
            other => panic!("not an array: {other:?}"),
        }
    }

    pub fn strings(&self) -> Vec<String> {
        self.items().iter().map(|x| x.str().to_string()).collect()
    }

    pub fn nums(&self) -> Vec<f64> {
        self.items().iter().map(Json::num).collect()
    }

    /// Any scalar as text (null as `-`).
    pub fn text(&self) -> String {
        match self {
            Json::Null => "-".into(),
            Json::Num(n) => n.to_string(),
            Json::Str(s) => s.clone(),
            Json::Bool(b) => b.to_string(),
            other => format!("{other:?}"),
        }
    }
}

impl Index<&str> for Json {
    type Output = Json;
    fn index(&self, k: &str) -> &Json {
        match self {
            Json::Obj(m) => m.iter().find(|(n, _)| n == k).map_or(&NULL, |(_, v)| v),
            other => panic!("not an object: {other:?}"),
        }
    }
}

impl Index<usize> for Json {
    type Output = Json;
    fn index(&self, i: usize) -> &Json {
        &self.items()[i]
    }
}

fn skip_ws(b: &[u8], i: &mut usize) {
    while *i < b.len() && b[*i].is_ascii_whitespace() {
        *i += 1;
    }
}

fn value(b: &[u8], i: &mut usize) -> Json {
    skip_ws(b, i);
    match b[*i] {
        b'{' => {
            *i += 1;
            let mut m = Vec::new();
            loop {
                skip_ws(b, i);
                if b[*i] == b'}' {
                    *i += 1;
                    return Json::Obj(m);
                }
                let Json::Str(k) = value(b, i) else {
                    panic!("object key")
                };
                skip_ws(b, i);
                assert_eq!(b[*i], b':');
                *i += 1;
                m.push((k, value(b, i)));
                skip_ws(b, i);
                if b[*i] == b',' {
                    *i += 1;
                }
            }
        }
        b'[' => {
            *i += 1;
            let mut v = Vec::new();
            loop {
                skip_ws(b, i);
                if b[*i] == b']' {
                    *i += 1;
                    return Json::Arr(v);
                }
                v.push(value(b, i));
                skip_ws(b, i);
                if b[*i] == b',' {
                    *i += 1;
                }
            }
        }
        b'"' => {
            *i += 1;
            let mut s = String::new();
            loop {
                let c = b[*i];
                *i += 1;
                match c {
                    b'"' => return Json::Str(s),
                    b'\\' => {
                        let e = b[*i];
                        *i += 1;
                        match e {
                            b'n' => s.push('\n'),
                            b't' => s.push('\t'),
                            b'r' => s.push('\r'),
                            b'u' => {
                                let h = std::str::from_utf8(&b[*i..*i + 4]).unwrap();
                                s.push(
                                    char::from_u32(u32::from_str_radix(h, 16).unwrap()).unwrap(),
                                );
                                *i += 4;
                            }
                            other => s.push(other as char),
                        }
                    }
                    _ => {
                        // Copy a whole UTF-8 sequence.
                        let start = *i - 1;
                        let mut end = *i;
                        while end < b.len() && (b[end] & 0xC0) == 0x80 {
                            end += 1;
                        }
                        s.push_str(std::str::from_utf8(&b[start..end]).unwrap());
                        *i = end;
                    }
                }
            }
        }
        b't' => {
            *i += 4;
            Json::Bool(true)
        }
        b'f' => {
            *i += 5;
            Json::Bool(false)
        }
        b'n' => {
            *i += 4;
            Json::Null
        }
        _ => {
            let start = *i;
            while *i < b.len() && matches!(b[*i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
                *i += 1;
            }
            Json::Num(std::str::from_utf8(&b[start..*i]).unwrap().parse().unwrap())
        }
    }
}
