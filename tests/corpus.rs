//! Robustness: `tsusen replay` over every file under `../shared/corpus/` (tcpdump's test
//! captures, many malformed on purpose, and ESnet's curated scans), one file per run, two runs
//! at a time, each bounded by a timeout. A run must end with exit 0 (processed, perhaps cut
//! short with a warning) or exit 1 (refused, with a message naming the file): never a panic, a
//! signal, another exit code, or a hang.
//!
//! Skipped with a printed reason when the corpus is absent (it is not part of the project).
//! `TSUSEN_CORPUS_FILTER=substring` limits the run to the paths containing it.

use std::fs;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tsusen");
const HEADER: &str = "proto dst_port dst_ip src_ip first_seen last_seen count";
const TIMEOUT: Duration = Duration::from_secs(20);
const THREADS: usize = 2;

/// Writes straight to stderr, past libtest's output capture, so the totals are shown even when
/// the test passes under a plain `cargo test`.
macro_rules! say {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

enum Outcome {
    /// Exit 0; `warned` when stderr carried a message.
    Processed {
        packets: u64,
        attempts: u64,
        warned: bool,
    },
    /// Exit 0 with a warning that the file is cut short.
    CutShort {
        message: String,
    },
    /// Exit 1 with a message naming the file.
    Refused {
        message: String,
    },
    Failed(String),
}

struct Report {
    file: PathBuf,
    outcome: Outcome,
    took: Duration,
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(&p, out),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
}

/// The number after `word ` in the summary line, if any.
fn field(summary: &str, word: &str) -> Option<u64> {
    let at = summary.find(&format!("{word} "))? + word.len() + 1;
    let digits: String = summary[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// Checks the CSV files a run left: header, seven fields, counts; no temporary files left.
/// Returns the sum of the counts.
fn check_log_dir(dir: &Path) -> Result<u64, String> {
    let mut total = 0;
    for e in fs::read_dir(dir)
        .map_err(|e| format!("log dir: {e}"))?
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        let is_day = name.len() == 14
            && name.ends_with(".csv")
            && name[..10].bytes().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            });
        if !is_day {
            return Err(format!("unexpected file left in the log directory: {name}"));
        }
        let text = fs::read_to_string(e.path()).map_err(|e| format!("{name}: {e}"))?;
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return Err(format!("{name}: bad header"));
        }
        for (i, line) in lines.enumerate() {
            let f: Vec<&str> = line.split(' ').collect();
            let bad = || format!("{name} line {}: {line:?}", i + 2);
            if f.len() != 7 {
                return Err(bad());
            }
            let n: Vec<u64> = f[4..]
                .iter()
                .map(|s| s.parse::<u64>())
                .collect::<Result<_, _>>()
                .map_err(|_| bad())?;
            if n[2] == 0 || n[0] > n[1] {
                return Err(bad());
            }
            if f[1] != "-" && f[1].parse::<u16>().is_err() {
                return Err(bad());
            }
            if f[2].parse::<std::net::IpAddr>().is_err()
                || f[3].parse::<std::net::IpAddr>().is_err()
            {
                return Err(bad());
            }
            total += n[2];
        }
    }
    Ok(total)
}

fn replay_one(file: &Path, work: &Path) -> Outcome {
    let logs = work.join("log");
    if let Err(e) = fs::create_dir_all(&logs) {
        return Outcome::Failed(format!("cannot create {}: {e}", logs.display()));
    }
    let (out_p, err_p) = (work.join("stdout"), work.join("stderr"));
    let (Ok(out_f), Ok(err_f)) = (fs::File::create(&out_p), fs::File::create(&err_p)) else {
        return Outcome::Failed("cannot create output files".into());
    };
    let child = Command::new(BIN)
        .args([
            "replay",
            "--local",
            "0.0.0.0/1",
            "--local",
            "2001:db8::/32",
            "--log-dir",
        ])
        .arg(&logs)
        .arg(file)
        .stdin(Stdio::null())
        .stdout(out_f)
        .stderr(err_f)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(format!("cannot start {BIN}: {e}")),
    };
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if start.elapsed() > TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Outcome::Failed(format!("no exit within {TIMEOUT:?}: killed (hang?)"));
            }
            Ok(None) => {
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(e) => return Outcome::Failed(format!("wait: {e}")),
        }
    };
    let stdout = fs::read_to_string(&out_p).unwrap_or_default();
    let stderr = String::from_utf8_lossy(&fs::read(&err_p).unwrap_or_default()).into_owned();
    let tail = || {
        let t: Vec<&str> = stderr.lines().rev().take(5).collect();
        t.into_iter().rev().collect::<Vec<_>>().join("\n")
    };
    let path_s = file.to_string_lossy();
    let name_s = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let names_file = stderr.contains(path_s.as_ref()) || stderr.contains(&name_s);

    if let Some(sig) = status.signal() {
        return Outcome::Failed(format!("killed by signal {sig} (panic=abort?)\n{}", tail()));
    }
    match status.code() {
        Some(0) => {
            let Some(summary) = stdout.lines().find(|l| field(l, "packets").is_some()) else {
                return Outcome::Failed(format!(
                    "exit 0 without the summary line `packets N, attempts N, ...`; stdout: {stdout:?}"
                ));
            };
            let counted = match check_log_dir(&logs) {
                Ok(n) => n,
                Err(e) => return Outcome::Failed(e),
            };
            if let Some(attempts) = field(summary, "attempts") {
                if attempts != counted {
                    return Outcome::Failed(format!(
                        "summary says {attempts} attempts, the CSV counts add up to {counted}: {summary}"
                    ));
                }
            }
            let lower = stderr.to_lowercase();
            if lower.contains("cut") || lower.contains("truncat") || lower.contains("short") {
                if !names_file {
                    return Outcome::Failed(format!(
                        "cut short, but the warning does not name the file:\n{}",
                        tail()
                    ));
                }
                Outcome::CutShort {
                    message: stderr.trim().to_string(),
                }
            } else {
                Outcome::Processed {
                    packets: field(summary, "packets").unwrap_or(0),
                    attempts: counted,
                    warned: !stderr.trim().is_empty(),
                }
            }
        }
        Some(1) => {
            if stderr.trim().is_empty() {
                Outcome::Failed("exit 1 with nothing on stderr".into())
            } else if !names_file {
                Outcome::Failed(format!(
                    "exit 1, but the message does not name the file:\n{}",
                    tail()
                ))
            } else {
                Outcome::Refused {
                    message: stderr.trim().to_string(),
                }
            }
        }
        Some(101) => Outcome::Failed(format!("panicked (exit 101)\n{}", tail())),
        Some(c) => Outcome::Failed(format!("exit code {c}\n{}", tail())),
        None => Outcome::Failed("no exit code".into()),
    }
}

