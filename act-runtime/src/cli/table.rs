//! Tables for a person: ASCII borders, as wide as their content (the same on a terminal
//! and in a pipe).

use comfy_table::presets::ASCII_FULL_CONDENSED;

/// A table with a header row.
pub(crate) struct Table(comfy_table::Table);

impl Table {
    pub(crate) fn new<const N: usize>(header: [&str; N]) -> Self {
        let mut t = comfy_table::Table::new();
        t.load_style(ASCII_FULL_CONDENSED)
            .set_header(header.to_vec());
        Self(t)
    }

    pub(crate) fn row<const N: usize>(&mut self, cells: [String; N]) {
        self.0.add_row(cells.to_vec());
    }

    /// The table, with a final newline.
    pub(crate) fn render(&self) -> String {
        let mut s = self.0.to_string();
        s.push('\n');
        s
    }
}

/// `text` on one line (line breaks and other control characters become spaces), cut to at
/// most `max` characters, the last one `…` when cut.
pub(crate) fn clip(text: &str, max: usize) -> String {
    let flat = text.chars().map(|c| if c.is_control() { ' ' } else { c });
    if text.chars().count() <= max {
        return flat.collect();
    }
    let mut s: String = flat.take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use super::{Table, clip};

    #[test]
    fn clip_cuts_long_text_and_flattens_lines() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("a\nb", 10), "a b");
        assert_eq!(clip("0123456789abc", 5), "0123…");
        assert_eq!(clip("ééééé", 5), "ééééé");
    }

    #[test]
    fn a_table_has_its_header_and_rows() {
        let mut t = Table::new(["A", "B"]);
        t.row(["1".to_owned(), "two".to_owned()]);
        assert_eq!(
            t.render(),
            "+---+-----+\n| A | B   |\n+=========+\n| 1 | two |\n+---+-----+\n"
        );
    }
}
