//! The page in a real browser: headless Chromium loads it from a server over the sample days,
//! and the rendered DOM must hold the chart (an SVG path per drawn series, the spike marked),
//! the legend and the details table. Screenshots (desktop and phone widths) are saved for a
//! person to look at. Skips when no Chromium is installed (Debian: `apt-get install chromium`).

mod report_support;

use report_support::{sample_days, start, start_with, temp_dir};
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

/// A day with more rows than REPORT_REQUEST_ROWS (the sample's last day holds 48, the limit is
/// 30): the chart is still drawn, marked as estimated on that day, the summary's sources
/// carry "≈", and the table says why it is refused.
#[test]
fn a_day_too_large_to_read_is_drawn_with_estimates() {
    let Some(browser) = chromium() else {
        println!("SKIP: no chromium installed");
        return;
    };
    let dir = temp_dir("browser-request-rows");
    sample_days(&dir);
    let s = start_with(tsusen::config::Settings {
        log_directory: dir,
        report_request_rows: 30,
        ..Default::default()
    });
    // The text of the element with this id (the page's script holds the same words, so the
    // dump as a whole would prove nothing).
    let text_of = |dom: &str, id: &str| -> String {
        let at = dom
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("no #{id}"));
        let from = at + dom[at..].find('>').unwrap() + 1;
        dom[from..from + dom[from..].find("</").unwrap()].to_string()
    };
    // Pages of 3 rows stream (30 / 8 rows deep at most); the default 25 are refused.
    let out = headless(
        browser,
        &["--dump-dom"],
        &format!("http://{}/?size=3", s.addr),
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    assert_eq!(dom.matches("<path d=\"M").count(), 3, "{dom}");
    assert!(
        text_of(&dom, "hidden").contains(
            "estimated on 2024-03-05: too many rows to count exactly; refreshed every 10 minutes"
        ),
        "{dom}"
    );
    assert!(dom.contains("\u{2248} 43"), "{dom}");
    let total = text_of(&dom, "total");
    assert!(
        total.contains("50 rows") && total.contains("streamed from the files"),
        "{total}"
    );
    let out = headless(browser, &["--dump-dom"], &format!("http://{}/", s.addr));
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        text_of(&dom, "msg").contains("REPORT_REQUEST_ROWS"),
        "{dom}"
    );
}

#[test]
fn the_details_show_country_flags_as_and_tools() {
    let Some(browser) = chromium() else {
        println!("SKIP: no chromium installed");
        return;
    };
    let dir = temp_dir("browser-geoip");
    sample_days(&dir);
    let db = |f: &str| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/geoip")
            .join(f)
    };
    let s = start_with(tsusen::config::Settings {
        log_directory: dir,
        geoip_database: Some(db("country.mmdb")),
        asn_database: Some(db("asn.mmdb")),
        ..Default::default()
    });
    tsusen::report::publish(
        &s.live,
        tsusen::report::LiveSummary {
            at: 1,
            tools: vec![(tsusen::addr::Addr::v4([192, 0, 2, 2]), "masscan".into())],
            ..Default::default()
        },
    );
    let url = format!(
        "http://{}/?from=2024-03-01&to=2024-03-05&sort=src&dir=asc&size=25",
        s.addr
    );
    let out = headless(browser, &["--dump-dom"], &url);
    let dom = String::from_utf8_lossy(&out.stdout);
    let thead = dom.split("<thead>").nth(1).unwrap_or("");
    for col in [">country<", ">AS<", ">tool<"] {
        assert!(thead.contains(col), "{col} missing in\n{thead}");
    }
    let tbody = dom.split("<tbody>").nth(1).unwrap_or("");
    // 192.0.2.x is FR in the test database, 203.0.113.0/25 JP: the code, after its flag
    // (regional indicator letters) where the system has a colour emoji font.
    for (cc, flag) in [("FR", "\u{1F1EB}\u{1F1F7} "), ("JP", "\u{1F1EF}\u{1F1F5} ")] {
        let bare = format!("title=\"{cc}\">{cc}</td>");
        let flagged = format!("title=\"{cc}\">{flag}{cc}</td>");
        assert!(
            tbody.contains(&bare) || tbody.contains(&flagged),
            "{cc}: {tbody}"
        );
    }
    assert!(tbody.contains("AS64500 Example Transit"), "{tbody}");
    assert!(tbody.contains(">masscan<"), "{tbody}");
    let png = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report-geoip.png");
    let _ = std::fs::remove_file(&png);
    headless(
        browser,
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1280,1400",
        ],
        &url,
    );
    let len = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(len > 10_000, "no screenshot");
    println!("screenshot: {} ({len} bytes)", png.display());
}