#[test]
fn replay_every_corpus_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    if !root.is_dir() {
        say!(
            "SKIP replay_every_corpus_file: no corpus at {} (it is not part of the project)",
            root.display()
        );
        return;
    }
    let root = root.canonicalize().unwrap_or(root);
    let mut files = Vec::new();
    walk(&root, &mut files);
    if let Ok(filter) = std::env::var("TSUSEN_CORPUS_FILTER") {
        files.retain(|f| f.to_string_lossy().contains(&filter));
    }
    files.sort();
    if files.is_empty() {
        say!(
            "SKIP replay_every_corpus_file: no files under {}",
            root.display()
        );
        return;
    }

    let base = std::env::temp_dir().join(format!("tsusen-corpus-{}", std::process::id()));
    let _ = fs::remove_dir_all(&base);
    fs::create_dir_all(&base).expect("work directory");
    let next = AtomicUsize::new(0);
    let reports = Mutex::new(Vec::with_capacity(files.len()));
    let started = Instant::now();
    thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(file) = files.get(i) else { break };
                let work = base.join(i.to_string());
                let t = Instant::now();
                let outcome = replay_one(file, &work);
                let took = t.elapsed();
                let _ = fs::remove_dir_all(&work);
                reports.lock().unwrap().push(Report {
                    file: file.clone(),
                    outcome,
                    took,
                });
            });
        }
    });
    let _ = fs::remove_dir_all(&base);
    let mut reports = reports.into_inner().unwrap();
    reports.sort_by(|a, b| a.file.cmp(&b.file));

    let rel = |p: &Path| p.strip_prefix(&root).unwrap_or(p).display().to_string();
    let first_line = |m: &str| m.lines().next().unwrap_or("").to_string();
    let (mut processed, mut warned, mut cut, mut refused) = (0, 0, 0, 0);
    let (mut packets, mut attempts) = (0u64, 0u64);
    let mut failures = Vec::new();
    let mut refused_examples = Vec::new();
    let mut cut_examples = Vec::new();
    for r in &reports {
        match &r.outcome {
            Outcome::Processed {
                packets: n,
                attempts: a,
                warned: w,
            } => {
                processed += 1;
                packets += n;
                attempts += a;
                warned += usize::from(*w);
            }
            Outcome::CutShort { message } => {
                cut += 1;
                cut_examples.push(format!("  {}: {}", rel(&r.file), first_line(message)));
            }
            Outcome::Refused { message } => {
                refused += 1;
                refused_examples.push(format!("  {}: {}", rel(&r.file), first_line(message)));
            }
            Outcome::Failed(why) => failures.push(format!("  {}: {why}", rel(&r.file))),
        }
    }
    let mut slowest: Vec<&Report> = reports.iter().collect();
    slowest.sort_by_key(|r| std::cmp::Reverse(r.took));

    say!(
        "corpus: {} files in {:.1} s: processed {processed} (with a warning {warned}; {packets} packets, {attempts} attempts), \
         cut short {cut}, refused {refused}, FAILED {}",
        reports.len(),
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    say!(
        "corpus: slowest: {}",
        slowest
            .iter()
            .take(3)
            .map(|r| format!("{} {:.2} s", rel(&r.file), r.took.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !refused_examples.is_empty() {
        say!(
            "corpus: refused, first of {}:\n{}",
            refused,
            refused_examples[..refused_examples.len().min(5)].join("\n")
        );
    }
    if !cut_examples.is_empty() {
        say!(
            "corpus: cut short, first of {}:\n{}",
            cut,
            cut_examples[..cut_examples.len().min(5)].join("\n")
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus files failed:\n{}",
        failures.len(),
        reports.len(),
        failures[..failures.len().min(60)].join("\n")
    );
}
