//! Checks of the Python driver SDK that need no runner: each is a script under
//! `fixtures/drivers/checks/` that exits non-zero on failure.

use conformance::implementations::find_python;
use conformance::workspace_root;

fn run_check(script: &str) {
    let python = find_python().expect("python3");
    let path = workspace_root()
        .join("fixtures/drivers/checks")
        .join(script);
    let out = std::process::Command::new(python)
        .arg(&path)
        .output()
        .expect("running python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{} failed ({}):\n{stdout}{}",
        path.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("FAILED"), "{stdout}");
}

/// The teardown's workaround for CPython's terminate() hang (docs/fuzzing.md, finding 1)
/// releases only a lock orphaned by a dead worker.
#[test]
fn the_teardown_releases_only_an_orphaned_result_lock() {
    run_check("orphaned_lock.py");
}

/// A Pool-like class's extensions are found by reflection: its own constructor arguments and
/// methods, nothing of Pool's.
#[test]
fn extensions_are_discovered_from_the_class() {
    run_check("extensions.py");
}

/// `drop` waits for the pool's own threads to let go of it (CPython's result handler holds
/// it a moment after waking get()), so the pool's warning is recorded, not lost.
#[test]
fn drop_waits_for_the_pool_to_be_let_go() {
    run_check("drop_settles.py");
}

/// A pool's own TimeoutError and MaybeEncodingError (billiard's are classes of their own) are
/// a timeout and a serialization error, as multiprocessing's are.
#[test]
fn a_pools_own_exception_classes_have_their_neutral_kind() {
    run_check("neutral_kinds.py");
}
