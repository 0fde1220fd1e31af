//! One cell's detail, as a person reads it: its label, why it is not a pass, what the
//! expectation file says, its observation diff against the oracle, and where its history
//! is. `explain` shows it under each implementation; the terminal view shows the same
//! (`terminal::listing::detail`).

use super::model::Cell;

/// The lines of a cell's detail after its heading, without indentation: `why: ...`,
/// `expected fail: ...`, `unstable: ...`, the diff's lines, `history: PATH`.
pub fn lines(cell: &Cell<'_>) -> Vec<String> {
    let r = cell.result;
    let mut out = Vec::new();
    if let Some(reason) = &r.reason {
        out.push(format!("why: {reason}"));
    }
    if let Some(e) = &r.expected {
        out.push(format!("expected {}: {}", e.status.as_str(), e.reason));
    }
    if let Some(u) = &r.unstable {
        out.push(format!("unstable: {u}"));
    }
    out.extend(
        cell.diff()
            .into_iter()
            .flat_map(str::lines)
            .map(str::to_owned),
    );
    if let Some(h) = &r.history {
        out.push(format!("history: {}", h.display()));
    }
    out
}
