//! The page in a real browser: headless Chromium loads it from a server over the sample days,
//! and the rendered DOM must hold the chart (an SVG path per drawn series, the spike marked),
//! the legend and the details table. Screenshots (desktop and phone widths) are saved for a
//! person to look at. Skips when no Chromium is installed (Debian: `apt-get install chromium`).

mod report_support;

use report_support::start;
use std::path::PathBuf;
use std::process::Command;

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

fn headless(browser: &str, extra: &[&str], url: &str) -> std::process::Output {
    let profile = report_support::temp_dir("chromium-profile");
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            // Lets the page's fetches and drawing finish before the dump or the shot.
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("chromium runs");
    let _ = std::fs::remove_dir_all(profile);
    out
}

#[test]
fn the_page_draws_the_chart_and_the_table() {
    let Some(browser) = chromium() else {
        println!("SKIP: no chromium installed");
        return;
    };
    let s = start();
    let url = format!("http://{}/?sort=count&size=25", s.addr);
    let out = headless(browser, &["--dump-dom"], &url);
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains("<svg id=\"chart\""), "no chart in\n{dom}");
    // Three drawn series: TCP 23 (the spike), TCP 22, ICMP; each a path in the chart.
    let paths = dom.matches("<path d=\"M").count();
    assert_eq!(paths, 3, "{dom}");
    for label in [
        "TCP 23 (telnet)",
        "TCP 22 (ssh)",
        "ICMP",
        "class=\"ring\"",
        ">spike<",
    ] {
        assert!(dom.contains(label), "{label} missing in\n{dom}");
    }
    // The table: 25 rows on the first page of 50, sorted by count, largest first.
    assert!(dom.contains("50 rows"), "{dom}");
    let tbody = dom.split("<tbody>").nth(1).unwrap_or("");
    assert_eq!(tbody.matches("<tr>").count(), 25, "{tbody}");
    assert!(tbody.contains("198.51.100.10"));
    assert!(dom.contains("page 1 of 2"));

    // Screenshots at desktop and phone widths, kept for a look.
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    for (name, size) in [("desktop", "1280,900"), ("phone", "390,1400")] {
        let png = shots.join(format!("report-{name}.png"));
        let _ = std::fs::remove_file(&png);
        let out = headless(
            browser,
            &[
                &format!("--screenshot={}", png.display()),
                &format!("--window-size={size}"),
            ],
            &url,
        );
        let len = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
        assert!(
            len > 10_000,
            "no screenshot: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!("screenshot: {} ({len} bytes)", png.display());
    }
}
