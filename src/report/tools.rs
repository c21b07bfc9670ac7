//! Tool labels that outlive the sensor's memory: the `tool` events the sensor appends to
//! EVENTS_FILE (one JSON object per line). `tsusen serve` has no sensor to ask, and a live
//! sensor forgets a source after an hour of silence; the events file remembers both. Only its
//! last `TAIL_BYTES` are read, again only when the file has changed and at most every
//! `RECHECK`, so a large or growing file costs bounded memory and time.

use crate::addr::Addr;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Bytes read from the end of the events file (about 25 000 events).
const TAIL_BYTES: u64 = 4 * 1024 * 1024;
/// Sources remembered from it.
const MAX_SOURCES: usize = 16_384;
/// How often the file is looked at again.
const RECHECK: Duration = Duration::from_secs(10);
/// The tool names the fingerprinter writes; anything else in the file is passed over.
const TOOLS: [&str; 5] = ["zmap", "masscan", "mirai", "nmap", "hping3"];

/// Labels by source, sorted by address.
pub type Labels = Arc<Vec<(Addr, String)>>;

struct Loaded {
    checked: Instant,
    stamp: Option<(u64, Option<SystemTime>)>,
    labels: Labels,
    /// Grows by one each time `labels` changes (part of the answer cache's key).
    generation: u64,
}

pub struct EventTools {
    path: Option<PathBuf>,
    state: Mutex<Option<Loaded>>,
}

impl EventTools {
    pub fn new(path: Option<PathBuf>) -> EventTools {
        EventTools {
            path,
            state: Mutex::new(None),
        }
    }

    pub fn configured(&self) -> bool {
        self.path.is_some()
    }

    /// The labels as of the file now (re-read if it changed), and their generation.
    pub fn labels(&self) -> (Labels, u64) {
        let Some(path) = &self.path else {
            return (Arc::default(), 0);
        };
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = st.as_ref() {
            if s.checked.elapsed() < RECHECK {
                return (s.labels.clone(), s.generation);
            }
        }
        let stamp = std::fs::metadata(path)
            .ok()
            .map(|m| (m.len(), m.modified().ok()));
        if let Some(s) = st.as_mut() {
            s.checked = Instant::now();
            if s.stamp == stamp {
                return (s.labels.clone(), s.generation);
            }
        }
        let labels: Labels = Arc::new(match stamp {
            Some(_) => read_tail(path).unwrap_or_else(|e| {
                log::warn!("EVENTS_FILE {}: {e}", path.display());
                Vec::new()
            }),
            None => Vec::new(),
        });
        let generation = st.as_ref().map_or(1, |s| s.generation + 1);
        *st = Some(Loaded {
            checked: Instant::now(),
            stamp,
            labels: labels.clone(),
            generation,
        });
        (labels, generation)
    }
}

/// The tool of `a` in sorted `labels`.
pub fn tool_of<'a>(labels: &'a [(Addr, String)], a: &Addr) -> Option<&'a str> {
    labels
        .binary_search_by(|(k, _)| k.cmp(a))
        .ok()
        .map(|i| labels[i].1.as_str())
}

fn read_tail(path: &std::path::Path) -> std::io::Result<Vec<(Addr, String)>> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let start = len.saturating_sub(TAIL_BYTES);
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::with_capacity((len - start) as usize);
    f.take(TAIL_BYTES).read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let mut lines = text.lines();
    if start > 0 {
        // The first line is cut.
        lines.next();
    }
    let mut by_source: std::collections::HashMap<Addr, Vec<&'static str>> = Default::default();
    for line in lines {
        let Some((src, tool)) = tool_event(line) else {
            continue;
        };
        if by_source.len() >= MAX_SOURCES && !by_source.contains_key(&src) {
            continue;
        }
        let tools = by_source.entry(src).or_default();
        if !tools.contains(&tool) {
            tools.push(tool);
        }
    }
    let mut v: Vec<(Addr, String)> = by_source
        .into_iter()
        .map(|(a, t)| (a, t.join("+")))
        .collect();
    v.sort_unstable_by_key(|e| e.0);
    Ok(v)
}

/// The source and tool of a `tool` event line, as `Event::to_json` writes it; `None` for any
/// other line.
fn tool_event(line: &str) -> Option<(Addr, &'static str)> {
    let rest = line.strip_prefix("{\"type\":\"tool\",")?;
    let src = string_after(rest, "\"offender\":\"")?;
    let tool = string_after(rest, "\"details\":{\"tool\":\"")?;
    let ip: IpAddr = src.parse().ok()?;
    let tool = TOOLS.into_iter().find(|t| *t == tool)?;
    Some((Addr::from(ip), tool))
}

fn string_after<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    let at = s.find(key)? + key.len();
    let end = s[at..].find('"')?;
    Some(&s[at..at + end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_events_are_read_and_the_rest_passed_over() {
        let dir = std::env::temp_dir().join(format!("tsusen-tools-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.jsonl");
        std::fs::write(
            &path,
            "{\"type\":\"tool\",\"observer\":\"eth0\",\"offender\":\"203.0.113.7\",\"timestamp\":2,\"details\":{\"tool\":\"zmap\",\"probes\":2}}\n\
             {\"type\":\"scan\",\"observer\":\"eth0\",\"offender\":\"203.0.113.8\",\"timestamp\":2,\"details\":{\"ports\":9}}\n\
             {\"type\":\"tool\",\"observer\":\"eth0\",\"offender\":\"2001:db8::9\",\"timestamp\":3,\"details\":{\"tool\":\"nmap\"}}\n\
             {\"type\":\"tool\",\"observer\":\"eth0\",\"offender\":\"203.0.113.7\",\"timestamp\":4,\"details\":{\"tool\":\"masscan\"}}\n\
             {\"type\":\"tool\",\"observer\":\"eth0\",\"offender\":\"203.0.113.9\",\"timestamp\":4,\"details\":{\"tool\":\"<script>\"}}\n\
             not json at all\n",
        )
        .unwrap();
        let t = EventTools::new(Some(path));
        let (labels, generation) = t.labels();
        assert_eq!(generation, 1);
        let a = |s: &str| Addr::from(s.parse::<IpAddr>().unwrap());
        assert_eq!(tool_of(&labels, &a("203.0.113.7")), Some("zmap+masscan"));
        assert_eq!(tool_of(&labels, &a("2001:db8::9")), Some("nmap"));
        assert_eq!(tool_of(&labels, &a("203.0.113.8")), None);
        assert_eq!(labels.len(), 2);
        assert!(!EventTools::new(None).configured());
        let _ = std::fs::remove_dir_all(dir);
    }
}
