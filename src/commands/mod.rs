//! The subcommands, each a thin driver over the sensor.

pub mod collect;
pub mod replay;
pub mod run;

use crate::addr::Cidr;
use crate::alerts::{Alerts, DetectorParams, Sinks, SyslogTarget};
use crate::cli::{Parsed, Usage};
use crate::config::Settings;
use std::path::Path;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit status for a usage or configuration error.
pub const EXIT_USAGE: u8 = 2;
/// Exit status when the sensor could not do its work (capture, files).
pub const EXIT_FAILURE: u8 = 1;

/// Settings from the defaults, then `--config FILE`, then the options common to the commands.
pub fn settings(p: &Parsed, command: &str) -> Result<Settings, Usage> {
    let mut s = Settings::default();
    if let Some(file) = p.last("--config") {
        s.load(Path::new(file))
            .map_err(|e| Usage(format!("tsusen {command}: {e}")))?;
    }
    let opt = |name: &str, key: &str, s: &mut Settings| -> Result<(), Usage> {
        if let Some(v) = p.last(name) {
            s.set(key, v, &format!("option {name}"))
                .map_err(|e| Usage(format!("tsusen {command}: {e}")))?;
        }
        Ok(())
    };
    opt("--log-dir", "LOG_DIRECTORY", &mut s)?;
    opt("--write-period", "WRITE_PERIOD", &mut s)?;
    opt("--interface", "MONITOR_INTERFACE", &mut s)?;
    opt("--table-capacity", "TABLE_CAPACITY", &mut s)?;
    opt("--flow-capacity", "FLOW_CAPACITY", &mut s)?;
    opt("--state-file", "STATE_FILE", &mut s)?;
    let locals: Vec<&str> = p.all("--local").collect();
    if !locals.is_empty() {
        let mut nets = Vec::new();
        for l in locals {
            let n: Vec<Cidr> = crate::config::cidrs(l)
                .map_err(|e| Usage(format!("tsusen {command}: option --local: {e}")))?;
            nets.extend(n);
        }
        s.local_networks = nets;
    }
    crate::alerts::Sinks {
        mqtt: s.mqtt_url.clone().map(|u| (u, String::new())),
        amqp: s.amqp_url.clone().map(|u| (u, String::new())),
        ..Default::default()
    }
    .validate()
    .map_err(|e| Usage(format!("tsusen {command}: {e}")))?;
    s.spike
        .validate()
        .map_err(|e| Usage(format!("tsusen {command}: spike settings: {e}")))?;
    s.flows
        .validate()
        .map_err(|e| Usage(format!("tsusen {command}: flow sensor settings: {e}")))?;
    s.scan
        .validate()
        .map_err(|e| Usage(format!("tsusen {command}: scan detector settings: {e}")))?;
    Ok(s)
}

/// The alert detectors and sinks the settings ask for; `syslog_default` is used when SYSLOG
/// is unset; `real_time` when events come as the traffic does (not from a file).
pub fn alerts(
    s: &Settings,
    observer: &str,
    syslog_default: bool,
    stderr: bool,
    real_time: bool,
) -> Alerts {
    let syslog = match &s.syslog {
        None => syslog_default.then(|| SyslogTarget::Local(PathBuf::from("/dev/log"))),
        Some(p) if p.as_os_str().is_empty() => None,
        // Checked when the setting was read.
        Some(p) => SyslogTarget::parse(&p.to_string_lossy()).ok(),
    };
    let sensor_name = if s.sensor_name.is_empty() {
        crate::alerts::hostname()
    } else {
        s.sensor_name.clone()
    };
    let sinks = Sinks {
        syslog,
        syslog_format: s.syslog_format,
        event_file: s.event_file.clone(),
        stderr,
        mqtt: s
            .mqtt_url
            .clone()
            .map(|u| (u, format!("tsusen/{sensor_name}/events"))),
        amqp: s.amqp_url.clone().map(|u| (u, s.amqp_queue.clone())),
        gather: if real_time {
            std::time::Duration::from_millis(crate::policy::SINK_GATHER_MS)
        } else {
            std::time::Duration::ZERO
        },
    };
    let d = DetectorParams {
        flows: s.flows.clone(),
        flow_idle: s.flow_export_idle,
        flow_active: s.flow_export_active,
        flow_capacity: s.flow_builder_capacity,
        spike: s.spike.clone(),
        spike_capacity: s.spike_sources_capacity,
    };
    Alerts::with(s.scan.clone(), d, observer.into(), sinks)
}

pub fn usage_exit(u: Usage) -> ExitCode {
    eprintln!("{}", u.0);
    ExitCode::from(EXIT_USAGE)
}
