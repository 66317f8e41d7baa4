//! `docs/configuration.md` checked against the parsers, so that the two
//! cannot drift apart: every mosquitto.conf directive the parser reads (its
//! match arms, read from its source, and its tables) has a row, and every row
//! names a directive the parser reads; every TOML key the TOML parser reads
//! (as serde lists them) is in a row, and every key in a row is read; the rows
//! of directives not supported yet say so (the `LATER` list shrinks as they
//! are implemented: their rows change with them); the rows reloaded on SIGHUP
//! are exactly [`super::RELOADED`].

use std::collections::BTreeSet;

use super::mosquitto::lists::{BRIDGE, LATER, LATER_PREFIXES, OBSOLETE};
use super::mosquitto::parse_mosquitto;
use super::tests::Scratch;
use super::toml::parse_toml;
use super::{listener, security, RELOADED};

const REFERENCE: &str = include_str!("../../../../docs/configuration.md");
const MOSQUITTO_PARSER: &str = include_str!("mosquitto.rs");

/// One row of a directive table.
struct Row {
    line: usize,
    directives: Vec<String>,
    keys: Vec<String>,
    reloaded: String,
    notes: String,
}

/// The `code` spans of a table cell.
fn code_spans(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The rows of the tables under `## Directives`: directive(s) | TOML key(s) |
/// default | SIGHUP | notes.
fn rows() -> Vec<Row> {
    let start = REFERENCE
        .find("\n## Directives")
        .expect("docs/configuration.md has a `## Directives` section");
    let first_line = REFERENCE[..start].lines().count() + 1;
    let mut rows = Vec::new();
    for (index, line) in REFERENCE[start..].lines().enumerate() {
        if !line.starts_with('|') || line.starts_with("|--") || line.starts_with("| mosquitto.conf")
        {
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").collect();
        assert_eq!(
            cells.len(),
            5,
            "docs/configuration.md:{}: a row has 5 cells: {line}",
            first_line + index
        );
        rows.push(Row {
            line: first_line + index,
            directives: code_spans(cells[0]),
            keys: code_spans(cells[1]),
            reloaded: cells[3].trim().to_string(),
            notes: cells[4].to_string(),
        });
    }
    rows
}

/// The directives of the match arms of `Parser::directive`, from its source.
fn match_arms() -> BTreeSet<String> {
    let body = MOSQUITTO_PARSER
        .split("    fn directive(")
        .nth(1)
        .expect("mosquitto.rs has fn directive")
        .split("\n    fn ")
        .next()
        .expect("fn directive has a body");
    let mut names = BTreeSet::new();
    for line in body.lines() {
        let line = line.trim_start();
        let line = line.strip_prefix("| ").unwrap_or(line);
        if !line.starts_with('"') {
            continue;
        }
        // A pattern: string literals of directive names joined by `|`,
        // before `=>` or continued on the next line.
        let patterns = line.split("=>").next().unwrap_or("").trim_end();
        let literals = code_spans(&patterns.replace('"', "`"));
        let is_name = |l: &String| {
            !l.is_empty()
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
        };
        let rebuilt = literals
            .iter()
            .map(|l| format!("\"{l}\""))
            .collect::<Vec<_>>()
            .join(" | ");
        let rebuilt_continued = format!("{rebuilt} |");
        if literals.iter().all(is_name) && (patterns == rebuilt || patterns == rebuilt_continued) {
            names.extend(literals);
        }
    }
    names
}

/// Every directive the mosquitto.conf parser reads (the plugin option
/// families as `auth_opt_*`, `plugin_opt_*`).
fn parser_directives() -> BTreeSet<String> {
    let mut names = match_arms();
    let tables = [
        listener::DIRECTIVES,
        security::DIRECTIVES,
        LATER,
        OBSOLETE,
        BRIDGE,
    ];
    names.extend(tables.iter().flat_map(|t| t.iter().map(|d| d.to_string())));
    names.extend(LATER_PREFIXES.iter().map(|p| format!("{p}*")));
    names
}

/// The keys the TOML parser reads in the table `prefix` (`""`: the top
/// level), from serde's own list in its unknown-field error.
fn toml_keys(prefix: &str, header: &str) -> Vec<String> {
    let scratch = Scratch::new("reference-toml");
    let path = scratch.write("starling.toml", &format!("{header}zz_unknown_key = 1\n"));
    let report = parse_toml(&path).expect_err("an unknown key is an error");
    let reason = &report.errors[0].reason;
    let expected = reason
        .split("expected one of ")
        .nth(1)
        .unwrap_or_else(|| panic!("serde lists the fields: {reason}"));
    code_spans(expected)
        .into_iter()
        .map(|key| format!("{prefix}{key}"))
        .collect()
}

fn parser_toml_keys() -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    keys.extend(toml_keys("", ""));
    keys.extend(toml_keys("listener.", "[[listener]]\nport = 1883\n"));
    keys.extend(toml_keys("log.", "[log]\n"));
    keys.extend(toml_keys("storage.", "[storage]\n"));
    // Tables, not keys: their rows name their keys.
    for table in ["listener", "log", "storage"] {
        keys.remove(table);
    }
    keys
}

fn difference(a: &BTreeSet<String>, b: &BTreeSet<String>) -> Vec<String> {
    a.difference(b).cloned().collect()
}

#[test]
fn every_directive_the_parser_reads_has_a_row_and_no_other() {
    let documented: BTreeSet<String> = rows().into_iter().flat_map(|r| r.directives).collect();
    let read = parser_directives();
    assert_eq!(
        difference(&read, &documented),
        Vec::<String>::new(),
        "directives mosquitto.rs reads that docs/configuration.md does not list"
    );
    assert_eq!(
        difference(&documented, &read),
        Vec::<String>::new(),
        "directives docs/configuration.md lists that mosquitto.rs does not read"
    );
}

/// What the source scan found is what the parser reads: none of them is an
/// unknown directive (a wrong value, a missing `connection` is fine).
#[test]
fn the_match_arms_read_from_the_source_are_directives() {
    let arms = match_arms();
    assert!(arms.len() > 30, "too few match arms found: {arms:?}");
    let scratch = Scratch::new("reference-arms");
    for name in arms {
        let path = scratch.write("mosquitto.conf", &format!("{name}\n"));
        if let Err(report) = parse_mosquitto(&path) {
            for error in report.errors {
                assert!(
                    !error.reason.starts_with("unknown directive"),
                    "{name}: {}",
                    error.reason
                );
            }
        }
    }
}

#[test]
fn every_toml_key_the_parser_reads_has_a_row_and_no_other() {
    let documented: BTreeSet<String> = rows().into_iter().flat_map(|r| r.keys).collect();
    let read = parser_toml_keys();
    assert_eq!(
        difference(&read, &documented),
        Vec::<String>::new(),
        "TOML keys toml.rs reads that docs/configuration.md does not list"
    );
    assert_eq!(
        difference(&documented, &read),
        Vec::<String>::new(),
        "TOML keys docs/configuration.md lists that toml.rs does not read"
    );
}

/// A directive on the `LATER` list is warned about and ignored: its row
/// says "not supported yet"; a row of implemented directives does not.
#[test]
fn rows_say_which_directives_are_not_supported_yet() {
    let later: BTreeSet<String> = LATER
        .iter()
        .map(|d| d.to_string())
        .chain(LATER_PREFIXES.iter().map(|p| format!("{p}*")))
        .collect();
    for row in rows() {
        let says_later = row.notes.to_lowercase().contains("not supported yet");
        for directive in &row.directives {
            let is_later = later.contains(directive);
            if is_later || !BRIDGE.contains(&directive.as_str()) && directive != "connection" {
                assert_eq!(
                    says_later,
                    is_later,
                    "docs/configuration.md:{}: `{directive}` is {}on the LATER list: its row must {}say \"not supported yet\"",
                    row.line,
                    if is_later { "" } else { "not " },
                    if is_later { "" } else { "not " },
                );
            }
        }
    }
}

#[test]
fn the_rows_reloaded_on_sighup_are_those_the_broker_reloads() {
    let documented: BTreeSet<String> = rows()
        .into_iter()
        .filter(|r| r.reloaded == "yes")
        .flat_map(|r| r.directives)
        .collect();
    let reloaded: BTreeSet<String> = RELOADED.iter().map(|d| d.to_string()).collect();
    assert_eq!(documented, reloaded);
}
