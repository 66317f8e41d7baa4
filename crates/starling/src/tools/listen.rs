//! What `sub` and `rr` share: connecting with the [`Receiver`] as the packet
//! observer, waiting until it says the work is done (or `-W` runs out, or
//! SIGINT/SIGTERM arrives, or the connection is lost for good), and ending as
//! Mosquitto ends: a DISCONNECT with reason 0, or with reason 4 "Disconnect
//! with Will Message" (MQTT 5.0) after a signal or a timeout, as mosquitto_sub's
//! signal handler does; "Timed out" and exit status 27 for `-W`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use starling_client::{Client, Error, Event, Events, ReasonCode};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::args::Config;
use super::errors::{client_error, Fail};
use super::receive::{Control, Receiver};
use super::session;
use super::sub_format::{local_time_zone, OutputOptions};

/// A connected `sub` or `rr`.
pub(crate) struct Listening {
    pub(crate) client: Client,
    events: Events,
    receiver: Arc<Mutex<Receiver>>,
    control: mpsc::UnboundedReceiver<Control>,
    /// `--remove-retained` publishes in flight.
    removals: JoinSet<Result<(), Error>>,
    /// The reason the connection was last lost.
    last_loss: Option<Error>,
    /// Whether the first `Connected` event (of the first connection) was seen.
    connected_once: bool,
    /// Set up once connected, as Mosquitto installs its handler after connecting.
    signals: Signals,
}

/// Why waiting ended.
#[derive(Debug)]
pub(crate) enum Ending {
    /// The receiver is done (`-C`, `-E`, `--retained-only`, a response).
    Done,
    /// `-W` ran out.
    TimedOut,
    /// SIGINT or SIGTERM.
    Signal,
    /// stdout is closed.
    StdoutClosed,
    /// The connection was lost and will not come back.
    Lost(Error),
}

/// What happened while waiting.
pub(crate) enum Wake {
    /// The client connected again (not the first time): subscribe again.
    Reconnected,
    /// Stop waiting.
    End(Ending),
}

fn lock(receiver: &Mutex<Receiver>) -> MutexGuard<'_, Receiver> {
    receiver.lock().unwrap_or_else(|e| e.into_inner())
}

/// Polls `future` once, so that the client request it makes is queued now (in
/// the order of these calls); its output if it is already complete.
pub(crate) async fn start<F: Future + Unpin>(future: &mut F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        Poll::Ready(match Pin::new(&mut *future).poll(cx) {
            Poll::Ready(output) => Some(output),
            Poll::Pending => None,
        })
    })
    .await
}

impl Listening {
    /// Connects with a [`Receiver`] printing what arrives; `deadline` is `-W`'s.
    pub(crate) async fn connect(
        cfg: &Config,
        deadline: Option<Instant>,
    ) -> Result<Listening, Fail> {
        let output = OutputOptions {
            format: cfg.format.clone(),
            verbose: cfg.verbose,
            eol: cfg.eol,
            pretty: cfg.pretty,
            time_zone: local_time_zone(),
        };
        let (control_tx, control) = mpsc::unbounded_channel();
        let receiver = Arc::new(Mutex::new(Receiver::new(cfg, output, control_tx)));
        let seen = Arc::clone(&receiver);
        let options =
            session::client_options(cfg, Arc::new(move |trace| lock(&seen).observe(trace))).await?;
        let connecting = session::connect(cfg, options);
        let connected = match deadline {
            None => connecting.await,
            Some(deadline) => tokio::select! {
                connected = connecting => connected,
                () = tokio::time::sleep_until(deadline) => {
                    lock(&receiver).finish();
                    return Err(timed_out(cfg));
                }
            },
        };
        let (client, events) = match connected {
            Ok(connected) => connected,
            Err(refusal) => {
                // mosquitto_sub and mosquitto_rr call disconnect after a refusal,
                // and so log a DISCONNECT (that the broker never reads); not
                // after a connection lost (7) or a TLS error (8).
                let mut receiver = lock(&receiver);
                if cfg.debug && !matches!(refusal.code, 1 | 7 | 8) {
                    receiver.log_disconnect_after_refusal();
                }
                receiver.finish();
                return Err(refusal);
            }
        };
        Ok(Listening {
            client,
            events,
            receiver,
            control,
            removals: JoinSet::new(),
            last_loss: None,
            connected_once: false,
            signals: Signals::new(),
        })
    }

