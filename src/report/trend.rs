//! Trendlines: per protocol and port, the number of distinct sources ("intruders") per day.
//!
//! Which series are drawn follows the original tsusen (core/httpd.py, `_trendline_data`): with
//! no filter, a series is hidden when on some day before the last it had fewer sources than
//! TRENDLINE_DAILY_THRESHOLD *and* on no day it reached TRENDLINE_DAILY_BURST. So a port is
//! drawn when it is knocked on steadily, or when it had a burst. Series are ordered by the
//! last day's figure, largest first. A filtered view draws every series, as tsusen did.
//!
//! A spike is a last day far above the series' usual level, by the rule the `spike` event uses
//! ([`crate::detect::spike::SpikeRule`], SPIKE_* settings), so page and event agree. Spiking
//! series are drawn past the cap of quiet ones, the loudest MAX_EXTRA_SPIKES of them: they
//! are what the page is for.

use super::data::DayStats;
use super::services;
use crate::detect::spike::SpikeRule;
use crate::json;
use crate::proto;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Series drawn at most; the rest are counted as hidden.
pub const MAX_SERIES: usize = 40;
/// Spiking series drawn past MAX_SERIES at most. A sweep of every port by many sources spikes
/// on thousands of ports at once: drawing them all made an answer of hundreds of KiB and a
/// chart that shows nothing. The loudest stay; the rest are counted as hidden.
pub const MAX_EXTRA_SPIKES: usize = 20;
pub struct Rules {
    pub threshold: u32,
    pub burst: u32,
    pub spike: SpikeRule,
}

#[derive(Debug)]
pub struct Series {
    pub proto: u8,
    pub port: Option<u16>,
    pub counts: Vec<u32>,
    pub spike: bool,
}

impl Series {
    pub fn label(&self) -> String {
        let mut s = String::from_utf8_lossy(proto::name(self.proto)).into_owned();
        if let Some(p) = self.port {
            let _ = write!(s, " {p}");
        }
        if let Some(n) = services::name(self.proto, self.port) {
            let _ = write!(s, " ({n})");
        }
        s
    }
}

/// The series of the days given (oldest first), and how many were left out.
pub fn series(days: &[&DayStats], rules: &Rules, draw_all: bool) -> (Vec<Series>, usize) {
    let n = days.len();
    let mut by_port: BTreeMap<(u8, Option<u16>), Vec<u32>> = BTreeMap::new();
    for (i, d) in days.iter().enumerate() {
        for p in &d.ports {
            by_port
                .entry((p.proto, p.port))
                .or_insert_with(|| vec![0; n])[i] = p.sources;
        }
    }
    let total = by_port.len();
    let mut out: Vec<Series> = by_port
        .into_iter()
        .map(|((proto, port), counts)| {
            let spike = rules.spike.is_spike(&counts);
            Series {
                proto,
                port,
                counts,
                spike,
            }
        })
        .filter(|s| draw_all || s.spike || drawn_by_tsusen(&s.counts, rules))
        .collect();
    out.sort_by(|a, b| {
        b.counts
            .last()
            .cmp(&a.counts.last())
            .then(b.spike.cmp(&a.spike))
            .then((a.proto, a.port).cmp(&(b.proto, b.port)))
    });
    // Keep the first MAX_SERIES and the loudest spikes beyond them: a spike is not lost to
    // the cap unless there are more than MAX_EXTRA_SPIKES of them.
    let (mut i, mut extra) = (0, 0);
    out.retain(|s| {
        i += 1;
        let spike = i > MAX_SERIES && s.spike && extra < MAX_EXTRA_SPIKES;
        extra += spike as usize;
        i <= MAX_SERIES || spike
    });
    let hidden = total - out.len();
    (out, hidden)
}

/// tsusen's rule (see the module comment).
fn drawn_by_tsusen(counts: &[u32], r: &Rules) -> bool {
    let before_last = &counts[..counts.len().saturating_sub(1)];
    let steady = before_last.iter().all(|&c| c >= r.threshold);
    let burst = counts.iter().any(|&c| c >= r.burst);
    steady || burst
}

