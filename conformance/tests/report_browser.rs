//! The HTML report in a real browser: a report of a small constructed run is written to a
//! temporary folder and loaded headless at `report.html#cell=CASE/IMPL`, as a person would
//! follow a cell's link; the page's DOM after its script ran must show the details pane open
//! on that cell, with the diff against the oracle.
//!
//! Chromium is found as `$CHROME`, else `chromium`, `chromium-browser` or `google-chrome` on
//! `PATH`. Without one the test prints why it skipped and passes (install it with
//! `apt-get install chromium`).

// Test code: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use conformance::implementations::ORACLE;
use conformance::report;
use conformance::runner::{CaseResult, ImplementationReport, MatrixRun};
use conformance::spec::LoadedCase;
use conformance::spec::load::{Suite, load_str};
use conformance::verdict::{Status, Verdict};
use serde_json::json;

const CASES: &str = "format: 1
area: blocking
cases:
  - id: BLK-1
    claim: apply returns the task's value.
    cite: [{doc: 'library/multiprocessing.html#multiprocessing.pool.Pool.apply'}]
    tags: [contract]
    steps:
      - apply: {task: 5}
    expect: {steps: {s1: {returned: 5}}}
  - id: BLK-2
    claim: apply returns the task's value again.
    cite: [{doc: 'library/multiprocessing.html#multiprocessing.pool.Pool.apply'}]
    tags: [contract]
    steps:
      - apply: {task: 6}
    expect: {steps: {s1: {returned: 6}}}
";

/// The implementation under test beside the oracle.
const POOL: &str = "mypool";

/// How long Chromium may take to load the page and dump it.
const BROWSER_BOUND: Duration = Duration::from_secs(90);

fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROME").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| which::which(name).ok())
}

fn cases() -> Vec<LoadedCase> {
    let mut suite = Suite::default();
    load_str(Path::new("spec/blocking.yaml"), CASES, &mut suite);
    assert!(suite.errors.is_empty(), "{:?}", suite.errors);
    suite.cases
}

fn cell(case: &LoadedCase, imp: &str, returned: i64) -> CaseResult {
    let expected = if case.id() == "BLK-1" { 5 } else { 6 };
    let pass = returned == expected;
    CaseResult {
        case: case.id().to_owned(),
        area: case.area,
        quirk: case.is_quirk(),
        implementation: imp.to_owned(),
        status: if pass { Status::Pass } else { Status::Fail },
        verdict: if pass {
            Verdict::Pass
        } else {
            Verdict::Unexpected
        },
        reason: (!pass).then(|| format!("step s1 returned {returned}, expected {expected}")),
        expected: None,
        fault: None,
        observation: Some(json!({"steps": {"s1": {"returned": returned}}})),
        unstable: None,
        history: None,
        duration_ms: 10,
    }
}

/// BLK-1 fails on `mypool` (it returned 7), everything else passes.
fn run(cases: &[LoadedCase]) -> MatrixRun {
    let results = vec![
        cell(&cases[0], ORACLE, 5),
        cell(&cases[0], POOL, 7),
        cell(&cases[1], ORACLE, 6),
        cell(&cases[1], POOL, 6),
    ];
    MatrixRun {
        implementations: [ORACLE, POOL]
            .map(|name| ImplementationReport {
                name: name.to_owned(),
                info: None,
                capabilities: Vec::new(),
            })
            .to_vec(),
        results,
        wall: Duration::from_secs(1),
    }
}

/// The page's DOM after its script ran, as Chromium dumps it.
fn dump_dom(chrome: &Path, url: &str, profile: &Path) -> String {
    let mut child = Command::new(chrome)
        .args([
            "--headless=new",
            // Root in a container has no user namespace for the sandbox.
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-dev-shm-usage",
            // Virtual time: the page's scripts run to completion before the dump.
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", chrome.display()));
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).map(|_| text)
    });
    // A liveness bound only: the dump decides the test, the clock only stops a hung browser.
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > BROWSER_BOUND {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} did not finish within {BROWSER_BOUND:?}",
                chrome.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().unwrap().unwrap()
}

/// The details pane's markup: `<aside id="panel" ...>` to its `</aside>`.
fn panel(dom: &str) -> &str {
    let start = dom
        .find("<aside id=\"panel\"")
        .expect("the page has the details pane");
    let end = dom[start..].find("</aside>").expect("the pane is closed") + start;
    &dom[start..end]
}

#[test]
fn a_cell_link_opens_its_details_with_the_diff() {
    let Some(chrome) = chromium() else {
        println!("skipped: no chromium (apt-get install chromium, or set $CHROME)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cases = cases();
    let paths = report::write_all(&dir.path().join("report"), &run(&cases), &cases).unwrap();
    let page = format!("file://{}", paths.html.display());

    let dom = dump_dom(
        &chrome,
        &format!("{page}#cell=BLK-1/{POOL}"),
        &dir.path().join("p1"),
    );
    let pane = panel(&dom);
    assert!(
        !pane.contains(" hidden"),
        "the details pane is open: {pane}"
    );
    assert!(
        pane.contains(&format!("BLK-1 on {POOL}</h2>")),
        "it shows the linked cell: {pane}"
    );
    assert!(pane.contains("step s1 returned 7, expected 5"), "{pane}");
    assert!(
        pane.contains(&format!("Diff against the oracle ({ORACLE})")),
        "{pane}"
    );
    let diff = pane
        .split("<pre class=\"diff\">")
        .nth(1)
        .and_then(|rest| rest.split("</pre>").next())
        .unwrap_or_else(|| panic!("the pane shows a diff: {pane}"));
    assert!(
        diff.contains("<span class=\"del\">") && diff.contains("<span class=\"add\">"),
        "the diff has a removed and an added line: {diff}"
    );
    assert!(
        diff.contains("returned: 5") && diff.contains("returned: 7"),
        "{diff}"
    );
    // The matrix marks the cell as selected.
    let row = dom
        .split("<tr class=\"")
        .find(|tr| tr.contains("data-case=\"BLK-1\""))
        .and_then(|tr| tr.split('"').next())
        .unwrap_or_default();
    assert!(
        row.split(' ').any(|c| c == "selrow"),
        "the cell's row is selected: {row}"
    );

    // Without a cell link the pane stays closed.
    let dom = dump_dom(&chrome, &page, &dir.path().join("p2"));
    assert!(
        panel(&dom).starts_with("<aside id=\"panel\" hidden"),
        "{}",
        panel(&dom)
    );
}