    /// Waits for the next thing the tool must act on.
    pub(crate) async fn wait(&mut self, deadline: Option<Instant>) -> Wake {
        let far = Instant::now() + Duration::from_secs(100 * 365 * 86_400);
        loop {
            tokio::select! {
                // Cancel safe: a message not received stays in the channel.
                control = self.control.recv() => match control {
                    Some(Control::Remove(topic)) => {
                        let client = self.client.clone();
                        let mut publish = Box::pin(async move {
                            match client.publish(topic.as_str(), Bytes::new(), starling_client::QoS::AtLeastOnce, true).await {
                                Ok(_) | Err(Error::Rejected { .. }) => Ok(()),
                                Err(e) => Err(e),
                            }
                        });
                        // Queue it now, before anything else is asked of the client.
                        match start(&mut publish).await {
                            Some(Err(e)) => return Wake::End(Ending::Lost(e)),
                            Some(Ok(())) => {}
                            None => { self.removals.spawn(publish); }
                        }
                    }
                    Some(Control::Done) => return Wake::End(Ending::Done),
                    Some(Control::StdoutClosed) => return Wake::End(Ending::StdoutClosed),
                    None => return Wake::End(Ending::Done),
                },
                // Cancel safe: an event not received stays in the channel.
                event = self.events.recv() => match event {
                    Some(Event::Connected { .. }) => {
                        if self.connected_once {
                            return Wake::Reconnected;
                        }
                        self.connected_once = true;
                    }
                    Some(Event::Disconnected { reason }) => self.last_loss = Some(reason),
                    Some(_) => {}
                    None => {
                        let reason = self.last_loss.take().unwrap_or(Error::ConnectionLost);
                        return Wake::End(Ending::Lost(reason));
                    }
                },
                // Cancel safe: a sleep.
                () = tokio::time::sleep_until(deadline.unwrap_or(far)), if deadline.is_some() => {
                    return Wake::End(Ending::TimedOut);
                }
                // Cancel safe: signal streams keep what arrived.
                () = self.signals.next() => return Wake::End(Ending::Signal),
            }
        }
    }

    /// Ends as Mosquitto ends for `ending`; the exit status.
    pub(crate) async fn finish(mut self, cfg: &Config, ending: Ending) -> Result<u8, Fail> {
        let (reason, code) = match &ending {
            Ending::Done => {
                // Mosquitto waits for the PUBACK of the last --remove-retained publish.
                while let Some(result) = self.removals.join_next().await {
                    if let Ok(Err(error)) = result {
                        lock(&self.receiver).finish();
                        return Err(client_error(cfg.tool, cfg.version, &error));
                    }
                }
                (ReasonCode::NORMAL_DISCONNECTION, 0)
            }
            Ending::StdoutClosed => (ReasonCode::NORMAL_DISCONNECTION, 1),
            Ending::TimedOut | Ending::Signal => (ReasonCode::DISCONNECT_WITH_WILL_MESSAGE, 0),
            Ending::Lost(error) => {
                lock(&self.receiver).finish();
                return Err(client_error(cfg.tool, cfg.version, error));
            }
        };
        lock(&self.receiver).stop();
        let properties = cfg.properties.disconnect().unwrap_or_default();
        let disconnect = session::disconnect_packet(reason, &properties, cfg.version);
        let _ = self.client.disconnect_with(disconnect).await;
        lock(&self.receiver).finish();
        match ending {
            Ending::TimedOut => Err(timed_out(cfg)),
            _ => Ok(code),
        }
    }
}

fn timed_out(_cfg: &Config) -> Fail {
    Fail::plain("Timed out\n", 27)
}

/// SIGINT and SIGTERM.
struct Signals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Signals {
                interrupt: signal(SignalKind::interrupt()).ok(),
                terminate: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// The next SIGINT or SIGTERM.
    async fn next(&mut self) {
        #[cfg(unix)]
        {
            let interrupt = async {
                match &mut self.interrupt {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            let terminate = async {
                match &mut self.terminate {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = interrupt => {}
                () = terminate => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
