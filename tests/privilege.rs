//! Least privilege: `tsusen run` with RUN_AS opens its capture socket as root, then becomes the
//! named user with no capability left, and still writes its files. Needs root; skips otherwise.

use std::fs;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

fn status_field(pid: u32, name: &str) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with(name))
        .map(|l| l[name.len()..].trim().to_string())
}

#[test]
fn run_drops_root_and_every_capability() {
    if status_field(std::process::id(), "Uid:").is_none_or(|u| !u.starts_with("0")) {
        eprintln!("SKIP run_drops_root_and_every_capability: needs root");
        return;
    }
    let dir = std::env::temp_dir().join(format!("tsusen-priv-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("tsusen.conf");
    fs::write(
        &conf,
        format!(
            "RUN_AS nobody\nLOG_DIRECTORY {}/logs\nSTATE_FILE {}/state/state.bin\nWRITE_PERIOD 1\nSYSLOG no\n",
            dir.display(),
            dir.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tsusen"))
        .args([
            "run",
            "--interface",
            "lo",
            "--local",
            "127.0.0.0/8",
            "--config",
        ])
        .arg(&conf)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let t = Instant::now();
    let mut uid = None;
    while t.elapsed() < Duration::from_secs(10) {
        uid = status_field(pid, "Uid:");
        if uid.as_deref().is_some_and(|u| !u.starts_with('0')) {
            break;
        }
        sleep(Duration::from_millis(50));
    }
    let caps: Vec<String> = ["CapEff:", "CapPrm:", "CapInh:", "CapAmb:"]
        .iter()
        .filter_map(|f| status_field(pid, f))
        .collect();
    // Let a flush and a snapshot happen as the user.
    sleep(Duration::from_millis(2500));
    let alive = child.try_wait().unwrap().is_none();
    // SAFETY: kill(2) on our own child.
    unsafe { libc_kill(pid as i32, 15) };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(alive, "the sensor stopped early:\n{err}");
    let uid = uid.unwrap_or_default();
    assert!(
        uid.split_whitespace().all(|u| u == "65534"),
        "real, effective, saved and fs uid should be nobody's: {uid}\n{err}"
    );
    assert_eq!(caps.len(), 4);
    for c in &caps {
        assert_eq!(c, "0000000000000000", "a capability is left: {caps:?}");
    }
    assert!(out.status.success(), "{}\n{err}", out.status);
    assert!(
        dir.join("state/state.bin").exists(),
        "no snapshot written as the user\n{err}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}
