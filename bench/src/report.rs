//! Turns result lines (JSON, one per measurement) into `results.md` (tables with lbd ÷ best
//! peer ratios) and SVG bar charts.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use serde_json::Value;

fn num(v: &Value, k: &str) -> f64 {
    v.get(k).and_then(Value::as_f64).unwrap_or(0.0)
}

fn text<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// The label of `lb-bench floor`'s rows: a yardstick measured next to the balancers (the least
/// a proxy on tokio pays per request), never the best peer.
const FLOOR: &str = "floor";

/// The suffix of the rows of a peer run as it comes, without the forwarding headers and request
/// id that lbd adds to every request and the other peers are configured to add: less work per
/// request than lbd does, so shown for reference and never the best peer.
const BARE: &str = "-bare";

/// Whether a row's balancer is a peer lbd is compared with.
fn is_peer(label: &str) -> bool {
    !label.starts_with("lbd") && label != FLOOR && !label.ends_with(BARE)
}

/// One row per balancer: a balancer measured in several rounds of a load scenario gets its
/// median round by CPU per request (the lower middle one of an even count), so that its latency
/// figures come from the same run. Also returns, for those, "label a / b / c" (CPU per round,
/// in run order).
fn medians<'a>(loads: &[&&'a Value]) -> (Vec<&'a Value>, Vec<String>) {
    let mut by_label: Vec<(&str, Vec<&'a Value>)> = Vec::new();
    for r in loads {
        let label = text(r, "label");
        match by_label.iter_mut().find(|(l, _)| *l == label) {
            Some((_, v)) => v.push(**r),
            None => by_label.push((label, vec![**r])),
        }
    }
    let mut rows = Vec::new();
    let mut rounds = Vec::new();
    for (label, runs) in by_label {
        if runs.len() > 1 {
            let each: Vec<String> = runs.iter().map(|r| format!("{:.2}", num(r, "cpu_us_per_req"))).collect();
            rounds.push(format!("{label} {}", each.join(" / ")));
        }
        let mut sorted = runs;
        sorted.sort_by(|a, b| num(a, "cpu_us_per_req").total_cmp(&num(b, "cpu_us_per_req")));
        rows.push(sorted[(sorted.len() - 1) / 2]);
    }
    (rows, rounds)
}

/// Reads `input` (JSON lines) and writes `results.md` and `*.svg` into `out`.
pub(crate) fn write(input: &Path, out: &Path) -> Result<(), String> {
    let raw = std::fs::read_to_string(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let rows: Vec<Value> =
        raw.lines().filter(|l| !l.trim().is_empty()).filter_map(|l| serde_json::from_str(l).ok()).collect();
    let mut by_scenario: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for r in &rows {
        by_scenario.entry(text(r, "scenario").to_string()).or_default().push(r);
    }
    std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
    let mut md = String::from("# lbd benchmark results\n\n");
    let meta = rows.iter().find(|r| text(r, "kind") == "meta");
    if let Some(m) = meta {
        let _ = writeln!(md, "{}\n", text(m, "note"));
    }
    let mut cpu_chart = Vec::new();
    let mut lat_chart = Vec::new();
    let mut mem_chart = Vec::new();
    for (scenario, rs) in &by_scenario {
        let loads: Vec<&&Value> = rs.iter().filter(|r| text(r, "kind") == "load").collect();
        let conns: Vec<&&Value> = rs.iter().filter(|r| text(r, "kind") == "conns").collect();
        if !loads.is_empty() {
            let (loads, rounds) = medians(&loads);
            let best_peer = loads
                .iter()
                .filter(|r| is_peer(text(r, "label")))
                .map(|r| num(r, "cpu_us_per_req"))
                .filter(|v| *v > 0.0)
                .fold(f64::INFINITY, f64::min);
            let _ = writeln!(md, "## {scenario}\n\n{}\n", text(loads[0], "command"));
            let _ = writeln!(md, "| balancer | req/s | errors | p50 µs | p90 µs | p99 µs | p99.9 µs | CPU µs/req | user + kernel µs/req | CPU s per 1k req | MB/s | vs best peer (CPU/req) |");
            let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|");
            let mut cpu = Vec::new();
            let mut lat = Vec::new();
            for r in &loads {
                let label = text(r, "label");
                let c = num(r, "cpu_us_per_req");
                let ratio = if !is_peer(label) && best_peer.is_finite() && c > 0.0 {
                    format!("{:.2}", c / best_peer)
                } else {
                    "—".into()
                };
                // Lines written before the split was recorded have no user time.
                let split = match r.get("user_us_per_req").and_then(Value::as_f64) {
                    Some(u) => format!("{u:.2} + {:.2}", c - u),
                    None => "—".into(),
                };
                let _ = writeln!(
                    md,
                    "| {label} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} | {split} | {:.4} | {:.1} | {ratio} |",
                    num(r, "rps"),
                    num(r, "errors"),
                    num(r, "p50_us"),
                    num(r, "p90_us"),
                    num(r, "p99_us"),
                    num(r, "p999_us"),
                    c,
                    c / 1000.0,
                    num(r, "mb_per_s")
                );
                cpu.push((label.to_string(), c));
                lat.push((format!("{label} p50"), num(r, "p50_us")));
                lat.push((format!("{label} p99"), num(r, "p99_us")));
                lat.push((format!("{label} p99.9"), num(r, "p999_us")));
            }
            if !rounds.is_empty() {
                let _ = writeln!(
                    md,
                    "\nEach balancer's row is its median round by CPU per request; CPU µs/req per round, in run order: {}.",
                    rounds.join("; ")
                );
            }
            if let Some(floor) = loads.iter().find(|r| text(r, "label") == FLOOR) {
                let _ = writeln!(md, "\n{}", floor_line(&loads, floor));
            }
            if let Some(line) = bare_line(&loads) {
                let _ = writeln!(md, "\n{line}");
            }
            md.push('\n');
            cpu_chart.push((scenario.clone(), cpu));
            lat_chart.push((scenario.clone(), lat));
        }
        if !conns.is_empty() {
            let best_peer = conns
                .iter()
                .filter(|r| !text(r, "label").starts_with("lbd"))
                .map(|r| num(r, "bytes_per_conn"))
                .filter(|v| *v > 0.0)
                .fold(f64::INFINITY, f64::min);
            let _ = writeln!(md, "## {scenario}\n\n{}\n", text(conns[0], "command"));
            let _ = writeln!(md, "| balancer | connections | still open | RSS before | RSS after | anonymous before | anonymous after | bytes per connection | vs best peer |");
            let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
            let mut mem = Vec::new();
            for r in &conns {
                let label = text(r, "label");
                let b = num(r, "bytes_per_conn");
                let ratio = if label.starts_with("lbd") && best_peer.is_finite() {
                    format!("{:.2}", b / best_peer)
                } else {
                    "—".into()
                };
                let _ = writeln!(
                    md,
                    "| {label} | {:.0} | {:.0} | {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.0} | {ratio} |",
                    num(r, "opened"),
                    num(r, "alive"),
                    num(r, "rss_before") / 1048576.0,
                    num(r, "rss_after") / 1048576.0,
                    num(r, "anon_before") / 1048576.0,
                    num(r, "anon_after") / 1048576.0,
                    b
                );
                mem.push((format!("{label} ({:.0})", num(r, "opened")), b));
            }
            md.push('\n');
            mem_chart.push((scenario.clone(), mem));
        }
    }
    md.push_str("Charts: `cpu_per_request.svg`, `latency.svg`, `memory_per_connection.svg`.\n");
    let files = [
        ("results.md", md),
        ("cpu_per_request.svg", bar_chart("Balancer CPU per request (µs, lower is better)", &cpu_chart)),
        ("latency.svg", bar_chart("Latency percentiles (µs, lower is better)", &lat_chart)),
        (
            "memory_per_connection.svg",
            bar_chart("Resident memory per idle connection (bytes, lower is better)", &mem_chart),
        ),
    ];
    for (name, body) in files {
        std::fs::write(out.join(name), body).map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(())
}

/// What the floor row says: how much of the best peer's CPU it leaves, and lbd's user time
/// against its own.
fn floor_line(loads: &[&Value], floor: &Value) -> String {
    let f = num(floor, "cpu_us_per_req");
    let fu = num(floor, "user_us_per_req");
    let mut s = format!(
        "`floor` is `lb-bench floor`, not a balancer: the least a proxy on tokio does per request in this scenario (httparse to a pooled HTTP/1.1 backend connection; over TLS, rustls and h2 without hyper; no routing, metrics or timeouts). Its {f:.2} µs ({fu:.2} user + {:.2} kernel) is about the least the kernel's loopback TCP and those crates leave.",
        f - fu
    );
    if let Some(lbd) = loads.iter().find(|r| text(r, "label") == "lbd") {
        let u = num(lbd, "user_us_per_req");
        let _ = write!(
            s,
            " lbd: {:.2} µs per request, {:.2}× the floor; its user time {u:.2} µs, {:.1}× the floor's.",
            num(lbd, "cpu_us_per_req"),
            num(lbd, "cpu_us_per_req") / f.max(1e-9),
            u / fu.max(1e-9)
        );
    }
    s
}

/// What the bare rows say, when there are any: lbd against the best of them, the ratio a
/// comparison with peers doing less than lbd would give.
fn bare_line(loads: &[&Value]) -> Option<String> {
    let best = loads
        .iter()
        .filter(|r| text(r, "label").ends_with(BARE) && num(r, "cpu_us_per_req") > 0.0)
        .min_by(|a, b| num(a, "cpu_us_per_req").total_cmp(&num(b, "cpu_us_per_req")))?;
    let mut s = String::from(
        "Rows ending in `-bare` are peers as they come, without the forwarding headers and request id that lbd and the other rows send the origin: less work per request than lbd does, so shown for reference and never the best peer.",
    );
    if let Some(lbd) = loads.iter().find(|r| text(r, "label") == "lbd") {
        let _ = write!(
            s,
            " lbd ÷ the best of them ({}, {:.2} µs): {:.2}.",
            text(best, "label"),
            num(best, "cpu_us_per_req"),
            num(lbd, "cpu_us_per_req") / num(best, "cpu_us_per_req")
        );
    }
    Some(s)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A horizontal bar chart: one block per group, one bar per (label, value).
pub(crate) fn bar_chart(title: &str, groups: &[(String, Vec<(String, f64)>)]) -> String {
    let bar_h = 18.0;
    let left = 220.0;
    let width = 900.0;
    let plot = width - left - 90.0;
    let bars: usize = groups.iter().map(|(_, b)| b.len() + 1).sum();
    let height = 50.0 + bars as f64 * (bar_h + 4.0) + 10.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/><text x="10" y="24" font-size="15" font-weight="bold">{}</text>"#,
        esc(title)
    );
    let mut y = 44.0;
    for (group, items) in groups {
        let max = items.iter().map(|(_, v)| *v).fold(0.0f64, f64::max).max(1e-9);
        let _ = writeln!(s, r#"<text x="10" y="{:.0}" font-weight="bold">{}</text>"#, y + 13.0, esc(group));
        y += bar_h + 4.0;
        for (label, v) in items {
            let w = (v / max * plot).max(1.0);
            let fill = if label.starts_with("lbd") {
                "#d9480f"
            } else if label.starts_with(FLOOR) {
                "#adb5bd"
            } else if label.ends_with(BARE) {
                "#bac8ff"
            } else {
                "#5c7cfa"
            };
            let _ = writeln!(
                s,
                r#"<text x="{:.0}" y="{:.0}" text-anchor="end">{}</text><rect x="{left}" y="{y:.0}" width="{w:.1}" height="{bar_h}" fill="{fill}"/><text x="{:.1}" y="{:.0}">{}</text>"#,
                left - 6.0,
                y + 13.0,
                esc(label),
                left + w + 4.0,
                y + 13.0,
                if *v >= 100.0 { format!("{v:.0}") } else { format!("{v:.2}") }
            );
            y += bar_h + 4.0;
        }
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `results.md` for these JSON lines.
    fn report_of(name: &str, lines: &[String]) -> String {
        let dir = std::env::temp_dir().join(format!("lb-bench-{name}-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let input = dir.join("r.jsonl");
        std::fs::write(&input, lines.join("\n")).expect("write");
        write(&input, &dir).expect("report");
        let md = std::fs::read_to_string(dir.join("results.md")).expect("md");
        let _ = std::fs::remove_dir_all(&dir);
        md
    }

    /// A load line of scenario `h1`.
    fn load_line(label: &str, cpu: f64, user: f64, p50: u32) -> String {
        format!(
            r#"{{"kind":"load","scenario":"h1","label":"{label}","command":"x","rps":1000,"cpu_us_per_req":{cpu},"user_us_per_req":{user},"p50_us":{p50},"p99_us":1,"p999_us":1}}"#
        )
    }

    #[test]
    fn report_has_ratios_and_charts() {
        let dir = std::env::temp_dir().join(format!("lb-bench-report-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let input = dir.join("r.jsonl");
        std::fs::write(
            &input,
            concat!(
                r#"{"kind":"load","scenario":"h1","label":"lbd","command":"x","rps":1000,"cpu_us_per_req":8,"user_us_per_req":2.5,"p50_us":100,"p99_us":200,"p999_us":300}"#, "\n",
                r#"{"kind":"load","scenario":"h1","label":"nginx","command":"x","rps":900,"cpu_us_per_req":10,"p50_us":110,"p99_us":210,"p999_us":310}"#, "\n",
                r#"{"kind":"conns","scenario":"idle","label":"lbd","command":"y","opened":1000,"alive":1000,"bytes_per_conn":400}"#, "\n",
                r#"{"kind":"conns","scenario":"idle","label":"haproxy","command":"y","opened":1000,"alive":1000,"bytes_per_conn":1000}"#, "\n",
            ),
        )
        .expect("write");
        write(&input, &dir).expect("report");
        let md = std::fs::read_to_string(dir.join("results.md")).expect("md");
        assert!(
            md.contains("| lbd | 1000 | 0 | 100 | 0 | 200 | 300 | 8.00 | 2.50 + 5.50 | 0.0080 | 0.0 | 0.80 |"),
            "{md}"
        );
        // A line without the user/kernel split (written by an older lb-bench) still reports.
        assert!(md.contains("| nginx | 900 | 0 | 110 | 0 | 210 | 310 | 10.00 | — | 0.0100 | 0.0 | — |"), "{md}");
        assert!(md.contains("| lbd | 1000 | 1000 | 0.0 MiB | 0.0 MiB | 0.0 MiB | 0.0 MiB | 400 | 0.40 |"), "{md}");
        // One round each: no rounds line.
        assert!(!md.contains("median round"), "{md}");
        let svg = std::fs::read_to_string(dir.join("cpu_per_request.svg")).expect("svg");
        assert!(svg.starts_with("<svg") && svg.contains(">lbd<") && svg.contains(">nginx<"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn rounds_of_a_scenario_report_each_balancers_median_round() {
        let lines = [
            load_line("lbd", 9.0, 2.0, 91),
            load_line("nginx", 8.0, 2.0, 81),
            load_line("lbd", 8.5, 2.0, 85),
            load_line("nginx", 9.5, 2.0, 95),
            load_line("lbd", 9.5, 2.0, 95),
            load_line("nginx", 8.5, 2.0, 85),
        ];
        let md = report_of("rounds", &lines);
        // lbd's median round is 9.0 (p50 91), nginx's 8.5 (p50 85): the ratio is 9.0 / 8.5.
        assert!(md.contains("| lbd | 1000 | 0 | 91 | 0 | 1 | 1 | 9.00 | 2.00 + 7.00 | 0.0090 | 0.0 | 1.06 |"), "{md}");
        assert!(md.contains("| nginx | 1000 | 0 | 85 | 0 | 1 | 1 | 8.50 |"), "{md}");
        assert_eq!(md.matches("| lbd |").count(), 1, "{md}");
        assert!(md.contains("in run order: lbd 9.00 / 8.50 / 9.50; nginx 8.00 / 9.50 / 8.50."), "{md}");
    }

    #[test]
    fn a_bare_peer_is_never_the_best_peer_and_lbd_is_also_given_against_it() {
        let lines = [
            load_line("lbd", 9.0, 3.0, 1),
            load_line("nginx", 10.0, 3.5, 1),
            load_line("nginx-bare", 8.0, 2.5, 1),
            load_line("haproxy-bare", 8.5, 3.0, 1),
        ];
        let md = report_of("bare", &lines);
        // The ratio is against nginx, the only peer doing what lbd does; the bare rows get theirs
        // against it too.
        assert!(md.contains("| lbd | 1000 | 0 | 1 | 0 | 1 | 1 | 9.00 | 3.00 + 6.00 | 0.0090 | 0.0 | 0.90 |"), "{md}");
        assert!(
            md.contains("| nginx-bare | 1000 | 0 | 1 | 0 | 1 | 1 | 8.00 | 2.50 + 5.50 | 0.0080 | 0.0 | 0.80 |"),
            "{md}"
        );
        assert!(md.contains("| nginx | 1000 | 0 | 1 | 0 | 1 | 1 | 10.00 | 3.50 + 6.50 | 0.0100 | 0.0 | — |"), "{md}");
        assert!(md.contains("lbd ÷ the best of them (nginx-bare, 8.00 µs): 1.12."), "{md}");
        // Without bare rows, no such line.
        let md = report_of("nobare", &lines[..2]);
        assert!(!md.contains("-bare"), "{md}");
    }

    #[test]
    fn the_floor_is_never_the_best_peer_and_says_what_it_leaves() {
        let lines = [load_line("lbd", 9.0, 3.0, 1), load_line("nginx", 8.0, 2.5, 1), load_line("floor", 6.0, 1.0, 1)];
        let md = report_of("floor", &lines);
        // Ratios against nginx, the only peer, for lbd and for the floor.
        assert!(md.contains("| lbd | 1000 | 0 | 1 | 0 | 1 | 1 | 9.00 | 3.00 + 6.00 | 0.0090 | 0.0 | 1.12 |"), "{md}");
        assert!(md.contains("| floor | 1000 | 0 | 1 | 0 | 1 | 1 | 6.00 | 1.00 + 5.00 | 0.0060 | 0.0 | 0.75 |"), "{md}");
        assert!(md.contains("Its 6.00 µs (1.00 user + 5.00 kernel)"), "{md}");
        assert!(
            md.contains("lbd: 9.00 µs per request, 1.50× the floor; its user time 3.00 µs, 3.0× the floor's."),
            "{md}"
        );
    }
}
