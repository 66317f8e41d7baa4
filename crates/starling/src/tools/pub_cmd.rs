//! `starling pub`: mosquitto_pub. Connects, publishes the `-m`/`-f`/`-s`/`-n`
//! message (`--repeat` times, each after the previous one completed and
//! `--repeat-delay` passed) or each line of stdin (`-l`, as they come, up to
//! `-M` in flight), then disconnects.
//!
//! A PUBACK or PUBREC with a failure reason code (MQTT 5.0) gives Mosquitto's
//! "Warning: Publish N failed: REASON." and does not change the exit status.

use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use starling_client::{
    Client, Direction, Error, Message, Packet, PacketTrace, ProtocolVersion, Published, ReasonCode,
    TopicName,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use super::args::{Config, Payload, Tool};
use super::console::Console;
use super::debug;
use super::errors::{client_error, reason_string, Fail};
use super::{help, session};

/// The most a payload may be (MQTT's limit, as Mosquitto says it).
const MAX_PAYLOAD: usize = 268_435_455;

/// What the packet observer of `pub` does: the `-d` lines and the warnings.
struct Observer {
    version: ProtocolVersion,
    debug: bool,
    quiet: bool,
    console: Console,
    answers: debug::Answers,
}

impl Observer {
    fn observe(&mut self, trace: &PacketTrace<'_>) {
        if self.debug {
            let logged = trace.direction == Direction::Sent && self.answers.already_logged(trace);
            if !logged {
                for line in debug::lines(trace, self.version) {
                    self.console.out_line(&line);
                }
            }
            if trace.direction == Direction::Received {
                if let Some(line) = self.answers.answer(trace) {
                    self.console.out_line(&line);
                }
            }
        }
        if trace.direction != Direction::Received {
            return;
        }
        let (code, properties) = match trace.packet {
            Packet::PubAck(ack) => (ack.reason_code, &ack.properties),
            Packet::PubRec(ack) => (ack.reason_code, &ack.properties),
            _ => return,
        };
        if code.is_error() && !self.quiet {
            self.console.err_line(&format!(
                "Warning: Publish {} failed: {}.",
                trace.message_id,
                reason_string(code.0)
            ));
            if let Some(reason) = &properties.reason_string {
                self.console.err_line(reason.as_str());
            }
        }
    }
}

/// Runs `starling pub`; the exit status.
pub(crate) async fn run(cfg: Config) -> Result<u8, Fail> {
    let payload = match &cfg.payload {
        Some(Payload::Stdin) => Some(read_stdin().await?),
        Some(Payload::File(path)) => Some(read_file(path)?),
        Some(Payload::Message(m)) => Some(m.clone()),
        Some(Payload::Null) => Some(Vec::new()),
        Some(Payload::Lines) | None => None,
    };
    let (Some(topic), Some(mode)) = (&cfg.topic, &cfg.payload) else {
        eprintln!("Error: Both topic and message must be supplied.");
        let _ = std::io::stdout().write_all(help::text(Tool::Pub).as_bytes());
        return Ok(1);
    };
    let topic = TopicName::try_from(topic.as_str())
        .map_err(|e| Fail::plain(format!("Error: Invalid topic: {e}.\n"), 1))?;
    let properties = cfg.properties.publish().map_err(|m| Fail::plain(m, 1))?;
    let disconnect_props = cfg.properties.disconnect().map_err(|m| Fail::plain(m, 1))?;
    let observer = Arc::new(Mutex::new(Observer {
        version: cfg.version,
        debug: cfg.debug,
        quiet: cfg.quiet,
        console: Console::default(),
        answers: debug::Answers::default(),
    }));
    let seen = Arc::clone(&observer);
    let options =
        session::client_options(&cfg, Arc::new(move |trace| lock(&seen).observe(trace))).await?;
    let (client, events) = session::connect(&cfg, options).await?;
    // Nothing is read from the events; dropping them lets the client run freely.
    drop(events);
    let message = |payload: Vec<u8>| {
        Message::new(topic.clone(), payload, cfg.qos)
            .retain(cfg.retain)
            .properties(properties.clone())
    };
    let result = match (mode, payload) {
        (Payload::Lines, _) => publish_lines(&client, &message).await,
        (_, Some(payload)) => {
            let mut result = Ok(());
            for n in 0..cfg.repeat_count {
                if n > 0 && !cfg.repeat_delay.is_zero() {
                    tokio::time::sleep(cfg.repeat_delay).await;
                }
                result = completed(client.publish_with(message(payload.clone())).await);
                if result.is_err() {
                    break;
                }
            }
            result
        }
        (_, None) => Ok(()),
    };
    if let Err(error) = result {
        return Err(client_error(Tool::Pub, cfg.version, &error));
    }
    let disconnect = session::disconnect_packet(
        ReasonCode::NORMAL_DISCONNECTION,
        &disconnect_props,
        cfg.version,
    );
    client
        .disconnect_with(disconnect)
        .await
        .map_err(|e| client_error(Tool::Pub, cfg.version, &e))?;
    lock(&observer).console.finish();
    Ok(0)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A publish that the broker refused is a warning (printed by the observer),
/// not a failure.
fn completed(result: Result<Published, Error>) -> Result<(), Error> {
    match result {
        Ok(_) | Err(Error::Rejected { .. }) => Ok(()),
        Err(error) => Err(error),
    }
}

type Pending = Pin<Box<dyn Future<Output = Result<Published, Error>> + Send>>;

/// `-l`: each line (without its newline; a last line without one too) is
/// published as soon as it is read; the client keeps up to `-M` in flight and
/// the rest in order. Ends when stdin does and everything sent is complete.
async fn publish_lines(
    client: &Client,
    message: &(dyn Fn(Vec<u8>) -> Message + Sync),
) -> Result<(), Error> {
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut pending: Vec<Pending> = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if stdin.read_until(b'\n', &mut line).await? == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        let client = client.clone();
        let mut publish: Pending = Box::pin({
            let message = message(line.clone());
            async move { client.publish_with(message).await }
        });
        // Poll once so that the request is queued now, in line order.
        let ready = std::future::poll_fn(|cx| Poll::Ready(publish.as_mut().poll(cx))).await;
        match ready {
            Poll::Ready(result) => completed(result)?,
            Poll::Pending => pending.push(publish),
        }
        // Keep the list short: drop what has completed.
        let mut failure = None;
        pending = std::future::poll_fn(|cx| {
            let mut still = Vec::with_capacity(pending.len());
            for mut p in pending.drain(..) {
                match p.as_mut().poll(cx) {
                    Poll::Ready(result) => {
                        if let Err(e) = completed(result) {
                            failure.get_or_insert(e);
                        }
                    }
                    Poll::Pending => still.push(p),
                }
            }
            Poll::Ready(still)
        })
        .await;
        if let Some(error) = failure {
            return Err(error);
        }
    }
    for publish in pending {
        completed(publish.await)?;
    }
    Ok(())
}

/// `-s`: all of stdin; Mosquitto refuses an empty input.
async fn read_stdin() -> Result<Vec<u8>, Fail> {
    let mut data = Vec::new();
    let read = tokio::io::stdin().read_to_end(&mut data).await;
    if read.is_err() || data.is_empty() || data.len() > MAX_PAYLOAD {
        let why = if data.len() > MAX_PAYLOAD {
            format!("Error: Message length must be less than {MAX_PAYLOAD} bytes.\n\n")
        } else {
            "Error: Zero length input.\n".to_owned()
        };
        return Err(Fail::plain(
            format!("{why}Error loading input from stdin.\n"),
            1,
        ));
    }
    Ok(data)
}

/// `-f`: a file's contents.
fn read_file(path: &std::path::Path) -> Result<Vec<u8>, Fail> {
    let name = path.display();
    let loading = format!("Error loading input file \"{name}\".\n");
    let mut file = std::fs::File::open(path).map_err(|_| {
        Fail::plain(
            format!("Error: Unable to open file \"{name}\".\n{loading}"),
            1,
        )
    })?;
    let mut data = Vec::new();
    if std::io::Read::read_to_end(&mut file, &mut data).is_err() || data.len() > MAX_PAYLOAD {
        return Err(Fail::plain(
            format!("Error: File must be less than {MAX_PAYLOAD} bytes.\n\n{loading}"),
            1,
        ));
    }
    Ok(data)
}
