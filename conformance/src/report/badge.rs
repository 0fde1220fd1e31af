//! `cargo xtask conformance badge`: one SVG badge per implementation of a report, in the
//! shape of shields.io's flat style ("poolspec cpython-fork | contract 110/112 · quirk
//! 20/24"), coloured by contract compliance. Made here, without the network: the text's width
//! comes from a table of Verdana's advance widths at 11 px (approximate, as a browser's
//! font may differ a little; shields does the same with its own table).

use std::fmt::Write as _;

use super::model::Compliance;

/// A badge: a grey label and a coloured message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Badge {
    pub label: String,
    pub message: String,
    /// A CSS colour (`#4c1`).
    pub color: &'static str,
}

impl Badge {
    /// The badge of one implementation's compliance.
    pub fn of(implementation: &str, compliance: Compliance) -> Badge {
        let (contract, quirk) = (compliance.contract, compliance.quirk);
        let mut message = format!("contract {}/{}", contract.passed, contract.cases);
        if quirk.cases > 0 {
            let _ = write!(message, " · quirk {}/{}", quirk.passed, quirk.cases);
        }
        Badge {
            label: format!("poolspec {implementation}"),
            message,
            color: if contract.cases == 0 {
                "#9f9f9f"
            } else {
                color(contract.percent())
            },
        }
    }

    /// The badge as a standalone SVG document.
    pub fn svg(&self) -> String {
        let (label_w, message_w) = (width(&self.label), width(&self.message));
        let total = label_w + message_w;
        let (label, message) = (escape(&self.label), escape(&self.message));
        let title = format!("{label}: {message}");
        let mut out = String::new();
        let _ = writeln!(
            out,
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" aria-label="{title}">
<title>{title}</title>
<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>
<clipPath id="r"><rect width="{total}" height="20" rx="3" fill="#fff"/></clipPath>
<g clip-path="url(#r)"><rect width="{label_w}" height="20" fill="#555"/><rect x="{label_w}" width="{message_w}" height="20" fill="{color}"/><rect width="{total}" height="20" fill="url(#s)"/></g>
<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" text-rendering="geometricPrecision" font-size="110">"##,
            color = self.color,
        );
        // Text in tenths (scale .1), as shields draws it, for sub-pixel placement.
        for (x, w, text) in [
            (label_w * 5, label_w - 10, &label),
            (label_w * 10 + message_w * 5, message_w - 10, &message),
        ] {
            let _ = writeln!(
                out,
                r##"<text aria-hidden="true" x="{x}" y="150" fill="#010101" fill-opacity=".3" transform="scale(.1)" textLength="{tl}">{text}</text><text x="{x}" y="140" transform="scale(.1)" fill="#fff" textLength="{tl}">{text}</text>"##,
                tl = w * 10,
            );
        }
        out.push_str("</g>\n</svg>\n");
        out
    }
}

/// The file a badge is written to: the implementation's name, made safe as a file name.
pub fn file_name(implementation: &str) -> String {
    let safe: String = implementation
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{}.svg", safe.trim_start_matches('.'))
}

/// shields' colour scale, by the percentage of contract cases passed.
fn color(percent: usize) -> &'static str {
    match percent {
        100.. => "#4c1",
        95.. => "#97ca00",
        90.. => "#a4a61d",
        75.. => "#dfb317",
        50.. => "#fe7d37",
        _ => "#e05d44",
    }
}

/// A part's width in pixels: the text's, plus 5 px of padding on each side.
fn width(text: &str) -> u32 {
    let text: f64 = text.chars().map(advance).sum();
    text.round() as u32 + 10
}

/// Verdana's advance width at 11 px, approximately (within a few tenths of a pixel).
fn advance(c: char) -> f64 {
    match c {
        'i' | 'l' => 3.05,
        'j' => 3.3,
        'f' | ' ' => 3.87,
        't' => 4.33,
        'r' => 4.71,
        'c' | 's' | 'z' => 5.73,
        'e' | 'k' | 'v' | 'x' | 'y' => 6.45,
        'a' | 'o' => 6.66,
        'b' | 'd' | 'g' | 'h' | 'n' | 'p' | 'q' | 'u' => 6.9,
        'w' => 8.98,
        'm' => 10.7,
        '0'..='9' | '_' | '#' | '$' => 7.0,
        '.' | ',' | '·' | ':' | ';' => 4.0,
        '-' => 4.99,
        '/' | '\\' => 4.93,
        '(' | ')' | '[' | ']' => 4.55,
        'I' => 4.62,
        'J' => 5.0,
        'M' => 8.68,
        'W' => 10.2,
        'A'..='Z' => 7.53,
        _ => 7.0,
    }
}

/// Text escaped for XML content and attributes.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::Part;

    fn compliance(contract: (usize, usize), quirk: (usize, usize)) -> Compliance {
        let part = |(passed, cases)| Part { passed, cases };
        Compliance {
            contract: part(contract),
            quirk: part(quirk),
        }
    }

    #[test]
    fn a_badge() {
        let badge = Badge::of("cpython-threadpool", compliance((104, 112), (20, 24)));
        assert_eq!(badge.message, "contract 104/112 · quirk 20/24");
        assert_eq!(badge.color, "#a4a61d");
        insta::assert_snapshot!(badge.svg());
    }

    #[test]
    fn colours_and_messages() {
        let of = |c, q| Badge::of("x", compliance(c, q));
        assert_eq!(of((112, 112), (0, 0)).color, "#4c1");
        assert_eq!(of((112, 112), (0, 0)).message, "contract 112/112");
        assert_eq!(of((107, 112), (1, 2)).color, "#97ca00");
        assert_eq!(of((10, 112), (1, 2)).color, "#e05d44");
        assert_eq!(of((0, 0), (0, 0)).color, "#9f9f9f");
    }

    #[test]
    fn the_svg_is_well_formed_xml_with_its_text_escaped() {
        let svg = Badge::of("exec:<a&b>\"'", compliance((1, 2), (0, 0))).svg();
        assert!(
            svg.contains("poolspec exec:&lt;a&amp;b&gt;&quot;&apos;"),
            "{svg}"
        );
        // Balanced: every element opened is closed, and no raw `&` or `<` in text.
        let opened = svg.matches('<').count();
        assert_eq!(opened, svg.matches('>').count(), "{svg}");
        for tag in ["svg", "g", "text", "title", "linearGradient", "clipPath"] {
            assert_eq!(
                svg.matches(&format!("<{tag}")).count(),
                svg.matches(&format!("</{tag}>")).count(),
                "{tag}"
            );
        }
        for piece in svg.split('&').skip(1) {
            assert!(
                ["amp;", "lt;", "gt;", "quot;", "apos;"]
                    .iter()
                    .any(|e| piece.starts_with(e)),
                "{piece}"
            );
        }
    }

    #[test]
    fn wider_text_makes_a_wider_badge_and_names_are_safe_files() {
        assert!(width("contract 112/112") > width("contract 1/2"));
        assert_eq!(width(""), 10);
        assert_eq!(file_name("cpython-3.11-fork"), "cpython-3.11-fork.svg");
        assert_eq!(file_name("../etc/x"), "_etc_x.svg");
        assert_eq!(file_name("exec:a b"), "exec_a_b.svg");
    }
}
