//! Ordered output to stdout and stderr, as one stream of events.
//!
//! Mosquitto's clients print from inside libmosquitto's network loop, so a
//! debug line, the message it carries and the packet sent in answer appear in
//! the order they happened. Here the printing happens in the client's packet
//! observer, and one thing can be known only later: the PUBLISH that
//! `--remove-retained` sends is written (and its packet identifier known) after
//! the message that caused it. [`Console::hold`] keeps a place for that line;
//! what comes after waits until [`Console::release`] fills the place.

use std::collections::VecDeque;
use std::io::Write;

/// Something to print.
#[derive(Debug)]
enum Item {
    Out(Vec<u8>),
    Err(Vec<u8>),
    /// The place of a line not known yet.
    Hold,
}

/// The ordered output of one tool.
#[derive(Debug, Default)]
pub(crate) struct Console {
    /// What waits behind a hold; empty while nothing is held.
    queue: VecDeque<Item>,
    /// Whether writing to stdout failed (a closed pipe): nothing more is written.
    stdout_closed: bool,
}

impl Console {
    /// Prints `bytes` on stdout (in order with everything else).
    pub(crate) fn out(&mut self, bytes: Vec<u8>) {
        self.push(Item::Out(bytes));
    }

    /// Prints `line` and a newline on stdout.
    pub(crate) fn out_line(&mut self, line: &str) {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.out(bytes);
    }

    /// Prints `line` and a newline on stderr (in order with stdout).
    pub(crate) fn err_line(&mut self, line: &str) {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.push(Item::Err(bytes));
    }

    /// Keeps a place for a line that [`Console::release`] will give.
    pub(crate) fn hold(&mut self) {
        self.queue.push_back(Item::Hold);
    }

    /// Fills the oldest place kept with `line` (and a newline), and prints what
    /// waited behind it up to the next place kept.
    pub(crate) fn release(&mut self, line: &str) {
        if let Some(at) = self.queue.iter().position(|i| matches!(i, Item::Hold)) {
            let mut bytes = line.as_bytes().to_vec();
            bytes.push(b'\n');
            self.queue[at] = Item::Out(bytes);
        }
        self.drain();
    }

    /// Prints everything still waiting, dropping the places kept.
    pub(crate) fn finish(&mut self) {
        self.queue.retain(|i| !matches!(i, Item::Hold));
        self.drain();
    }

    /// Whether stdout can no longer be written (the reader went away).
    pub(crate) fn stdout_closed(&self) -> bool {
        self.stdout_closed
    }

    fn push(&mut self, item: Item) {
        if self.queue.is_empty() {
            self.write(item);
        } else {
            self.queue.push_back(item);
        }
    }

    fn drain(&mut self) {
        while let Some(item) = self.queue.front() {
            if matches!(item, Item::Hold) {
                return;
            }
            let item = self.queue.pop_front().expect("front exists");
            self.write(item);
        }
    }

    fn write(&mut self, item: Item) {
        match item {
            Item::Out(bytes) => {
                if self.stdout_closed {
                    return;
                }
                let mut stdout = std::io::stdout().lock();
                if stdout
                    .write_all(&bytes)
                    .and_then(|()| stdout.flush())
                    .is_err()
                {
                    self.stdout_closed = true;
                }
            }
            Item::Err(bytes) => {
                let _ = std::io::stderr().lock().write_all(&bytes);
            }
            Item::Hold => {}
        }
    }
}
