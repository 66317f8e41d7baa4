//! Default options from `$XDG_CONFIG_HOME/starling/pub` (and `sub`, `rr`), or
//! `~/.config/starling/...` when `XDG_CONFIG_HOME` is not set, read the way
//! Mosquitto reads `$XDG_CONFIG_HOME/mosquitto_pub`:
//!
//! - one option per line, read before the command line, so that the command line
//!   adds to it or overrides it as a later option would;
//! - a line starting with `#` is a comment; trailing CR and LF are removed;
//! - the line is split at its first run of spaces into the option and its value,
//!   and the value is the whole rest of the line, spaces included (`-m hello
//!   world` publishes "hello world"); each line is read on its own, so an option
//!   cannot take its value from the next line.
//!
//! A missing or unreadable file is not an error, as in Mosquitto. Unlike
//! Mosquitto, lines are not cut at 1,023 bytes.

use std::path::PathBuf;

use super::args::Tool;

/// Where `tool`'s defaults file is, if there is a place for one.
pub(crate) fn path(tool: Tool) -> Option<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    let base = match var("XDG_CONFIG_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(var("HOME")?).join(".config"),
    };
    Some(base.join("starling").join(tool.name()))
}

/// The argument chunks of `tool`'s defaults file: one per option line.
pub(crate) fn read(tool: Tool) -> Vec<Vec<Vec<u8>>> {
    path(tool)
        .and_then(|path| std::fs::read(path).ok())
        .map(|text| chunks(&text))
        .unwrap_or_default()
}

/// Splits a defaults file into one argument chunk per option line.
pub(crate) fn chunks(text: &[u8]) -> Vec<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for mut line in text.split(|&b| b == b'\n') {
        if line.first() == Some(&b'#') {
            continue;
        }
        while let Some(rest) = line
            .strip_suffix(b"\r")
            .or_else(|| line.strip_suffix(b"\n"))
        {
            line = rest;
        }
        // strtok(line, " "): skip leading spaces, the option runs to the next space;
        // strtok(NULL, ""): the rest after that one space, if anything is left.
        let start = line.iter().position(|&b| b != b' ');
        let Some(start) = start else { continue };
        let line = &line[start..];
        let mut chunk = Vec::new();
        match line.iter().position(|&b| b == b' ') {
            Some(space) => {
                chunk.push(line[..space].to_vec());
                let rest = &line[space + 1..];
                if !rest.is_empty() {
                    chunk.push(rest.to_vec());
                }
            }
            None => chunk.push(line.to_vec()),
        }
        out.push(chunk);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(chunks: Vec<Vec<Vec<u8>>>) -> Vec<Vec<String>> {
        chunks
            .into_iter()
            .map(|c| {
                c.into_iter()
                    .map(|a| String::from_utf8(a).unwrap())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn lines_split_like_mosquitto() {
        let text = b"# comment\n-p 18840\n-d\n-m hello world  \r\n\n -i  spaced\n-r \n   \n";
        assert_eq!(
            strings(chunks(text)),
            [
                vec!["-p", "18840"],
                vec!["-d"],
                vec!["-m", "hello world  "],
                vec!["-i", " spaced"],
                vec!["-r"],
            ]
        );
    }
}
