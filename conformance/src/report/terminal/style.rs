//! Colour for the terminal: whether to use it (the usual conventions, as a pure function) and
//! the few ANSI codes the views use. Colour only marks labels and headings; with it off every
//! view is plain text that greps well.

use std::ffi::OsStr;

/// `--color`: what the user asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ColorChoice {
    /// Colour when stdout is a terminal, unless `NO_COLOR` or `CLICOLOR_FORCE` say otherwise.
    #[default]
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether to colour: an explicit `always`/`never` wins; in `auto`, `NO_COLOR` set and
    /// non-empty means never, else `CLICOLOR_FORCE` set and not `0` means always, else colour
    /// exactly when stdout is a terminal.
    pub fn wanted(
        self,
        no_color: Option<&OsStr>,
        clicolor_force: Option<&OsStr>,
        stdout_is_terminal: bool,
    ) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto if no_color.is_some_and(|v| !v.is_empty()) => false,
            ColorChoice::Auto if clicolor_force.is_some_and(|v| !v.is_empty() && v != "0") => true,
            ColorChoice::Auto => stdout_is_terminal,
        }
    }
}

/// Paints text, or leaves it alone when colour is off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\u{1b}[{code}m{text}\u{1b}[0m")
        } else {
            text.to_owned()
        }
    }

    /// A section heading (bold).
    pub fn heading(self, text: &str) -> String {
        self.paint("1", text)
    }

    /// Something that fails the run (bold red).
    pub fn bad(self, text: &str) -> String {
        self.paint("1;31", text)
    }

    /// Something as it should be (green).
    pub fn good(self, text: &str) -> String {
        self.paint("32", text)
    }

    /// A known divergence, not a failure (yellow).
    pub fn known(self, text: &str) -> String {
        self.paint("33", text)
    }

    /// Secondary text: paths, hints (dim).
    pub fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_conventions_decide_colour() {
        let os = |s: &'static str| Some(OsStr::new(s));
        use ColorChoice::*;
        // Explicit choices win over the environment.
        assert!(Always.wanted(os("1"), None, false));
        assert!(!Never.wanted(None, os("1"), true));
        // auto: NO_COLOR (non-empty) first, then CLICOLOR_FORCE (not 0), then the terminal.
        assert!(!Auto.wanted(os("1"), os("1"), true));
        assert!(Auto.wanted(os(""), None, true));
        assert!(Auto.wanted(None, os("1"), false));
        assert!(!Auto.wanted(None, os("0"), false));
        assert!(!Auto.wanted(None, os(""), false));
        assert!(Auto.wanted(None, None, true));
        assert!(!Auto.wanted(None, None, false));
    }

    #[test]
    fn colour_off_leaves_text_alone() {
        let plain = Style { color: false };
        assert_eq!(plain.bad("FAIL"), "FAIL");
        let coloured = Style { color: true };
        assert_eq!(coloured.bad("FAIL"), "\u{1b}[1;31mFAIL\u{1b}[0m");
    }
}
