//! What `sub` and `rr` do with each packet: the work of mosquitto_sub's and
//! mosquitto_rr's libmosquitto callbacks, done in the client's packet observer
//! so that it happens where Mosquitto does it, between one packet and the next.
//!
//! Mosquitto's order is kept: a QoS 1 message is printed after its PUBACK is
//! logged; a QoS 2 message after PUBREL arrives and PUBCOMP is logged;
//! `Subscribed (mid: N): ...` right after `received SUBACK`. Those
//! acknowledgements are logged here when the packet they answer arrives (the
//! library sends exactly these: reason code 0, in the same batch), and not again
//! when the library writes them.
//!
//! Once the tool has decided to stop (`-C` reached, `-E`, `--retained-only`
//! done, a signal, `-W`), received packets are no longer logged or printed:
//! Mosquitto writes its DISCONNECT and closes the socket before reading more.

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use starling_client::{Direction, Packet, PacketTrace, ProtocolVersion, QoS, TopicFilter};
use starling_proto::{Publish, SubAck, TopicName};
use tokio::sync::mpsc::UnboundedSender;

use super::args::{Config, Tool};
use super::console::Console;
use super::debug;
use super::errors::reason_string;
use super::sub_format::{self, MessageView, OutputOptions};

/// What the observer asks the tool's main task to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Control {
    /// `--remove-retained`: publish an empty retained message on this topic.
    Remove(TopicName),
    /// Stop processing: disconnect (once the removals are acknowledged) and end.
    Done,
    /// stdout was closed: end.
    StdoutClosed,
}

/// Where the tool is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Printing messages.
    Running,
    /// Done printing; waiting for `--remove-retained` publishes to complete.
    Draining,
    /// Disconnecting: nothing received matters any more.
    Stopped,
}

/// The observer's state for `sub` and `rr`.
#[derive(Debug)]
pub(crate) struct Receiver {
    tool: Tool,
    version: ProtocolVersion,
    debug: bool,
    quiet: bool,
    output: OutputOptions,
    msg_count: u32,
    no_retain: bool,
    retained_only: bool,
    remove_retained: bool,
    exit_after_sub: bool,
    random_filter: u32,
    filter_outs: Vec<TopicFilter>,
    console: Console,
    control: UnboundedSender<Control>,
    phase: Phase,
    printed: u32,
    /// Topic Aliases the broker set on this connection.
    aliases: HashMap<u16, TopicName>,
    /// QoS 2 messages received and not yet released, by packet identifier.
    unreleased: HashMap<u16, (Publish, TopicName)>,
    /// `--remove-retained` publishes asked for and not yet acknowledged.
    removals_pending: usize,
    /// Packet identifiers of those sent.
    removal_ids: HashSet<u16>,
    answers: debug::Answers,
    /// The client identifier of the last CONNACK (for a refusal's last line).
    refused_id: String,
    stdout_reported: bool,
}

impl Receiver {
    pub(crate) fn new(
        cfg: &Config,
        output: OutputOptions,
        control: UnboundedSender<Control>,
    ) -> Self {
        Receiver {
            tool: cfg.tool,
            version: cfg.version,
            debug: cfg.debug,
            quiet: cfg.quiet,
            output,
            msg_count: cfg.msg_count,
            no_retain: cfg.no_retain,
            retained_only: cfg.retained_only,
            remove_retained: cfg.remove_retained,
            exit_after_sub: cfg.exit_after_sub,
            random_filter: cfg.random_filter,
            filter_outs: cfg
                .filter_outs
                .iter()
                .filter_map(|f| TopicFilter::try_from(f.as_str()).ok())
                .collect(),
            console: Console::default(),
            control,
            phase: Phase::Running,
            printed: 0,
            aliases: HashMap::new(),
            unreleased: HashMap::new(),
            removals_pending: 0,
            removal_ids: HashSet::new(),
            answers: debug::Answers::default(),
            refused_id: String::new(),
            stdout_reported: false,
        }
    }

    /// The main task is disconnecting: ignore what arrives from now on.
    pub(crate) fn stop(&mut self) {
        self.phase = Phase::Stopped;
    }

    /// The DISCONNECT line Mosquitto logs after a refused CONNACK.
    pub(crate) fn log_disconnect_after_refusal(&mut self) {
        let id = debug::client_label(&self.refused_id).to_owned();
        self.console
            .out_line(&format!("Client {id} sending DISCONNECT"));
    }

    /// Prints whatever still waits.
    pub(crate) fn finish(&mut self) {
        self.console.finish();
    }

    /// Handles one packet sent or received.
    pub(crate) fn observe(&mut self, trace: &PacketTrace<'_>) {
        match trace.direction {
            Direction::Sent => self.sent(trace),
            Direction::Received if self.phase != Phase::Stopped => self.received(trace),
            Direction::Received => {}
        }
        if self.console.stdout_closed() && !self.stdout_reported {
            self.stdout_reported = true;
            let _ = self.control.send(Control::StdoutClosed);
        }
    }

    /// The `-d` lines of `trace`, and of the answer to it.
    fn log(&mut self, trace: &PacketTrace<'_>) {
        if self.debug {
            for line in debug::lines(trace, self.version) {
                self.console.out_line(&line);
            }
            if trace.direction == Direction::Received {
                if let Some(line) = self.answers.answer(trace) {
                    self.console.out_line(&line);
                }
            }
        }
    }

