//! `cargo xtask bench --quick --no-cpython-tests` end to end on two cases and two
//! implementations: the table, the floor and the profile are there, and `--json` holds the
//! same run. Only the output's structure is checked, never a timing.

use std::process::Command;

#[test]
fn quick_bench_prints_every_table_and_writes_its_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("bench.json");
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["bench", "--quick", "--no-cpython-tests", "--profile"])
        .args(["--case", "ORD-004", "--case", "LIF-015"])
        .args(["--impl", "cpython-fork", "--impl", "rust-ref"])
        .arg("--json")
        .arg(&json)
        .output()
        .expect("running xtask");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("bench: 2 cases, median of 1 round, "),
        "{stdout}"
    );
    assert!(lines[1].contains("implementation") && lines[1].contains("÷floor"));
    for (i, name) in ["cpython-fork", "rust-ref", "all together"]
        .iter()
        .enumerate()
    {
        assert!(lines[2 + i].trim_start().starts_with(name), "{stdout}");
    }
    assert!(lines[5].starts_with("floor: "), "{stdout}");
    assert!(stdout.contains("pool_floor.py"), "{stdout}");
    assert!(stdout.contains("its pool start + teardown"), "{stdout}");
    assert!(!stdout.contains("CPython's Pool tests"), "{stdout}");
    assert!(stdout.contains("\nprofile: "), "{stdout}");
    assert!(stdout.contains("teardown") && stdout.contains("idle slot s"));

    let text = std::fs::read_to_string(&json).expect("the --json file");
    let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(value["cases"], 2);
    assert_eq!(value["rounds"], 1);
    let impls = value["implementations"]
        .as_array()
        .expect("implementations");
    assert_eq!(impls.len(), 2);
    for imp in impls {
        assert!(imp["alone"]["wall_s"].is_number(), "{imp}");
        assert_eq!(imp["floor"]["pools"], 2, "{imp}");
        assert_eq!(imp["profile"]["cells"], 2, "{imp}");
    }
    assert!(value["together"]["user_s"].is_number());
    assert!(value.get("cpython_tests").is_none());
}
