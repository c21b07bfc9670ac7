//! Fault points for the crash tests: between the steps of a write, the process can kill itself
//! as a power cut would stop it. Off unless the environment variable TSUSEN_FAULT holds a
//! probability (e.g. `0.02`), which only tests set.

use std::sync::{Mutex, OnceLock};

fn probability() -> f64 {
    static P: OnceLock<f64> = OnceLock::new();
    *P.get_or_init(|| {
        std::env::var("TSUSEN_FAULT")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|p| (0.0..=1.0).contains(p))
            .unwrap_or(0.0)
    })
}

/// True, at the configured probability, when the caller should act out a crash here.
pub fn hit(point: &str) -> bool {
    let p = probability();
    if p == 0.0 {
        return false;
    }
    // A mutex, not an AtomicU64: 32-bit MIPS has no 64-bit atomics.
    static STATE: Mutex<u64> = Mutex::new(0);
    let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let mut x = *state;
    if x == 0 {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        x = t ^ (std::process::id() as u64) << 32 | 1;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    let hit = (x >> 11) as f64 / (1u64 << 53) as f64 <= p;
    if hit {
        eprintln!("tsusen: fault point {point}: stopping as a power cut would");
    }
    hit
}

/// Stops the process at once, with no unwinding, flushing or exit handlers.
pub fn crash_here(point: &str) {
    if hit(point) {
        kill_now();
    }
}

pub fn kill_now() {
    // SAFETY: kill(2) on our own pid.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
}
