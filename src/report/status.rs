//! The sensor's status: the `sensor` object of `/api/summary`, and `/metrics` in the
//! Prometheus text format. Without a sensor (`tsusen serve`) only the server's own figures.

use super::api::{unix_now, Report, LIVE_WAIT};
use super::live::LiveSummary;
use crate::json;
use std::fmt::Write;
use std::sync::atomic::Ordering as AtomicOrdering;

impl Report {
    /// `/metrics`, in the Prometheus text format.
    pub fn metrics(&self) -> String {
        // The counters alone: a scrape every few seconds must not copy the table.
        let live = self.live.fresh(LIVE_WAIT, false);
        let mut o = String::with_capacity(4096);
        let mut m = |name: &str, kind: &str, help: &str, v: String| {
            let _ = write!(
                o,
                "# HELP tsusen_{name} {help}\n# TYPE tsusen_{name} {kind}\ntsusen_{name} {v}\n"
            );
        };
        let sensor = live.generation > 0;
        m(
            "sensor_up",
            "gauge",
            "1 when a capturing sensor feeds this report (tsusen run), 0 for files only.",
            (sensor as u8).to_string(),
        );
        let uptime = if sensor {
            (unix_now() - live.started).max(0) as u64
        } else {
            self.started.elapsed().as_secs()
        };
        m(
            "uptime_seconds",
            "gauge",
            "Seconds since the sensor (or this server) started.",
            uptime.to_string(),
        );
        m(
            "http_requests_total",
            "counter",
            "Requests answered by the report server.",
            self.requests.load(AtomicOrdering::Relaxed).to_string(),
        );
        m(
            "http_refused_total",
            "counter",
            "Requests refused (bad path, bad query, limits).",
            self.refused.load(AtomicOrdering::Relaxed).to_string(),
        );
        m(
            "http_puts_total",
            "counter",
            "Uploads (PUT /YYYY-MM-DD.csv) merged into a day file.",
            self.puts.load(AtomicOrdering::Relaxed).to_string(),
        );
        m(
            "report_cache_rows",
            "gauge",
            "Rows the report may keep between requests (REPORT_CACHE_ROWS).",
            self.settings.cache_rows.to_string(),
        );
        if let Some((rows, bytes)) = self.cache_figures() {
            m(
                "report_cached_rows",
                "gauge",
                "Rows of day files and merged periods the report keeps now.",
                rows.to_string(),
            );
            m(
                "report_cached_bytes",
                "gauge",
                "Bytes of day figures and answers the report keeps now.",
                bytes.to_string(),
            );
        }
        if !sensor {
            return o;
        }
        let st = &live.stats;
        let counters: [(&str, &str, u64); 13] = [
            ("packets_total", "Frames seen.", st.packets),
            (
                "attempts_total",
                "Connection attempts counted.",
                st.attempts,
            ),
            (
                "malformed_total",
                "Frames with cut or contradictory headers.",
                st.malformed,
            ),
            ("not_ip_total", "Frames that are not IP.", st.not_ip),
            (
                "fragments_total",
                "Non-first fragments skipped.",
                st.fragments,
            ),
            (
                "ignored_total",
                "Packets dropped by IGNORE_ADDRESSES / IGNORE_PORTS.",
                st.ignored,
            ),
            (
                "flushes_total",
                "Flushes of the table to the day files.",
                st.flushes,
            ),
            (
                "early_flushes_total",
                "Flushes forced by a full table.",
                st.early_flushes,
            ),
            (
                "flush_errors_total",
                "Flushes that failed (rows kept in memory).",
                st.flush_errors,
            ),
            ("lost_total", "Attempts that could not be kept.", st.lost),
            (
                "flow_evictions_total",
                "Live flows evicted from a full flow table.",
                live.flows.evictions,
            ),
            (
                "bytes_written_total",
                "Bytes written to day files and snapshots.",
                live.bytes_written,
            ),
            (
                "bad_time_total",
                "Frames with a timestamp no day file can hold.",
                st.bad_time,
            ),
        ];
        for (name, help, v) in counters {
            m(name, "counter", help, v.to_string());
        }
        let gauges: [(&str, &str, String); 6] = [
            (
                "rows",
                "Rows in the day files after the last flush.",
                st.rows.to_string(),
            ),
            (
                "table_rows",
                "Rows held in memory since the last flush.",
                live.table_rows.to_string(),
            ),
            (
                "table_capacity",
                "Rows the table holds before an early flush.",
                live.table_capacity.to_string(),
            ),
            (
                "flows_active",
                "Flows tracked now.",
                live.flows.active.to_string(),
            ),
            (
                "flow_capacity",
                "Flows tracked at most.",
                live.flows.capacity.to_string(),
            ),
            (
                "flush_duration_seconds",
                "Duration of the last flush.",
                format!("{:.6}", live.last_flush_seconds),
            ),
        ];
        for (name, help, v) in gauges {
            m(name, "gauge", help, v);
        }
        if let Some(d) = live.capture_drops {
            m(
                "capture_drops_total",
                "counter",
                "Frames the kernel dropped before the sensor read them.",
                d.to_string(),
            );
        }
        for (name, v) in &live.netflow {
            m(
                &format!("netflow_{name}_total"),
                "counter",
                "NetFlow/IPFIX input (see tsusen collect --help).",
                v.to_string(),
            );
        }
        if let Some((st, sinks)) = &live.alerts {
            alert_metrics(&mut o, st, sinks);
        }
        o
    }
}

