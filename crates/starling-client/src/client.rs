//! `Client`, the cloneable handle that sends requests to the connection task,
//! and `Events`, the stream of what the broker sends.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use starling_proto::property::{SubscribeProperties, UnsubscribeProperties};
use starling_proto::{
    ConnAck, Disconnect, MqttString, PacketType, QoS, ReasonCode, SubAck, SubscriptionOptions,
    TopicFilter, TopicName, UnsubAck,
};
use tokio::sync::{mpsc, oneshot};

use crate::connection::{self, Command, Shared, Task};
use crate::error::Error;
use crate::event::{Event, Message, Published};
use crate::options::ClientOptions;
use crate::state::ClientState;

/// How many requests may wait for the connection task before callers wait too.
const COMMAND_CAPACITY: usize = 128;

/// A handle to one MQTT client connection. Cheap to clone; every clone talks to
/// the same connection task.
///
/// The task ends, after sending DISCONNECT, on [`Client::disconnect`] or when
/// the last handle is dropped; requests still pending then fail with
/// [`Error::Closed`].
#[derive(Debug, Clone)]
pub struct Client {
    commands: mpsc::Sender<Command>,
    shared: Arc<Mutex<Shared>>,
}

impl Client {
    /// Connects: opens the transport, sends CONNECT and waits for CONNACK, all
    /// within the connect timeout; then starts the connection task on the
    /// current tokio runtime.
    ///
    /// A refused CONNACK is [`Error::Refused`] with its reason code (3.x return
    /// codes mapped to their MQTT 5.0 equivalents). This first connection is not
    /// retried, whatever the reconnect policy. The first [`Event`] is
    /// [`Event::Connected`] for this connection.
    pub async fn connect(options: ClientOptions) -> Result<(Client, Events), Error> {
        let mut state = ClientState::new(&options)?;
        let connect = state.connect_packet();
        let (link, connack) = connection::open(&options, connect).await?;
        state.handle_connack(connack.clone(), crate::now())?;
        let shared = Arc::new(Mutex::new(Shared {
            client_id: state.client_id().clone(),
            assigned_client_id: state.assigned_client_id().cloned(),
            connack: Some(connack),
            connected: true,
        }));
        let (commands, command_rx) = mpsc::channel(COMMAND_CAPACITY);
        let (event_tx, events) = mpsc::channel(options.event_capacity);
        let task = Task::new(options, state, command_rx, event_tx, Arc::clone(&shared));
        tokio::spawn(task.run(link));
        Ok((Client { commands, shared }, Events { events }))
    }

    /// Publishes `payload` on `topic`; see [`Client::publish_with`].
    pub async fn publish(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
        qos: QoS,
        retain: bool,
    ) -> Result<Published, Error> {
        let topic = TopicName::try_from(topic)?;
        self.publish_with(Message::new(topic, payload, qos).retain(retain))
            .await
    }

    /// Publishes `message` and returns when its QoS flow completes: QoS 0 once
    /// written to the socket, QoS 1 at PUBACK, QoS 2 at PUBCOMP.
    ///
    /// A PUBACK or PUBREC with a failure reason code (MQTT 5.0) is
    /// [`Error::Rejected`]; success codes, including No matching subscribers,
    /// are in [`Published::reason_code`]. Other errors:
    /// - [`Error::QueueFull`] if the client is reconnecting and its offline
    ///   queue is full;
    /// - [`Error::PacketTooLarge`] if the PUBLISH exceeds the broker's Maximum
    ///   Packet Size (nothing is sent);
    /// - [`Error::Unsupported`] for a QoS above the broker's Maximum QoS, or
    ///   RETAIN when the broker has none;
    /// - [`Error::ConnectionLost`] for a QoS 0 message whose connection broke
    ///   before it was written, or any message when the client does not
    ///   reconnect; [`Error::Closed`] if the client was closed first.
    ///
    /// QoS 1 and 2 messages survive reconnections: see the crate documentation.
    /// Dropping the returned future does not withdraw the message.
    pub async fn publish_with(&self, message: Message) -> Result<Published, Error> {
        let (reply, rx) = oneshot::channel();
        self.request(
            Command::Publish {
                message: Box::new(message),
                reply,
            },
            rx,
        )
        .await
    }

    /// Subscribes to one filter with `qos` and default options; see [`Client::subscribe`].
    pub async fn subscribe_one(&self, filter: &str, qos: QoS) -> Result<SubAck, Error> {
        let filter = TopicFilter::try_from(filter)?;
        self.subscribe(
            vec![(filter, SubscriptionOptions::new(qos))],
            SubscribeProperties::default(),
        )
        .await
    }

