//! The subcommands, each a thin driver over the sensor.

pub mod collect;
pub mod replay;
pub mod run;

use crate::addr::Cidr;
use crate::alerts::{Alerts, Sinks};
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
    s.scan
        .validate()
        .map_err(|e| Usage(format!("tsusen {command}: scan detector settings: {e}")))?;
    Ok(s)
}

/// The alert detectors and sinks the settings ask for; `syslog_default` is used when SYSLOG
/// is unset.
pub fn alerts(s: &Settings, observer: &str, syslog_default: bool, stderr: bool) -> Alerts {
    let syslog = match &s.syslog {
        None => syslog_default.then(|| PathBuf::from("/dev/log")),
        Some(p) if p.as_os_str().is_empty() => None,
        Some(p) => Some(p.clone()),
    };
    let sinks = Sinks {
        syslog,
        event_file: s.event_file.clone(),
        stderr,
    };
    Alerts::new(s.scan.clone(), observer.into(), sinks)
}

pub fn usage_exit(u: Usage) -> ExitCode {
    eprintln!("{}", u.0);
    ExitCode::from(EXIT_USAGE)
}
