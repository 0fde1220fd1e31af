//! The Markdown view of a comparison, for a pull-request comment: a summary line, a table of
//! the regressions, and every group's changes in a `<details>` block.
//!
//! GitHub refuses a comment over 65,536 characters, so the text is budgeted: the table holds
//! at most [`TABLE_ROWS`] rows (its last says how many more are below), and once the next
//! change or added name would not fit (with room kept for closing what is open), it is left
//! out and the end says how many were.

use std::fmt::Write as _;

use super::{Change, Comparison, Group, Membership};

/// GitHub's limit on a comment's body, in characters.
pub const COMMENT_LIMIT: usize = 65_536;
/// Kept free for closing tags and the "N more not shown" line.
const RESERVE: usize = 1_024;
/// The regressions' table lists at most this many (and uses at most half the budget); the
/// details below list every one that fits.
const TABLE_ROWS: usize = 50;

/// Text that stops growing at a budget and counts what it left out.
struct Budgeted {
    out: String,
    limit: usize,
    left_out: usize,
}

impl Budgeted {
    /// Appends `piece` when it fits; else counts it as left out.
    fn push(&mut self, piece: &str) -> bool {
        // Bytes: never fewer than characters, so the budget holds for any text.
        let fits = self.out.len() + piece.len() + RESERVE <= self.limit;
        if fits {
            self.out.push_str(piece);
        } else {
            self.left_out += 1;
        }
        fits
    }

    /// Appends what must be there (headings, closing tags): the reserve pays for it.
    fn always(&mut self, piece: &str) {
        self.out.push_str(piece);
    }
}

/// The comparison as a Markdown comment of at most [`COMMENT_LIMIT`] characters.
pub fn render(c: &Comparison) -> String {
    render_within(c, COMMENT_LIMIT)
}

/// [`render`] within `limit` characters (tests use a small one).
pub fn render_within(c: &Comparison, limit: usize) -> String {
    let mut b = Budgeted {
        out: String::new(),
        limit,
        left_out: 0,
    };
    b.always("### poolspec diff\n\n");
    let summary = if c.regressed() {
        format!("**{}**", c.summary())
    } else {
        c.summary()
    };
    let _ = writeln!(
        b.out,
        "{summary}: `{}` (suite `{}`, {} cells) → `{}` (suite `{}`, {} cells)\n",
        code(&c.old.path),
        c.old.suite_hash,
        c.old.cells,
        code(&c.new.path),
        c.new.suite_hash,
        c.new.cells
    );
    for (label, run) in [("old", &c.old), ("new", &c.new)] {
        if let Some(why) = &run.interrupted {
            let _ = writeln!(b.out, "> The {label} report was {why}.\n");
        }
    }
    if c.regressed() {
        b.always("| case | implementation | old | new |\n|---|---|---|---|\n");
        let mut rows = 0;
        for change in c.of(Group::Regression).take(TABLE_ROWS) {
            let row = format!(
                "| {} | {} | {} | {} |\n",
                cell(&change.case),
                cell(&change.implementation),
                cell(&state(change, true)),
                cell(&state(change, false))
            );
            // The table only summarizes the details below: what does not fit is not counted.
            if b.out.len() + row.len() + RESERVE > b.limit / 2 {
                break;
            }
            b.always(&row);
            rows += 1;
        }
        let more = c.count(Group::Regression) - rows;
        if more > 0 {
            b.always(&format!("| … {more} more below | | | |\n"));
        }
        b.always("\n");
    }
    for group in Group::ALL {
        let n = c.count(group);
        if n == 0 {
            continue;
        }
        b.always(&format!(
            "<details><summary>{} ({n})</summary>\n\n",
            group.title()
        ));
        for change in c.of(group) {
            b.push(&detail(change));
        }
        b.always("</details>\n\n");
    }
    membership(&mut b, "Added", &c.added);
    membership(&mut b, "Removed", &c.removed);
    if b.left_out > 0 {
        let _ = writeln!(
            b.out,
            "_{} more not shown (the comment's size limit); run `cargo xtask conformance diff` \
             for all of it._",
            b.left_out
        );
    }
    b.out
}

/// One side's state of a change, for the table.
fn state(change: &Change, old: bool) -> String {
    let s = if old { &change.old } else { &change.new };
    s.as_ref()
        .map_or_else(|| "(none)".into(), super::State::describe)
}

/// One change in full: the transition, the reason and the diff in a fence.
fn detail(change: &Change) -> String {
    let mut out = format!(
        "- **{}** on `{}`: {}\n",
        html(&change.case),
        code(&change.implementation),
        html(&change.transition())
    );
    if let Some(reason) = change.reason() {
        let _ = writeln!(out, "  {}", html(&reason.replace('\n', " ")));
    }
    if let Some(diff) = &change.observation_diff {
        let fence = fence_for(diff);
        let _ = writeln!(out, "\n  {fence}diff");
        for line in diff.lines() {
            let _ = writeln!(out, "  {line}");
        }
        let _ = writeln!(out, "  {fence}");
    }
    out
}

fn membership(b: &mut Budgeted, how: &str, m: &Membership) {
    if m.is_empty() {
        return;
    }
    b.always(&format!("<details><summary>{how}</summary>\n\n"));
    let cells = |n: usize| format!("{n} cell{}", if n == 1 { "" } else { "s" });
    for (name, n) in &m.implementations {
        b.push(&format!(
            "- implementation `{}` ({})\n",
            code(name),
            cells(*n)
        ));
    }
    for (name, n) in &m.cases {
        b.push(&format!("- case {} ({})\n", html(name), cells(*n)));
    }
    b.always("\n</details>\n\n");
}

/// A fence longer than any run of backticks in `text`.
fn fence_for(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

/// Text outside code: HTML's special characters escaped.
fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Text in a table cell: also no `|` and no line break.
fn cell(s: &str) -> String {
    html(s).replace('|', "\\|").replace('\n', " ")
}

/// Text inside single backticks (a path, a name): none of its own.
fn code(s: &str) -> String {
    s.replace('`', "'")
}
