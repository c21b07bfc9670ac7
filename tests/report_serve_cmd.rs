//! `tsusen serve` as the command runs it: options, a usage error, serving a log directory, and
//! stopping on SIGTERM. (The binary's `main` dispatches to `report::serve_cmd::main`.)

mod report_support;

use report_support::{sample_days, temp_dir};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tsusen::report::serve_cmd;

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[test]
fn serves_a_log_directory_until_sigterm() {
    let code = |c: ExitCode| format!("{c:?}");
    assert_eq!(
        code(serve_cmd::main(args(&["--http", "not an address"]))),
        code(ExitCode::from(2))
    );
    assert_eq!(
        code(serve_cmd::main(args(&["--bogus"]))),
        code(ExitCode::from(2))
    );
    assert_eq!(
        code(serve_cmd::main(args(&["--help"]))),
        code(ExitCode::SUCCESS)
    );

    let dir = temp_dir("serve-cmd");
    sample_days(&dir);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    // The report's memory comes from the config file, as on a board.
    let conf = dir.join("board.conf");
    std::fs::write(&conf, "REPORT_CACHE_ROWS 20\n").unwrap();
    let a = args(&[
        "--config",
        conf.to_str().unwrap(),
        "--log-dir",
        dir.to_str().unwrap(),
        "--http",
        &addr,
    ]);
    let server = std::thread::spawn(move || serve_cmd::main(a));
    let t = Instant::now();
    let mut c = loop {
        match TcpStream::connect(&addr) {
            Ok(c) => break c,
            Err(_) if t.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("tsusen serve is not listening: {e}"),
        }
    };
    c.write_all(b"GET /api/summary HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"day\":\"2024-03-05\""), "{answer}");
    // The day shown has 48 rows: more than 20, so it was read for the request and dropped.
    assert!(answer.contains("\"cache_rows\":20,"), "{answer}");
    assert!(answer.contains("\"cached_rows\":0,"), "{answer}");
    idle_server_sleeps();
    // SAFETY: raising a signal whose handler `serve` installed (it only sets a flag).
    unsafe {
        libc::raise(libc::SIGTERM);
    }
    let status = server.join().unwrap();
    assert_eq!(code(status), code(ExitCode::SUCCESS));
    assert!(TcpStream::connect(&addr).is_err(), "still listening");
    let _ = std::fs::remove_dir_all(dir);
}

/// The server thread of this process, when the kernel shows it, and how many times it has run.
fn server_thread_runs() -> Option<u64> {
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let task = task.ok()?.path();
        let name = std::fs::read_to_string(task.join("comm")).ok()?;
        if name.trim() == "tsusen-http" {
            // schedstat: time on CPU, time waiting, times run.
            let stat = std::fs::read_to_string(task.join("schedstat")).ok()?;
            return stat.split_whitespace().nth(2)?.parse().ok();
        }
    }
    None
}

/// With no visitor the server thread sleeps until one comes, or until it is stopped: it does
/// not wake on a timer.
fn idle_server_sleeps() {
    // Time for the answered connection to close.
    std::thread::sleep(Duration::from_millis(200));
    let Some(before) = server_thread_runs() else {
        println!("SKIP idle check: no /proc/self/task/*/schedstat for the server thread");
        return;
    };
    std::thread::sleep(Duration::from_millis(1500));
    let after = server_thread_runs().expect("the server thread is still there");
    assert_eq!(
        after,
        before,
        "the idle server thread woke {} times",
        after - before
    );
}
