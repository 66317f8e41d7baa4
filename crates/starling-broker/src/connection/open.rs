//! Opening a connection: reading CONNECT by its deadline, accepting the
//! client or refusing it (a CONNACK with the reason), and the lingering close
//! of a connection the server ends, so that the client reads why.

use super::*;

/// The lingering close of web servers, for a connection the server ends
/// (a CONNACK refusal, a DISCONNECT with a reason, a takeover, a shutdown).
/// Its write side is already shut: the client reads the final packet, then
/// the end of the stream. Closing the socket now, with the client's later
/// packets unread or still on their way, makes the kernel answer them with
/// a reset, and a reset destroys what the client had not read yet: the very
/// packet that says why. So what the client still sends is read and dropped
/// until it closes its side, for at most [`LINGER`] however it trickles
/// (the connection keeps its slot under `max_connections` meanwhile); once
/// the server is shutting down, for at most [`LINGER_AT_SHUTDOWN`]. Boxed:
/// its buffer costs a connection nothing until it ends this way.
pub(super) async fn linger<S: AsyncRead + Unpin>(stream: &mut S, shutdown: Option<&Shutdown>) {
    /// How often a lingering connection looks for a shutdown.
    const POLL: Duration = Duration::from_millis(50);
    Box::pin(async {
        let started = tokio::time::Instant::now();
        let mut sink = [0u8; 1024];
        loop {
            let limit = if shutdown.is_some_and(Shutdown::has_begun) {
                LINGER_AT_SHUTDOWN
            } else {
                LINGER
            };
            let left = limit.saturating_sub(started.elapsed());
            if left.is_zero() {
                break;
            }
            // The end of the stream or an error ends it; data, or no data
            // within POLL, goes on.
            if let Ok(Ok(0) | Err(_)) =
                tokio::time::timeout(left.min(POLL), stream.read(&mut sink)).await
            {
                break;
            }
        }
    })
    .await;
}

/// Reads CONNECT by the deadline and accepts the client: the connection, its
/// read buffer and its decoder, or `None` once a refused client is answered.
pub(super) async fn handshake<S>(
    broker: &Arc<Broker>,
    stream: &mut S,
    info: &ConnectionInfo,
) -> Option<(Connection, BytesMut, Decoder)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let peer = info.peer;
    let mut read_buf = BytesMut::new();
    let mut decoder = decoder(broker, ProtocolVersion::V3_1_1);
    let first = tokio::time::timeout_at(
        info.connect_deadline,
        read_packet(stream, &mut read_buf, &mut decoder, &broker.stats),
    )
    .await;
    let connect = match first {
        Ok(Ok(Some(Packet::Connect(connect)))) => connect,
        Ok(Ok(Some(other))) => {
            // [MQTT-3.1.0-1]: the first packet must be CONNECT.
            info!(
                "Client <unknown> from {peer} sent {} before CONNECT, disconnecting.",
                other.packet_type()
            );
            return None;
        }
        Ok(Err(DecodeError::UnsupportedProtocolLevel(level))) => {
            // [MQTT-3.1.2-2]: answer in the 3.1.1 form, the only one a client of
            // an unknown version can be expected to read.
            info!("Client <unknown> from {peer} asked for unsupported protocol level {level}.");
            let _ = stream.write_all(&[0x20, 0x02, 0x00, 0x01]).await;
            close(stream).await;
            linger(stream, None).await;
            return None;
        }
        Ok(Err(e)) => {
            info!("Client <unknown> from {peer} sent an invalid CONNECT: {e}");
            return None;
        }
        Ok(Ok(None)) => return None,
        Err(_) => {
            info!(
                "Client <unknown> from {peer} sent no CONNECT within {:?}, disconnecting.",
                broker.config.connect_timeout
            );
            return None;
        }
    };
    let Some(conn) = Connection::accept(broker, *connect, info, stream).await else {
        // The refusing CONNACK must reach the client through TLS or WebSocket,
        // and be read before a reset can destroy it.
        close(stream).await;
        linger(stream, None).await;
        return None;
    };
    decoder.set_version(conn.version);
    // The CONNECT's buffer is not kept for the life of the connection.
    if read_buf.is_empty() {
        read_buf = BytesMut::new();
    }
    Some((conn, read_buf, decoder))
}

