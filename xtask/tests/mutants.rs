//! `cargo xtask mutants` end to end, kept short: three mutants against two cases. The cases
//! are chosen so that one mutant dies by a failed expectation, one by another case, and one
//! survives both (its defect needs a case about keyword arguments).

use std::path::Path;
use std::process::Command;

fn xtask(out: &Path, args: &[&str]) -> (Option<i32>, String, serde_json::Value) {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("mutants")
        .args(args)
        .arg("--out")
        .arg(out)
        .arg("--no-progress")
        .output()
        .expect("running xtask");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report = std::fs::read_to_string(out.join("report.json"))
        .unwrap_or_else(|e| panic!("no report.json ({e}); stdout:\n{stdout}\nstderr:\n{stderr}"));
    let report = serde_json::from_str(&report).expect("report.json is JSON");
    (output.status.code(), stdout, report)
}

fn mutant<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["mutants"]
        .as_array()
        .expect("mutants")
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in the report: {report:#}"))
}

fn kills(report: &serde_json::Value, name: &str) -> Vec<(String, String)> {
    mutant(report, name)["kills"]
        .as_array()
        .expect("kills")
        .iter()
        .map(|k| {
            (
                k["case"].as_str().expect("case").to_owned(),
                k["status"].as_str().expect("status").to_owned(),
            )
        })
        .collect()
}

#[test]
fn mutants_are_killed_or_reported_as_survivors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, stdout, report) = xtask(
        dir.path(),
        &[
            "--mutant",
            "MapReversed",
            "--mutant",
            "CloseIgnored",
            "--mutant",
            "ApplyDropsKwds",
            "--case",
            "ORD-001",
            "--case",
            "LIF-003",
            "--all",
        ],
    );
    // A survivor fails the run.
    assert_eq!(code, Some(1), "{stdout}");
    assert_eq!(report["control"]["passed"], 2, "{report:#}");
    assert_eq!(report["cases"], 2);
    assert_eq!(report["mode"], "all");
    assert_eq!(
        report["score"],
        serde_json::json!({"killed": 2, "survived": 1, "broken": 0, "total": 3})
    );
    assert_eq!(
        kills(&report, "MapReversed"),
        vec![("ORD-001".to_owned(), "fail".to_owned())]
    );
    assert_eq!(
        kills(&report, "CloseIgnored"),
        vec![("LIF-003".to_owned(), "fail".to_owned())]
    );
    assert!(kills(&report, "ApplyDropsKwds").is_empty());
    assert_eq!(mutant(&report, "ApplyDropsKwds")["cases_run"], 2);
    assert!(
        stdout.contains("mutation score: 2/3 (66.7%) killed; 1 survived, 0 broken"),
        "{stdout}"
    );
    let md = std::fs::read_to_string(dir.path().join("report.md")).expect("report.md");
    assert!(md.starts_with("# Mutation score: 2/3 (66.7%)"), "{md}");
    assert!(md.contains("## Survivors"), "{md}");
    assert!(md.contains("| `ApplyDropsKwds` | arguments |"), "{md}");
}

#[test]
fn a_run_where_every_mutant_dies_passes_and_stops_at_the_first_kill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, stdout, report) = xtask(
        dir.path(),
        &[
            "--mutant",
            "JoinWhileRunning",
            "--case",
            "ORD-001",
            "--case",
            "LIF-003",
        ],
    );
    assert_eq!(code, Some(0), "{stdout}");
    assert_eq!(report["mode"], "first-kill");
    // Its try_first list puts LIF-003 first, which kills it: ORD-001 never runs.
    assert_eq!(
        kills(&report, "JoinWhileRunning"),
        vec![("LIF-003".to_owned(), "fail".to_owned())]
    );
    assert_eq!(mutant(&report, "JoinWhileRunning")["cases_run"], 1);
}

#[test]
fn an_unknown_mutant_is_refused_with_the_known_names() {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["mutants", "--mutant", "NoSuchMutant"])
        .output()
        .expect("running xtask");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no mutant `NoSuchMutant`"), "{stderr}");
    assert!(stderr.contains("MapReversed"), "{stderr}");
}

#[test]
fn the_manifest_holds_at_least_fifty_documented_mutants() {
    let python = conformance::implementations::find_python().expect("python3");
    let script = conformance::workspace_root().join("fixtures/mutants/poolspec_mutants.py");
    let output = Command::new(python)
        .arg(&script)
        .arg("--manifest")
        .output()
        .expect("running the manifest");
    assert!(output.status.success(), "{output:?}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the manifest is JSON");
    let themes = manifest["themes"].as_object().expect("themes");
    let mutants = manifest["mutants"].as_array().expect("mutants");
    assert!(mutants.len() >= 50, "only {} mutants", mutants.len());
    let mut names = std::collections::BTreeSet::new();
    for m in mutants {
        let name = m["name"].as_str().expect("name");
        assert!(names.insert(name), "{name} twice");
        assert!(
            themes.contains_key(m["theme"].as_str().expect("theme")),
            "{m}"
        );
        for field in ["doc", "observes"] {
            assert!(!m[field].as_str().expect(field).trim().is_empty(), "{m}");
        }
    }
    // Every theme has mutants.
    for theme in themes.keys() {
        assert!(
            mutants.iter().any(|m| m["theme"] == theme.as_str()),
            "{theme}"
        );
    }
}