/// The trendlines answer.
pub fn to_json(
    day_names: &[String],
    series: &[Series],
    hidden: usize,
    rules: &Rules,
    live: bool,
    estimated: &[String],
) -> String {
    let mut o = String::with_capacity(256 + series.len() * (40 + 6 * day_names.len()));
    o.push('{');
    let mut first = true;
    json::key(&mut o, &mut first, "days");
    json::strings(&mut o, day_names);
    json::key(&mut o, &mut first, "threshold");
    let _ = write!(o, "{}", rules.threshold);
    json::key(&mut o, &mut first, "burst");
    let _ = write!(o, "{}", rules.burst);
    json::key(&mut o, &mut first, "hidden");
    let _ = write!(o, "{hidden}");
    json::key(&mut o, &mut first, "live");
    o.push_str(if live { "true" } else { "false" });
    // Days whose counts are estimates (too large to count exactly, see `data::Exact`).
    json::key(&mut o, &mut first, "estimated");
    json::strings(&mut o, estimated);
    json::key(&mut o, &mut first, "series");
    o.push('[');
    for (i, s) in series.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        let pname = String::from_utf8_lossy(proto::name(s.proto)).into_owned();
        let mut f = true;
        o.push('{');
        json::key(&mut o, &mut f, "label");
        json::string(&mut o, &s.label());
        json::key(&mut o, &mut f, "proto");
        json::string(&mut o, &pname);
        json::key(&mut o, &mut f, "port");
        match s.port {
            Some(p) => {
                let _ = write!(o, "{p}");
            }
            None => o.push_str("null"),
        }
        json::key(&mut o, &mut f, "service");
        json::opt_string(&mut o, services::name(s.proto, s.port));
        json::key(&mut o, &mut f, "spike");
        o.push_str(if s.spike { "true" } else { "false" });
        json::key(&mut o, &mut f, "counts");
        o.push('[');
        for (k, c) in s.counts.iter().enumerate() {
            if k > 0 {
                o.push(',');
            }
            let _ = write!(o, "{c}");
        }
        o.push_str("]}");
    }
    o.push_str("]}");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::data::PortDay;

    fn day(ports: &[(u16, u32)]) -> DayStats {
        DayStats {
            ports: ports
                .iter()
                .map(|&(port, sources)| PortDay {
                    proto: 6,
                    port: Some(port),
                    sources,
                    attempts: sources as u64,
                    rows: sources as u64,
                })
                .collect(),
            ..Default::default()
        }
    }

    /// tsusen's threshold 2 and burst 10; spikes from 2 sources.
    fn rules() -> Rules {
        Rules {
            threshold: 2,
            burst: 10,
            spike: SpikeRule {
                min_sources: 2,
                ..SpikeRule::default()
            },
        }
    }

    #[test]
    fn draws_as_tsusen_did_and_marks_spikes() {
        let rules = rules();
        // 22 steady; 80 once a burst; 8080 a one-off below the burst; 23 spikes on the last day.
        let days = [
            day(&[(22, 5), (23, 3), (80, 0), (8080, 0)]),
            day(&[(22, 6), (23, 2), (80, 12), (8080, 1)]),
            day(&[(22, 5), (23, 3), (80, 0)]),
            day(&[(22, 4), (23, 2)]),
            day(&[(22, 1), (23, 40), (8080, 3)]),
        ];
        let refs: Vec<&DayStats> = days.iter().collect();
        let (s, hidden) = series(&refs, &rules, false);
        let labels: Vec<String> = s.iter().map(Series::label).collect();
        assert_eq!(labels, ["TCP 23 (telnet)", "TCP 22 (ssh)", "TCP 80 (http)"]);
        assert_eq!(hidden, 1);
        assert!(s[0].spike && !s[1].spike && !s[2].spike);
        let (all, hidden) = series(&refs, &rules, true);
        assert_eq!((all.len(), hidden), (4, 0));
    }

    #[test]
    fn spikes_past_the_cap_are_drawn_up_to_their_own_cap() {
        let rules = rules();
        // 30 steady ports drawn by tsusen's rule, then a sweep: 2 000 ports from nothing to
        // 5 sources on the last day (and one to 500), each a spike.
        let steady: Vec<(u16, u32)> = (1..=30).map(|p| (p, 50)).collect();
        let mut last = steady.clone();
        last.extend((1000..3000).map(|p| (p, 5)));
        last.push((3000, 500));
        let mut days: Vec<DayStats> = (0..6).map(|_| day(&steady)).collect();
        days.push(day(&last));
        let refs: Vec<&DayStats> = days.iter().collect();
        let (s, hidden) = series(&refs, &rules, false);
        assert_eq!(s.len(), MAX_SERIES + MAX_EXTRA_SPIKES);
        assert_eq!(hidden, 30 + 2001 - s.len());
        // The loudest spike leads; every spike past MAX_SERIES is drawn up to the cap.
        assert_eq!((s[0].port, s[0].spike), (Some(3000), true));
        assert!(s[MAX_SERIES..].iter().all(|x| x.spike));
    }
}
