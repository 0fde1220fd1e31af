//! `cargo xtask conformance smoke --impl SPEC`: a first check of a new driver's protocol,
//! explained in plain words (see `conformance::smoke`). Its flags are its own: `conformance`'s
//! matrix flags do not reach it.
//!
//! A smoke case that fails where the implementation's expectation file (found by the name its
//! hello gives) says it fails is the pool's known divergence, not a protocol mistake: it is
//! reported as ok, with the entry's reason (multiprocess-pool loses a task exception's type
//! in ERR-001). Every other problem stays one.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;
use conformance::expectations::ExpectationFile;
use conformance::implementations::{self, file_stem};
use conformance::smoke::{
    Entry, Mistake, SMOKE_CASES, SmokeOptions, SmokeReport, smoke, smoke_cases,
};
use conformance::spec::load_dir;
use conformance::verdict::Status;

#[derive(Args, Debug)]
pub struct SmokeArgs {
    /// The driver to check (repeatable), as for `conformance --impl`: typically
    /// `exec:./my-driver ARGS`, or `python:MODULE:ATTR`, or a built-in name.
    #[arg(long = "impl", value_name = "SPEC")]
    pub impls: Vec<String>,
    /// Scale the liveness guards (20 s for the handshake and for each case).
    #[arg(long)]
    pub timeout_multiplier: Option<f64>,
    /// The Python interpreter for `python:` implementations (default: $POOLSPEC_PYTHON,
    /// else python3 on PATH).
    #[arg(long)]
    pub python: Option<PathBuf>,
}

/// Runs the smoke check on each named implementation.
pub fn run(root: &Path, args: &SmokeArgs) -> Result<ExitCode> {
    let specs = &args.impls;
    if specs.is_empty() {
        bail!("name the driver to check: `cargo xtask conformance smoke --impl exec:./my-driver`");
    }
    let python = match &args.python {
        Some(p) => p.clone(),
        None => implementations::find_python()?,
    };
    let rust_ref = if specs.iter().any(|s| s == "rust-ref") {
        Some(implementations::build_rust_ref(root)?)
    } else {
        None
    };
    let builtin = implementations::builtin(root, &python, rust_ref.as_deref());
    let selected = implementations::select(builtin, specs, root, &python)?;
    let suite = load_dir(&root.join("spec"));
    let cases = smoke_cases(&suite.cases).map_err(anyhow::Error::msg)?;
    let options = SmokeOptions {
        timeout_multiplier: args.timeout_multiplier.unwrap_or(1.0),
    };
    eprintln!(
        "poolspec smoke: {} on {} implementation{}",
        SMOKE_CASES.join(", "),
        selected.len(),
        if selected.len() == 1 { "" } else { "s" }
    );
    let mut failed = false;
    for (i, imp) in selected.iter().enumerate() {
        if i > 0 {
            println!();
        }
        let mut report = smoke(imp, &cases, &options);
        if let Some(info) = &report.info {
            let ids: Vec<&str> = suite.cases.iter().map(|c| c.id()).collect();
            let dir = root.join("fixtures/expectations");
            let name = info.name.clone();
            if let Ok(file) = ExpectationFile::load_for(&dir, &name, &ids) {
                let shown = format!("fixtures/expectations/{}.yaml", file_stem(&name));
                honour_expectations(&mut report, &file, &shown);
            }
        }
        print!("{}", report.render());
        failed |= !report.passed();
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Turns each failed smoke case that `file` (shown as `shown`) expects to fail into an ok line
/// with the entry's reason; protocol mistakes, and failures nobody expects, stay problems.
fn honour_expectations(report: &mut SmokeReport, file: &ExpectationFile, shown: &str) {
    for entry in &mut report.entries {
        let Entry::Problem(finding) = entry else {
            continue;
        };
        if finding.mistake != Mistake::CaseFailed {
            continue;
        }
        let Some(case) = finding.case.clone() else {
            continue;
        };
        if let Some(expected) = file.expected(&case)
            && expected.status == Status::Fail
        {
            *entry = Entry::Ok {
                check: case,
                note: format!("expected fail, as {shown} says: {}", expected.reason),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use conformance::expectations::Expected;
    use conformance::smoke::Finding;

    fn problem(mistake: Mistake, case: &str) -> Entry {
        Entry::Problem(Finding {
            mistake,
            case: Some(case.into()),
            explanation: "it failed".into(),
            details: Vec::new(),
        })
    }

    #[test]
    fn only_a_case_failure_the_expectation_file_expects_becomes_ok() {
        let mut report = SmokeReport {
            implementation: "exec:my-driver".into(),
            info: None,
            capabilities: Vec::new(),
            entries: vec![
                problem(Mistake::CaseFailed, "ERR-001"),
                problem(Mistake::CaseFailed, "BLK-001"),
                problem(Mistake::StepNotReported, "ORD-009"),
            ],
            guard_ms: 20_000,
        };
        let mut file = ExpectationFile {
            implementation: "my-pool".into(),
            ..ExpectationFile::default()
        };
        for case in ["ERR-001", "ORD-009"] {
            file.cases.insert(
                case.into(),
                Expected {
                    status: Status::Fail,
                    reason: "the pool loses the type".into(),
                },
            );
        }
        honour_expectations(&mut report, &file, "fixtures/expectations/my-pool.yaml");
        let problems: Vec<(Mistake, Option<&str>)> = report
            .problems()
            .map(|f| (f.mistake, f.case.as_deref()))
            .collect();
        assert_eq!(
            problems,
            [
                (Mistake::CaseFailed, Some("BLK-001")),
                (Mistake::StepNotReported, Some("ORD-009"))
            ]
        );
        assert!(matches!(
            &report.entries[0],
            Entry::Ok { check, note } if check == "ERR-001"
                && note == "expected fail, as fixtures/expectations/my-pool.yaml says: the pool loses the type"
        ));
    }
}
