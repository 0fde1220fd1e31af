//! Ctrl-C and SIGTERM during `cargo xtask conformance`: the first cancels the run (no new
//! cell, the drivers in flight killed, what finished written as an interrupted report); a
//! second exits at once with status 130, without writing.
//!
//! signal-hook's iterator runs the reaction on a plain thread of ours, so nothing but a
//! write to a pipe happens in the signal handler, and it tells SIGINT from SIGTERM, which the
//! report names (ctrlc's termination feature folds them into one callback). It is already in
//! the dependency tree (duct's child reaping uses it), and it needs no unsafe code of ours.
//! The handler stays installed until the process exits: signal-hook cannot give SIGINT its
//! default action back, so a watch that ended would leave Ctrl-C ignored.

use anyhow::{Context, Result};
use conformance::cancel::Cancel;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use signal_hook::low_level::signal_name;

/// The exit status of an interrupted run, as a shell reports a command ended by Ctrl-C
/// (128 + SIGINT's number); SIGTERM ends it the same way, the report naming which came.
pub const INTERRUPTED_STATUS: u8 = 130;

/// From now until the process exits, SIGINT and SIGTERM cancel `cancel` once, then exit.
pub fn watch(cancel: Cancel) -> Result<()> {
    let mut signals =
        Signals::new([SIGINT, SIGTERM]).context("installing the SIGINT and SIGTERM handlers")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let name = signal_name(signal).unwrap_or("a signal");
                if cancel.is_cancelled() {
                    eprintln!("\npoolspec: {name} again: exiting now; no report written");
                    std::process::exit(i32::from(INTERRUPTED_STATUS));
                }
                eprintln!(
                    "\npoolspec: {name}: stopping; the drivers are killed and what finished is \
                     reported (send it again to exit at once)"
                );
                cancel.cancel(name);
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}
