//! `cargo xtask conformance smoke --impl SPEC`: a first check of a new driver's protocol,
//! explained in plain words (see `conformance::smoke`). Its flags are its own: `conformance`'s
//! matrix flags do not reach it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;
use conformance::implementations;
use conformance::smoke::{SMOKE_CASES, SmokeOptions, smoke, smoke_cases};
use conformance::spec::load_dir;

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
        let report = smoke(imp, &cases, &options);
        print!("{}", report.render());
        failed |= !report.passed();
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