/// Flushes what was written and shuts the stream down, within
/// [`FINAL_WRITE_TIMEOUT`].
async fn close<S: AsyncWrite + Unpin>(stream: &mut S) {
    let _ = tokio::time::timeout(FINAL_WRITE_TIMEOUT, async {
        let _ = stream.flush().await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Reads until one packet is decoded, the peer closes (`None`) or an error.
async fn read_packet<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    decoder: &mut Decoder,
    stats: &Stats,
) -> Result<Option<Packet>, DecodeError> {
    loop {
        if let Some(packet) = decoder.decode(buf)? {
            Stats::add(&stats.packets_received, 1);
            return Ok(Some(packet));
        }
        buf.reserve(1024);
        match stream.read_buf(buf).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(n) => Stats::add(&stats.bytes_received, n as u64),
        }
    }
}

impl Connection {
    /// Applies the CONNECT: checks it, attaches the session, sends CONNACK and
    /// what a resumed session must send again. `None` if the client was refused.
    pub(super) async fn accept<S: AsyncWrite + Unpin>(
        broker: &Arc<Broker>,
        mut connect: Connect,
        info: &ConnectionInfo,
        stream: &mut S,
    ) -> Option<Connection> {
        let peer = info.peer;
        let version = connect.protocol;
        let config = &broker.config;
        let refuse = |reason: ReasonCode| {
            let mut buf = BytesMut::new();
            let connack = ConnAck {
                reason_code: reason,
                ..Default::default()
            };
            let _ = Packet::ConnAck(connack).encode(version, &mut buf);
            buf
        };
        // `accept_protocol_versions` (Mosquitto 2.1): CONNACK Unsupported
        // Protocol Version (3.x: return code 1) for the others.
        if let Some(versions) = &info.listener.settings.accept_protocol_versions {
            if !versions.contains(&version) {
                info!("Client <unknown> from {peer} refused: {version} not accepted on this listener (accept_protocol_versions).");
                let _ = stream
                    .write_all(&refuse(ReasonCode::UNSUPPORTED_PROTOCOL_VERSION))
                    .await;
                return None;
            }
        }
        let mut reloads = broker.auth.subscribe_reloads();
        reloads.mark_unchanged();
        let scope = Arc::clone(broker.auth.state().scope(Some(info.listener.bind)));
        // A copy: the decoded id is a slice of the CONNECT's read buffer, which
        // it would otherwise keep alive for the life of the session.
        let mut client_id =
            MqttString::from_bytes(bytes::Bytes::copy_from_slice(connect.client_id.as_bytes()))
                .unwrap_or_else(|_| connect.client_id.clone());
        let mut assigned = None;
        if client_id.is_empty() {
            // [MQTT-3.1.3-8]: 3.1.1 refuses an empty id with a persistent session;
            // 3.1 requires an id.
            let allowed = scope.settings.allow_zero_length_clientid
                && version != ProtocolVersion::V3_1
                && (version.is_v5() || connect.clean_start);
            if !allowed {
                info!("Client <unknown> from {peer} refused: empty client identifier.");
                let _ = stream
                    .write_all(&refuse(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID))
                    .await;
                return None;
            }
            client_id = broker.assign_client_id(&scope.settings.auto_id_prefix);
            assigned = version.is_v5().then(|| client_id.clone());
        }
        // `clientid_prefixes`, assigned identifiers included: Not Authorized,
        // as Mosquitto answers.
        if let Some(prefix) = &config.clientid_prefixes {
            if !client_id.as_str().starts_with(prefix.as_str()) {
                info!("Client {client_id} from {peer} refused: client identifier without the prefix '{prefix}' (clientid_prefixes).");
                let _ = stream.write_all(&refuse(ReasonCode::NOT_AUTHORIZED)).await;
                return None;
            }
        }
        // use_identity_as_username / use_subject_as_username: the certificate
        // names the user, instead of CONNECT (mosquitto.conf(5)).
        match &info.certificate_user {
            CertificateUser::NotUsed => {}
            CertificateUser::Name(name) => match MqttString::try_from(name.as_str()) {
                Ok(name) => connect.username = Some(name),
                Err(_) => {
                    info!("Client {client_id} from {peer} refused: certificate user name is not an MQTT string.");
                    let _ = stream.write_all(&refuse(ReasonCode::NOT_AUTHORIZED)).await;
                    return None;
                }
            },
            CertificateUser::Missing => {
                info!("Client {client_id} from {peer} refused: no client certificate to take a user name from.");
                let _ = stream.write_all(&refuse(ReasonCode::NOT_AUTHORIZED)).await;
                return None;
            }
        }
        // [MQTT-4.12.0-1]: no authentication method is supported (extended
        // authentication needs a plugin, as in Mosquitto): CONNACK 0x8C.
        if let Some(method) = &connect.properties.authentication_method {
            info!("Client {client_id} from {peer} refused: unsupported authentication method '{method}'.");
            let _ = stream
                .write_all(&refuse(ReasonCode::BAD_AUTHENTICATION_METHOD))
                .await;
            return None;
        }
        let username: Option<Box<str>> = connect.username.as_ref().map(|u| u.as_str().into());
        let login = match info.certificate_user {
            // The certificate authenticated the client; no password is checked.
            CertificateUser::Name(_) => Login::Allowed,
            _ => {
                broker
                    .auth
                    .login(
                        &scope,
                        peer,
                        username.as_deref(),
                        connect.password.as_deref(),
                    )
                    .await
            }
        };
        if login != Login::Allowed {
            // Mosquitto's answer to every refusal: 5 / 0x87, nothing that tells
            // which of the user name and the password was wrong.
            let user = username
                .as_deref()
                .map(|u| format!(" (u'{u}')"))
                .unwrap_or_default();
            info!("Client {client_id} from {peer}{user} refused: not authorised.");
            let _ = stream.write_all(&refuse(ReasonCode::NOT_AUTHORIZED)).await;
            return None;
        }
        // `use_username_as_clientid`: the user name (from CONNECT or the
        // certificate) is the client identifier; without one, Not Authorized.
        if info.listener.settings.use_username_as_clientid {
            match &connect.username {
                Some(username) => {
                    client_id =
                        MqttString::from_bytes(bytes::Bytes::copy_from_slice(username.as_bytes()))
                            .unwrap_or_else(|_| username.clone());
                    assigned = None;
                }
                None => {
                    info!("Client {client_id} from {peer} refused: no user name to use as client identifier (use_username_as_clientid).");
                    let _ = stream.write_all(&refuse(ReasonCode::NOT_AUTHORIZED)).await;
                    return None;
                }
            }
        }
        // `mount_point`: the will goes under it too.
        if let (Some(mount), Some(will)) =
            (&info.listener.settings.mount_point, connect.will.as_mut())
        {
            match super::mount::topic(mount, &will.topic) {
                Some(topic) => will.topic = topic,
                None => {
                    info!("Client {client_id} from {peer} refused: will topic too long under the mount point.");
                    if version.is_v5() {
                        let _ = stream
                            .write_all(&refuse(ReasonCode::TOPIC_NAME_INVALID))
                            .await;
                    }
                    return None;
                }
            }
        }
        // `max_qos`: a will above the listener's highest QoS (v5: CONNACK
        // 0x9B QoS not supported; 3.x, which has no code for it: closed).
        let max_qos = info.listener.settings.max_qos;
        if connect.will.as_ref().is_some_and(|w| w.qos > max_qos) {
            info!(
                "Client {client_id} from {peer} refused: will QoS above max_qos {}.",
                max_qos.as_u8()
            );
            if version.is_v5() {
                let _ = stream
                    .write_all(&refuse(ReasonCode::QOS_NOT_SUPPORTED))
                    .await;
            }
            return None;
        }
        // [MQTT-3.2.2-13]: a v5 will with Will Retain set needs retained messages.
        // 3.x cannot be told why; its will is published without RETAIN.
        let will_retain = connect.will.as_ref().is_some_and(|w| w.retain);
        if will_retain && !config.retain_available && version.is_v5() {
            info!("Client {client_id} from {peer} refused: will retain without retain_available.");
            let _ = stream
                .write_all(&refuse(ReasonCode::RETAIN_NOT_SUPPORTED))
                .await;
            return None;
        }
        if let Some(will) = connect
            .will
            .as_ref()
            .filter(|w| too_deep(w.topic.as_str(), config.max_topic_levels))
        {
            info!(
                "Client {client_id} from {peer} refused: will topic of more than {} levels ({} bytes).",
                config.max_topic_levels,
                will.topic.as_str().len()
            );
            // v5: CONNACK 0x90 Topic Name invalid. 3.x has no code for it:
            // closed without a CONNACK, as Mosquitto does.
            if version.is_v5() {
                let _ = stream
                    .write_all(&refuse(ReasonCode::TOPIC_NAME_INVALID))
                    .await;
            }
            return None;
        }
        // A will larger than message_size_limit is refused with its CONNECT,
        // as Mosquitto does (v5: 0x95; 3.x has no code: closed).
        if let (Some(will), Some(max)) = (&connect.will, config.message_size_limit) {
            if will.payload.len() > max.get() as usize {
                info!(
                    "Client {client_id} from {peer} refused: will payload of {} bytes above message_size_limit.",
                    will.payload.len()
                );
                if version.is_v5() {
                    let _ = stream
                        .write_all(&refuse(ReasonCode::PACKET_TOO_LARGE))
                        .await;
                }
                return None;
            }
        }
        let mut server_keep_alive = None;
        let mut keep_alive = connect.keep_alive;
        // As Mosquitto: a keep alive above max_keepalive (or none at all, once
        // max_keepalive is set below its 65,535 default) is capped for v5 with
        // Server Keep Alive, and refused for 3.x, which cannot be told.
        let limited = config.max_keepalive < u16::MAX;
        if keep_alive > config.max_keepalive || (keep_alive == 0 && limited) {
            if version.is_v5() {
                keep_alive = config.max_keepalive;
                server_keep_alive = Some(keep_alive);
            } else {
                // 3.x has no Server Keep Alive: Mosquitto refuses such clients.
                info!("Client {client_id} from {peer} refused: keep alive {keep_alive} above max_keepalive.");
                let _ = stream
                    .write_all(&refuse(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID))
                    .await;
                return None;
            }
        }
        // Whatever this thread pushed before is another connection's; what
        // `attach` pushes (a clean start ending the old session) and what
        // follows up to the CONNACK, with no `.await` between, is this one's.
        crate::storage::writer::take_pushed();
        let attached = broker.attach(&client_id, connect.clean_start).await;
        let props = &connect.properties;
        let window = if version.is_v5() {
            props.receive_maximum.map_or(u16::MAX, |r| r.get())
        } else {
            match config.max_inflight_messages {
                0 => u16::MAX,
                n => n,
            }
        };
        let mut conn = Connection {
            broker: Arc::clone(broker),
            session: attached.session,
            generation: attached.generation,
            version,
            keep_alive,
            extras: None,
            clean_start: connect.clean_start,
            session_expiry: props.session_expiry_interval.unwrap_or(0),
            window,
            max_packet_size: props.maximum_packet_size.map_or(u32::MAX, |m| m.get()),
            alias_out_max: if version.is_v5() {
                props.topic_alias_maximum.unwrap_or(0)
            } else {
                0
            },
            out: BytesMut::new(),
            log_packets: config.logging.packets,
            read_size: MIN_READ_SIZE,
            problem_info: props.request_problem_information.unwrap_or(true),
            listener: Arc::clone(&info.listener),
            username,
            scope,
            reloads,
            gate: 0,
            // Its first wait may be without a task: a client that has just
            // connected is as likely to wait long as to go on at once.
            last_wait: broker
                .keep_alives
                .tick(Instant::now())
                .wrapping_sub(HIBERNATE_AFTER),
        };
        // The store keeps a session that outlives its connection, with the
        // connection's will (published after a crash as after a lost connection).
        let expiry = conn.expiry();
        let will = connect.will.take().map(Box::new);
        let rate = config
            .max_publish_rate
            .map(|rate| RateLimit::new(rate, Instant::now()));
        if will.is_some() || rate.is_some() {
            conn.extras = Some(Box::new(Extras {
                will,
                rate,
                ..Default::default()
            }));
        }
        let stored_will = conn.will().filter(|_| expiry != Expiry::Now).map(|will| {
            let delay =
                Duration::from_secs(u64::from(will.properties.will_delay_interval.unwrap_or(0)));
            crate::broker::stored_will(&will_message(will.clone(), broker), delay)
        });
        broker.keep_session(&conn.session, expiry, stored_will);
        let mut properties = ConnAckProperties::default();
        if version.is_v5() {
            properties.assigned_client_identifier = assigned;
            properties.server_keep_alive = server_keep_alive;
            properties.receive_maximum =
                std::num::NonZeroU16::new(match config.max_inflight_messages {
                    0 => u16::MAX,
                    n => n,
                });
            properties.maximum_packet_size = config.max_packet_size;
            properties.topic_alias_maximum = Some(config.max_topic_alias).filter(|&m| m > 0);
            if props.request_response_information == Some(true) {
                // A topic prefix this client may use for its response topics.
                properties.response_information =
                    MqttString::try_from(format!("response/{}", conn.session.client_id)).ok();
            }
            if !config.retain_available {
                properties.retain_available = Some(false);
            }
            if max_qos != QoS::ExactlyOnce {
                properties.maximum_qos = Some(max_qos);
            }
        }
        conn.gate = conn.gate.max(attached.replaced);
        let mut connack = ConnAck {
            // MQTT 3.1 has no Session Present flag: its byte is reserved (0).
            session_present: attached.session_present && version != ProtocolVersion::V3_1,
            reason_code: ReasonCode::SUCCESS,
            properties: properties.into(),
        };
        // [MQTT-3.1.2-24]: nothing larger than the client's Maximum Packet
        // Size. What may go is left out until the CONNACK fits: the optional
        // Reason String and User Properties, then the Response Information
        // (which the server may decline to give).
        let fits = |connack: &ConnAck| {
            Packet::ConnAck(connack.clone()).encoded_len(version) <= conn.max_packet_size as usize
        };
        if !fits(&connack) {
            connack.properties.reason_string = None;
            connack.properties.user_properties.clear();
        }
        if !fits(&connack) {
            connack.properties.response_information = None;
        }
        conn.send(Packet::ConnAck(connack));
        info!(
            "New client connected from {} as {} (p{}, c{}, k{}{}).",
            peer,
            conn.session.client_id,
            match version {
                ProtocolVersion::V3_1 => 1,
                ProtocolVersion::V3_1_1 => 2,
                ProtocolVersion::V5 => 5,
            },
            u8::from(connect.clean_start),
            keep_alive,
            connect
                .username
                .as_ref()
                .map(|u| format!(", u'{u}'"))
                .unwrap_or_default(),
        );
        if attached.session_present {
            let resend = conn
                .broker
                .state(&conn.session)
                .resend(usize::from(conn.window));
            for item in resend {
                match item {
                    // Sent before, but read access may have been taken away
                    // since (a reload, or a login as another user).
                    Resend::Publish(id, delivery) if !conn.may_read(&delivery) => {
                        conn.forget_inflight(id, delivery.qos);
                    }
                    Resend::Publish(id, delivery) => {
                        conn.send_delivery(delivery, Some(id), true, Instant::now())
                    }
                    Resend::PubRel(id) => conn.send(Packet::PubRel(PubRel::new(id))),
                }
            }
        }
        Some(conn)
    }
}
