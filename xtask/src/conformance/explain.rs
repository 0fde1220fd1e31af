//! `cargo xtask conformance explain CASE [--impl NAME] [--run]`: one case in words and
//! each implementation's status, from the last report (`target/conformance/report.jsonl`,
//! or `--report FILE`) or, with `--run`, from a fresh run of that case alone. Rendering
//! lives in `conformance::report::explain`; this module finds the case, the statuses and the
//! CPython sources the citations link into.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, FromArgMatches};
use conformance::implementations;
use conformance::report::cite::SourceIndex;
use conformance::report::explain::{Explain, Statuses, find_case, render};
use conformance::report::{self, Model, OracleSnapshots};
use conformance::runner::{MatrixRun, RunOptions, run_matrix};
use conformance::spec::{LoadedCase, load_folders};

use super::select::{Prepared, Select, prepare};
use crate::flags::Guards;

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// The case's id (`BLK-002`).
    case: String,
    /// Only this implementation's status; with --run, run only it.
    #[arg(long = "impl", value_name = "NAME")]
    implementation: Option<String>,
    /// Run the case now (on --impl, or on every built-in implementation) and explain that
    /// run, instead of reading the last report.
    #[arg(long)]
    run: bool,
    /// Read the statuses from this report instead of target/conformance/report.jsonl.
    #[arg(long, value_name = "FILE", conflicts_with = "run")]
    report: Option<PathBuf>,
    /// Also load the cases of this folder, beside spec/ (repeatable), as the run does.
    #[arg(long, value_name = "DIR")]
    spec: Vec<PathBuf>,
    /// The Python interpreter (default: $POOLSPEC_PYTHON, else python3 on PATH): runs the
    /// case with --run, and its CPython sources give the citations' line numbers.
    #[arg(long)]
    python: Option<PathBuf>,
    #[command(flatten)]
    guards: Guards,
}

pub fn run(root: &Path, args: &ExplainArgs) -> Result<ExitCode> {
    let suite = load_folders(Some(&root.join("spec")), &args.spec)?;
    for e in &suite.errors {
        eprintln!("spec error: {e}");
    }
    let case = find_case(&suite.cases, &args.case)?;
    let sources = source_index(args.python.as_deref());
    let oracle = OracleSnapshots::committed(root);
    let only = args.implementation.as_deref();

    let text = if args.run {
        let (cases, run) = run_case(root, args, case)?;
        let model = Model::new(&run, &cases).oracle(&oracle);
        render(&Explain {
            case,
            root,
            sources: &sources,
            statuses: Statuses::From {
                model: &model,
                source: "this run".to_owned(),
            },
            only,
        })
    } else {
        let path = args
            .report
            .clone()
            .unwrap_or_else(|| root.join("target/conformance/report.jsonl"));
        let shown = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        match read_report(&path) {
            Ok(run) => {
                let model = Model::new(&run, &suite.cases).oracle(&oracle);
                render(&Explain {
                    case,
                    root,
                    sources: &sources,
                    statuses: Statuses::From {
                        model: &model,
                        source: shown,
                    },
                    only,
                })
            }
            Err(why) => render(&Explain {
                case,
                root,
                sources: &sources,
                statuses: Statuses::Missing(format!(
                    "{why} at {shown}; run `cargo xtask conformance`, or explain with --run"
                )),
                only,
            }),
        }
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// The run a report describes, or why there is none to read.
fn read_report(path: &Path) -> Result<MatrixRun, String> {
    let text = std::fs::read_to_string(path).map_err(|_| "no report yet".to_owned())?;
    let report = report::read(&text).map_err(|e| format!("an invalid report ({e})"))?;
    Ok(MatrixRun {
        implementations: report.header.implementations,
        results: report.records.into_iter().map(|r| r.result).collect(),
        wall: Duration::from_millis(report.footer.wall_ms),
    })
}

/// Runs `case` alone, selected as `cargo xtask conformance --case ID [--impl NAME]` would
/// select it, with histories under `target/conformance/explain/`.
fn run_case(
    root: &Path,
    args: &ExplainArgs,
    case: &LoadedCase,
) -> Result<(Vec<LoadedCase>, MatrixRun)> {
    let mut argv: Vec<String> = vec!["explain".into(), "--case".into(), case.id().into()];
    if let Some(i) = &args.implementation {
        argv.extend(["--impl".into(), i.clone()]);
    }
    if let Some(p) = &args.python {
        argv.extend(["--python".into(), p.display().to_string()]);
    }
    for s in &args.spec {
        argv.extend(["--spec".into(), s.display().to_string()]);
    }
    let command = <Select as Args>::augment_args(clap::Command::new("explain"));
    let matches = command
        .try_get_matches_from(argv)
        .context("selecting the case to run")?;
    let select = Select::from_arg_matches(&matches).context("selecting the case to run")?;
    let Prepared { cases, impls, .. } = prepare(root, &select)?;
    let cases: Vec<LoadedCase> = cases.into_iter().filter(|c| c.id() == case.id()).collect();
    let options = RunOptions {
        timeout_multiplier: args.guards.timeout_multiplier,
        history_dir: Some(root.join("target/conformance/explain/histories")),
        ..RunOptions::default()
    };
    eprintln!(
        "poolspec: running {} on {} implementation(s)",
        case.id(),
        impls.len()
    );
    let run = run_matrix(&cases, &impls, &options, &|r| {
        eprintln!(
            "poolspec: finished {} on {}: {}",
            r.case,
            r.implementation,
            r.status.as_str()
        )
    });
    Ok((cases, run))
}

/// Where the citations' functions are: the CPython sources of `python` (or the default
/// interpreter), linked at the tag of its version; file links on `main` without one.
fn source_index(python: Option<&Path>) -> SourceIndex {
    const PROBE: &str = "import os, platform, sys, multiprocessing.pool as p\n\
        print(sys.implementation.name)\nprint(platform.python_version())\nprint(p.__file__)\n\
        print(os.path.join(os.path.dirname(os.__file__), 'test', '_test_multiprocessing.py'))\n";
    let python = match python {
        Some(p) => p.to_path_buf(),
        None => match implementations::find_python() {
            Ok(p) => p,
            Err(_) => return SourceIndex::none(),
        },
    };
    let Ok(out) = Command::new(&python).args(["-c", PROBE]).output() else {
        return SourceIndex::none();
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    let [name, version, pool, test] = lines[..] else {
        return SourceIndex::none();
    };
    if !out.status.success() || name != "cpython" {
        return SourceIndex::none();
    }
    let pool = std::fs::read_to_string(pool).ok();
    let test = std::fs::read_to_string(test).ok();
    SourceIndex::new(&format!("v{version}"), pool.as_deref(), test.as_deref())
}