/// Events per type, and alerts delivered and dropped per sink (`queue`: the sink thread's
/// own queue, before any sink).
fn alert_metrics(
    o: &mut String,
    st: &crate::alerts::AlertStats,
    sinks: &[(crate::alerts::SinkKind, u64, u64)],
) {
    o.push_str(
        "# HELP tsusen_events_total Threat events raised, by type.\n# TYPE tsusen_events_total counter\n",
    );
    for (k, n) in crate::alerts::EVENT_KINDS.iter().zip(st.events) {
        let _ = writeln!(o, "tsusen_events_total{{type=\"{k}\"}} {n}");
    }
    o.push_str(
        "# HELP tsusen_events_suppressed_total Events over the rate limit (600 per type and minute), counted only.\n# TYPE tsusen_events_suppressed_total counter\n",
    );
    for (k, n) in crate::alerts::EVENT_KINDS.iter().zip(st.suppressed) {
        let _ = writeln!(o, "tsusen_events_suppressed_total{{type=\"{k}\"}} {n}");
    }
    o.push_str(
        "# HELP tsusen_alerts_dropped_total Alerts dropped because a sink (or the queue to them) fell behind.\n# TYPE tsusen_alerts_dropped_total counter\n",
    );
    let _ = writeln!(
        o,
        "tsusen_alerts_dropped_total{{sink=\"queue\"}} {}",
        st.dropped
    );
    for (k, _, d) in sinks {
        let _ = writeln!(
            o,
            "tsusen_alerts_dropped_total{{sink=\"{}\"}} {d}",
            k.name()
        );
    }
    o.push_str(
        "# HELP tsusen_alerts_sent_total Alerts delivered, by sink.\n# TYPE tsusen_alerts_sent_total counter\n",
    );
    for (k, n, _) in sinks {
        let _ = writeln!(o, "tsusen_alerts_sent_total{{sink=\"{}\"}} {n}", k.name());
    }
    let fb = &st.flow_builder;
    for (name, kind, help, v) in [
        (
            "flows_built_total",
            "counter",
            "Flows built from packets for the flow sensors.",
            fb.flows,
        ),
        (
            "flows_built_evicted_total",
            "counter",
            "Built flows exported early from a full bucket.",
            fb.evicted,
        ),
        (
            "flows_built_active",
            "gauge",
            "Built flows held now.",
            fb.active,
        ),
    ] {
        let _ = write!(
            o,
            "# HELP tsusen_{name} {help}\n# TYPE tsusen_{name} {kind}\ntsusen_{name} {v}\n"
        );
    }
}

pub(super) fn sensor_json(o: &mut String, live: &LiveSummary, server_uptime: u64) {
    let mut f = true;
    o.push('{');
    json::key(o, &mut f, "running");
    let running = live.generation > 0;
    o.push_str(if running { "true" } else { "false" });
    json::key(o, &mut f, "interface");
    json::opt_string(o, running.then_some(live.interface.as_str()));
    let uptime = if running {
        (unix_now() - live.started).max(0) as u64
    } else {
        server_uptime
    };
    let st = &live.stats;
    for (k, v) in [
        ("uptime", uptime),
        ("started", live.started.max(0) as u64),
        ("at", live.at.max(0) as u64),
        ("packets", st.packets),
        ("attempts", st.attempts),
        ("malformed", st.malformed),
        ("rows", st.rows),
        ("table_rows", live.table_rows as u64),
        ("table_capacity", live.table_capacity as u64),
        ("flows_active", live.flows.active as u64),
        ("flow_capacity", live.flows.capacity as u64),
        ("flow_evictions", live.flows.evictions),
        ("flushes", st.flushes),
        ("early_flushes", st.early_flushes),
        ("flush_errors", st.flush_errors),
        ("bytes_written", live.bytes_written),
    ] {
        json::key(o, &mut f, k);
        let _ = write!(o, "{v}");
    }
    json::key(o, &mut f, "capture_drops");
    match live.capture_drops {
        Some(d) => {
            let _ = write!(o, "{d}");
        }
        None => o.push_str("null"),
    }
    if let Some((st, sinks)) = &live.alerts {
        json::key(o, &mut f, "events");
        o.push('{');
        let mut g = true;
        for (k, n) in crate::alerts::EVENT_KINDS.iter().zip(st.events) {
            json::key(o, &mut g, k.as_str());
            let _ = write!(o, "{n}");
        }
        o.push('}');
        json::key(o, &mut f, "alerts_dropped");
        o.push('{');
        let mut g = true;
        json::key(o, &mut g, "queue");
        let _ = write!(o, "{}", st.dropped);
        for (k, _, d) in sinks {
            json::key(o, &mut g, k.name());
            let _ = write!(o, "{d}");
        }
        o.push('}');
    }
    o.push('}');
}