    fn sent(&mut self, trace: &PacketTrace<'_>) {
        match trace.packet {
            // Once stopping, Mosquitto reads (and so answers) nothing more.
            Packet::PubAck(_) | Packet::PubRec(_) | Packet::PubRel(_) | Packet::PubComp(_)
                if self.phase == Phase::Stopped => {}
            // Logged when the packet they answer arrived.
            _ if self.debug && self.answers.already_logged(trace) => {}
            Packet::Publish(p) if self.remove_retained && p.retain && p.payload.is_empty() => {
                self.removal_ids.insert(trace.message_id);
                if self.debug {
                    let line = debug::lines(trace, self.version).join("\n");
                    self.console.release(&line);
                }
            }
            _ => self.log(trace),
        }
    }

    fn received(&mut self, trace: &PacketTrace<'_>) {
        let mid = trace.message_id;
        match trace.packet {
            Packet::ConnAck(_) => {
                self.aliases.clear();
                self.refused_id = trace.client_id.to_owned();
                self.log(trace);
            }
            Packet::Publish(p) => {
                let Some(topic) = self.resolve(p) else {
                    self.log(trace);
                    return;
                };
                if self.debug {
                    let line =
                        debug::publish_line(trace.client_id, "received", p, mid, topic.as_str());
                    self.console.out_line(&line);
                    if let Some(line) = self.answers.answer(trace) {
                        self.console.out_line(&line);
                    }
                }
                match p.qos() {
                    QoS::AtMostOnce | QoS::AtLeastOnce => self.message(p, &topic, mid),
                    QoS::ExactlyOnce => {
                        self.unreleased.insert(mid, (p.clone(), topic));
                    }
                }
            }
            Packet::PubRel(_) => {
                self.log(trace);
                if let Some((p, topic)) = self.unreleased.remove(&mid) {
                    self.message(&p, &topic, mid);
                }
            }
            Packet::PubAck(_) => {
                self.log(trace);
                if self.removal_ids.remove(&mid) {
                    self.removals_pending = self.removals_pending.saturating_sub(1);
                    if self.removals_pending == 0 && self.phase == Phase::Draining {
                        self.phase = Phase::Stopped;
                    }
                }
            }
            Packet::SubAck(ack) => {
                self.log(trace);
                self.suback(ack, mid);
            }
            _ => self.log(trace),
        }
    }

    /// The topic of `p`, a Topic Alias resolved; `None` for an alias never set.
    fn resolve(&mut self, p: &Publish) -> Option<TopicName> {
        match p.properties.topic_alias {
            None => Some(p.topic.clone()),
            Some(alias) if p.topic.as_str().is_empty() => self.aliases.get(&alias.get()).cloned(),
            Some(alias) => {
                self.aliases.insert(alias.get(), p.topic.clone());
                Some(p.topic.clone())
            }
        }
    }

    fn suback(&mut self, ack: &SubAck, mid: u16) {
        let codes: Vec<u8> = ack.reason_codes.iter().map(|c| c.0).collect();
        match self.tool {
            Tool::Sub => {
                if self.debug && !self.quiet {
                    let list: Vec<String> = codes.iter().map(u8::to_string).collect();
                    self.console
                        .out_line(&format!("Subscribed (mid: {mid}): {}", list.join(", ")));
                }
                if codes.iter().all(|&c| c >= 0x80) {
                    if !self.quiet {
                        self.console
                            .err_line("All subscription requests were denied.");
                    }
                    self.done();
                } else if self.exit_after_sub {
                    self.done();
                }
            }
            Tool::Rr | Tool::Pub => {
                if let Some(&code) = codes.first().filter(|&&c| c >= 0x80) {
                    if !self.quiet {
                        self.console.err_line(reason_string(code));
                    }
                    self.done();
                }
            }
        }
    }

    /// mosquitto_sub's `my_message_callback` (and mosquitto_rr's, which prints
    /// the first message and stops).
    fn message(&mut self, p: &Publish, topic: &TopicName, mid: u16) {
        if self.phase != Phase::Running {
            return;
        }
        if self.retained_only && !p.retain {
            self.done();
            return;
        }
        if p.retain && self.no_retain {
            return;
        }
        if self.filter_outs.iter().any(|f| f.matches(topic)) {
            return;
        }
        if self.remove_retained && p.retain {
            if self.debug {
                self.console.hold();
            }
            self.removals_pending += 1;
            let _ = self.control.send(Control::Remove(topic.clone()));
        }
        if self.random_filter < 10_000 && rand::random_range(0..10_000) >= self.random_filter {
            return;
        }
        let view = MessageView {
            topic: topic.as_str(),
            payload: &p.payload,
            qos: p.qos(),
            retain: p.retain,
            mid,
            properties: &p.properties,
            received: SystemTime::now(),
        };
        let mut out = Vec::new();
        let errors = sub_format::print_message(&self.output, &view, &mut out);
        if !out.is_empty() {
            self.console.out(out);
        }
        for error in errors {
            if !self.quiet {
                self.console.err_line(&error.to_string());
            }
        }
        self.printed += 1;
        if self.msg_count > 0 && self.printed >= self.msg_count {
            self.done();
        }
    }

    /// Stops processing messages; the main task disconnects once the removals
    /// asked for are acknowledged (Mosquitto waits for the last one's PUBACK, and
    /// logs what arrives meanwhile).
    fn done(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        self.phase = if self.removals_pending == 0 {
            Phase::Stopped
        } else {
            Phase::Draining
        };
        let _ = self.control.send(Control::Done);
    }
}
