//! `cargo xtask conformance lint` as a test, so a dangling reference, a stale schema or a
//! stale CLAIMS.md cannot land.

#[test]
fn the_spec_and_fixtures_are_consistent() {
    let (suite, problems) = conformance::lint::lint(&conformance::workspace_root());
    assert!(!suite.cases.is_empty(), "no cases loaded");
    assert!(
        problems.is_empty(),
        "lint problems:\n{}",
        problems.join("\n")
    );
}