    /// Sends SUBSCRIBE and returns the SUBACK: one reason code per filter, the
    /// granted QoS or a failure (a refused filter is not an `Err`). `properties`
    /// are sent for MQTT 5.0 only. Fails with [`Error::NotConnected`] while the
    /// client is reconnecting, and [`Error::ConnectionLost`] if the connection
    /// breaks before the SUBACK (it is not sent again).
    pub async fn subscribe(
        &self,
        filters: Vec<(TopicFilter, SubscriptionOptions)>,
        properties: SubscribeProperties,
    ) -> Result<SubAck, Error> {
        let (reply, rx) = oneshot::channel();
        self.request(
            Command::Subscribe {
                filters,
                properties,
                reply,
            },
            rx,
        )
        .await
    }

    /// Sends UNSUBSCRIBE and returns the UNSUBACK: one reason code per filter
    /// for MQTT 5.0, none for 3.x. Errors as [`Client::subscribe`].
    pub async fn unsubscribe(
        &self,
        filters: Vec<TopicFilter>,
        properties: UnsubscribeProperties,
    ) -> Result<UnsubAck, Error> {
        let (reply, rx) = oneshot::channel();
        self.request(
            Command::Unsubscribe {
                filters,
                properties,
                reply,
            },
            rx,
        )
        .await
    }

    /// Sends DISCONNECT (Normal disconnection: the broker discards the will)
    /// and ends the connection task; see [`Client::disconnect_with`].
    pub async fn disconnect(&self) -> Result<(), Error> {
        self.disconnect_with(Disconnect::new(ReasonCode::NORMAL_DISCONNECTION))
            .await
    }

    /// Sends `disconnect` (MQTT 5.0: its reason code and properties, such as a
    /// new Session Expiry Interval, which must not be non-zero if CONNECT's was
    /// 0 [MQTT-3.14.2-2]; 3.x: a bare DISCONNECT) and ends the connection task.
    ///
    /// Returns once DISCONNECT is written and the socket shut down (or at once
    /// if the client was reconnecting). Requests still pending fail with
    /// [`Error::Closed`], the event stream ends after [`Event::Disconnected`],
    /// and later requests on any handle fail with [`Error::Closed`]. Calling it
    /// on a closed client returns `Ok`.
    pub async fn disconnect_with(&self, disconnect: Disconnect) -> Result<(), Error> {
        if !disconnect.reason_code.is_allowed_in(PacketType::Disconnect) {
            return Err(Error::InvalidOption {
                option: "disconnect reason code",
                reason: format!("{} is not a DISCONNECT reason code", disconnect.reason_code),
            });
        }
        let (reply, rx) = oneshot::channel();
        if self
            .commands
            .send(Command::Disconnect { disconnect, reply })
            .await
            .is_err()
        {
            return Ok(());
        }
        rx.await.unwrap_or(Ok(()))
    }

    async fn request<T>(
        &self,
        command: Command,
        rx: oneshot::Receiver<Result<T, Error>>,
    ) -> Result<T, Error> {
        self.commands
            .send(command)
            .await
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// The client identifier in use: the configured one, or the one an MQTT 5.0
    /// broker assigned. Empty if a 3.x broker assigned one (3.x cannot say which).
    pub fn client_id(&self) -> MqttString {
        self.shared().client_id.clone()
    }

    /// The identifier an MQTT 5.0 broker assigned (Assigned Client Identifier),
    /// if the client connected with an empty one.
    pub fn assigned_client_id(&self) -> Option<MqttString> {
        self.shared().assigned_client_id.clone()
    }

    /// The CONNACK of the latest connection, with the broker's MQTT 5.0
    /// properties (limits, Server Keep Alive, Response Information, ...).
    pub fn connack(&self) -> Option<ConnAck> {
        self.shared().connack.clone()
    }

    /// Whether the client is connected now (not reconnecting, not closed).
    pub fn is_connected(&self) -> bool {
        self.shared().connected
    }

    /// Whether the connection task has ended.
    pub fn is_closed(&self) -> bool {
        self.commands.is_closed()
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The messages and connection events of one client, in order. Read it with
/// [`Events::recv`] or as a [`futures_core::Stream`]; it ends when the
/// connection task ends.
///
/// It holds at most [`ClientOptions::event_capacity`] events; while it is full
/// the client stops reading from the broker (so acknowledgements, and the
/// publishes waiting for them, wait too). Read it, or drop it to discard
/// events.
#[derive(Debug)]
pub struct Events {
    events: mpsc::Receiver<Event>,
}

impl Events {
    /// The next event, or `None` once the client has ended.
    pub async fn recv(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// The next event if one is ready.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.events.try_recv().ok()
    }

    /// The next incoming message, skipping connection events; `None` once the
    /// client has ended.
    pub async fn next_message(&mut self) -> Option<Message> {
        loop {
            if let Event::Message(message) = self.events.recv().await? {
                return Some(message);
            }
        }
    }
}

impl futures_core::Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.events.poll_recv(cx)
    }
}
