//! What a connection does with each packet its client sends: PUBLISH (topic
//! aliases, the checks before routing, the QoS 2 packet identifiers, the
//! acknowledgement), the acknowledgements of its deliveries, SUBSCRIBE and
//! UNSUBSCRIBE, PINGREQ, DISCONNECT.

use super::*;
use crate::session::OutboundState;

impl Connection {
    /// Applies one packet from the client.
    pub(super) fn handle(&mut self, packet: Packet, now: Instant) -> Result<(), End> {
        if self.log_packets {
            debug!(
                "Received {} from {}",
                crate::log::describe(&packet),
                self.session.client_id
            );
        }
        match packet {
            Packet::Publish(publish) => self.handle_publish(publish, now),
            Packet::PubAck(ack) => {
                let mut state = self.broker.state(&self.session);
                wrong_ack(state.inflight_state(ack.packet_id), "PUBACK")?;
                state.handle_puback(ack.packet_id);
                Ok(())
            }
            Packet::PubRec(rec) => {
                let release = {
                    let mut state = self.broker.state(&self.session);
                    wrong_ack(state.inflight_state(rec.packet_id), "PUBREC")?;
                    state.handle_pubrec(rec.packet_id, rec.reason_code.is_error())
                };
                if release {
                    self.send(Packet::PubRel(PubRel::new(rec.packet_id)));
                } else if !rec.reason_code.is_error() {
                    let mut rel = PubRel::new(rec.packet_id);
                    if self.version.is_v5() {
                        rel.reason_code = ReasonCode::PACKET_IDENTIFIER_NOT_FOUND;
                    }
                    self.send(Packet::PubRel(rel));
                }
                Ok(())
            }
            Packet::PubRel(rel) => {
                let found = self.broker.state(&self.session).release_qos2(rel.packet_id);
                let mut comp = PubComp::new(rel.packet_id);
                if !found {
                    // Released already, perhaps by an earlier connection
                    // whose release is not stored yet: once the client has
                    // the PUBCOMP it reuses the identifier, which a restart
                    // must not still hold (or the next message on it is
                    // taken for a resend and lost).
                    self.gate = self.gate.max(self.broker.store_seq());
                    if self.version.is_v5() {
                        comp.reason_code = ReasonCode::PACKET_IDENTIFIER_NOT_FOUND;
                    }
                }
                self.send(Packet::PubComp(comp));
                Ok(())
            }
            Packet::PubComp(comp) => {
                let mut state = self.broker.state(&self.session);
                wrong_ack(state.inflight_state(comp.packet_id), "PUBCOMP")?;
                state.handle_pubcomp(comp.packet_id);
                Ok(())
            }
            Packet::Subscribe(subscribe) => {
                self.refuse_deep_filters(subscribe.filters.iter().map(|(f, _)| f), "SUBSCRIBE")?;
                self.handle_subscribe(subscribe, now);
                Ok(())
            }
            Packet::Unsubscribe(unsubscribe) => {
                self.refuse_deep_filters(unsubscribe.filters.iter(), "UNSUBSCRIBE")?;
                self.handle_unsubscribe(unsubscribe);
                Ok(())
            }
            Packet::PingReq => {
                self.send(Packet::PingResp);
                Ok(())
            }
            Packet::Disconnect(disconnect) => {
                if let Some(expiry) = disconnect.properties.session_expiry_interval {
                    // MQTT 5.0 §3.14.2.2.2: a session that was to end with the
                    // connection cannot be made to outlive it now.
                    if self.session_expiry == 0 && expiry != 0 {
                        return Err(End::Server(
                            ReasonCode::PROTOCOL_ERROR,
                            "[MQTT-5.0 §3.14.2.2.2] session expiry set at DISCONNECT after 0 at CONNECT"
                                .into(),
                        ));
                    }
                    self.session_expiry = expiry;
                }
                if disconnect.reason_code == ReasonCode::DISCONNECT_WITH_WILL_MESSAGE {
                    Err(End::DisconnectWithWill)
                } else {
                    Err(End::Normal)
                }
            }
            Packet::Connect(_) => Err(End::Server(
                ReasonCode::PROTOCOL_ERROR,
                "[MQTT-3.1.0-2] second CONNECT".into(),
            )),
            Packet::Auth(_) => Err(End::Server(
                ReasonCode::PROTOCOL_ERROR,
                "[MQTT-4.12.0-1] AUTH without an authentication method".into(),
            )),
            // The server-side decoder refuses the rest (CONNACK, SUBACK, ...).
            other => Err(End::Server(
                ReasonCode::PROTOCOL_ERROR,
                format!("unexpected {}", other.packet_type()),
            )),
        }
    }

    fn handle_publish(&mut self, mut publish: Publish, now: Instant) -> Result<(), End> {
        Stats::add(&self.broker.stats.messages_received, 1);
        let rate = self.extras.as_mut().and_then(|e| e.rate.as_mut());
        if let Some(Err(wait)) = rate.map(|rate| rate.take(now)) {
            if self.version.is_v5() {
                // MQTT 5.0 §3.14.2.1: 0x96 Message rate too high, in DISCONNECT
                // (it is not one of PUBACK's reason codes).
                return Err(End::Server(
                    ReasonCode::MESSAGE_RATE_TOO_HIGH,
                    format!(
                        "more than {} PUBLISH per second (max_publish_rate)",
                        self.broker.config.max_publish_rate.map_or(0, |r| r.get())
                    ),
                ));
            }
            // 3.x cannot be told: this message goes through, and reading stops
            // until the bucket is out of debt.
            self.pause_for(wait);
        }
        // `max_qos`: a PUBLISH above the listener's highest QoS ends the
        // connection, as in Mosquitto (v5: DISCONNECT 0x9B [MQTT-3.2.2-11]).
        let max_qos = self.listener.settings.max_qos;
        if publish.delivery.qos() > max_qos {
            return Err(End::Server(
                ReasonCode::QOS_NOT_SUPPORTED,
                format!("PUBLISH at QoS above max_qos {}", max_qos.as_u8()),
            ));
        }
        let config = &self.broker.config;
        if let Some(alias) = publish.properties.topic_alias {
            // [MQTT-3.3.2-9, MQTT-3.3.2-10]
            if alias.get() > config.max_topic_alias {
                return Err(End::Server(
                    ReasonCode::TOPIC_ALIAS_INVALID,
                    format!(
                        "topic alias {} above the maximum {}",
                        alias.get(),
                        config.max_topic_alias
                    ),
                ));
            }
            if publish.topic.as_str().is_empty() {
                let extras = self.extras.get_or_insert_with(Box::default);
                let aliases = extras.aliases.get_or_insert_with(Box::default);
                match aliases.inbound.get(&alias.get()) {
                    Some(topic) => publish.topic = topic.clone(),
                    None => {
                        return Err(End::Server(
                            ReasonCode::PROTOCOL_ERROR,
                            format!("unknown topic alias {}", alias.get()),
                        ))
                    }
                }
            } else {
                let extras = self.extras.get_or_insert_with(Box::default);
                let aliases = extras.aliases.get_or_insert_with(Box::default);
                aliases.inbound.insert(alias.get(), publish.topic.clone());
            }
        }
        if let Some(mount) = &self.listener.settings.mount_point {
            publish.topic = mount::topic(mount, &publish.topic).ok_or_else(|| {
                End::Server(
                    ReasonCode::TOPIC_NAME_INVALID,
                    "PUBLISH topic too long under the mount point".into(),
                )
            })?;
        }
        if too_deep(publish.topic.as_str(), config.max_topic_levels) {
            return Err(End::Server(
                ReasonCode::TOPIC_NAME_INVALID,
                format!(
                    "PUBLISH topic of more than {} levels (max_topic_levels)",
                    config.max_topic_levels
                ),
            ));
        }
        if publish.retain && !config.retain_available {
            // A retained PUBLISH when Retain Available is 0 (MQTT 5.0 §3.2.2.3.5);
            // Mosquitto disconnects 3.x clients for it too.
            return Err(End::Server(
                ReasonCode::RETAIN_NOT_SUPPORTED,
                "retain not supported".into(),
            ));
        }
        let refusal = if config
            .message_size_limit
            .is_some_and(|max| publish.payload.len() > max.get() as usize)
        {
            Some(ReasonCode::QUOTA_EXCEEDED)
        } else if publish.properties.payload_format_indicator == Some(true)
            && std::str::from_utf8(&publish.payload).is_err()
        {
            // [MQTT-3.3.2-4]: the payload is said to be UTF-8 and is not.
            Some(ReasonCode::PAYLOAD_FORMAT_INVALID)
        } else if let Some(reason) = (publish.delivery.qos() != QoS::AtMostOnce)
            .then(|| self.broker.store_refusal())
            .flatten()
        {
            // The store cannot be written: a QoS 1 or 2 message cannot be
            // promised. 3.x has no way to say so but closing.
            if !self.version.is_v5() {
                return Err(End::Server(
                    reason,
                    "the store cannot be written; QoS 1 and 2 messages are refused".into(),
                ));
            }
            Some(reason)
        } else if !self.scope.may_publish(&self.acl_client(), &publish.topic) {
            // v5: PUBACK / PUBREC 0x87; 3.x: acknowledged and dropped
            // (`send_ack`), as Mosquitto does.
            debug!(
                "Denied PUBLISH from {} (d{}, q{}, r{}, '{}', ... ({} bytes))",
                self.session.client_id,
                u8::from(publish.dup),
                publish.delivery.qos().as_u8(),
                u8::from(publish.retain),
                publish.topic,
                publish.payload.len()
            );
            Some(ReasonCode::NOT_AUTHORIZED)
        } else {
            None
        };
        match publish.delivery {
            QosDelivery::AtMostOnce => {
                if refusal.is_none() {
                    self.route(publish, now);
                }
            }
            QosDelivery::AtLeastOnce(id) => {
                let reason = match refusal {
                    Some(reason) => reason,
                    None => self.route(publish, now),
                };
                let mut ack = PubAck::new(id);
                ack.reason_code = reason;
                ack.properties.reason_string = self.reason_string(reason);
                self.send_ack(Packet::PubAck(ack));
            }
            QosDelivery::ExactlyOnce(id) => {
                let reason = match refusal {
                    Some(reason) => reason,
                    None => {
                        // The packet identifier and the copies routed are
                        // stored in one commit [MQTT-4.3.3-10].
                        let broker = Arc::clone(&self.broker);
                        let _group = broker.store_group();
                        let mut state = self.broker.state(&self.session);
                        let receive_maximum = usize::from(match config.max_inflight_messages {
                            0 => u16::MAX,
                            n => n,
                        });
                        let new = state.receive_qos2(id);
                        // More QoS 2 messages unreleased than our Receive Maximum
                        // (MQTT 5.0 §3.3.4); a resend of one not yet released is
                        // not one more [MQTT-4.3.3-10].
                        if new && self.version.is_v5() && state.incoming_qos2() > receive_maximum {
                            state.release_qos2(id);
                            drop(state);
                            return Err(End::Server(
                                ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
                                "receive maximum exceeded".into(),
                            ));
                        }
                        drop(state);
                        if new {
                            self.route(publish, now)
                        } else {
                            // A resend of one we have: its identifier and
                            // copies were pushed by whoever received it first
                            // (an earlier connection, before a takeover), and
                            // may not be stored yet. The PUBREC waits for
                            // everything pushed so far, which holds them.
                            self.gate = self.gate.max(self.broker.store_seq());
                            ReasonCode::SUCCESS
                        }
                    }
                };
                let mut rec = PubRec::new(id);
                rec.reason_code = reason;
                rec.properties.reason_string = self.reason_string(reason);
                self.send_ack(Packet::PubRec(rec));
            }
        }
        Ok(())
    }

    /// Ends the connection with 0x8F Topic Filter invalid if a filter of a
    /// SUBSCRIBE or UNSUBSCRIBE has more levels than `max_topic_levels`:
    /// nothing of the packet is applied, as Mosquitto refuses it whole.
    fn refuse_deep_filters<'f>(
        &self,
        mut filters: impl Iterator<Item = &'f starling_proto::TopicFilter>,
        packet: &str,
    ) -> Result<(), End> {
        let max = self.broker.config.max_topic_levels;
        match filters.find(|f| too_deep(f.as_str(), max)) {
            Some(filter) => Err(End::Server(
                ReasonCode::TOPIC_FILTER_INVALID,
                format!(
                    "{packet} filter of more than {max} levels ({} bytes; max_topic_levels)",
                    filter.as_str().len()
                ),
            )),
            None => Ok(()),
        }
    }

    /// The Reason String for a refused acknowledgement, if the client did not
    /// turn them off [MQTT-3.1.2-29].
    fn reason_string(&self, reason: ReasonCode) -> Option<MqttString> {
        if !reason.is_error() || !self.problem_info || !self.version.is_v5() {
            return None;
        }
        Some(MqttString::from_static(reason.text()))
    }

    /// Sends a PUBACK or PUBREC; 3.x has no reason codes, so a refusal there is
    /// acknowledged as a success and the message dropped, as Mosquitto does.
    fn send_ack(&mut self, mut packet: Packet) {
        if !self.version.is_v5() {
            match &mut packet {
                Packet::PubAck(ack) => ack.reason_code = ReasonCode::SUCCESS,
                Packet::PubRec(rec) => rec.reason_code = ReasonCode::SUCCESS,
                _ => {}
            }
        }
        self.send(packet);
    }

    /// Routes a client's message; returns the v5 reason for its acknowledgement.
    fn route(&mut self, publish: Publish, now: Instant) -> ReasonCode {
        let mut message = Message::from_publish(publish, Some(self.session.id), now);
        if message.retain && self.broker.config.check_retain_source {
            message.publisher = Some(Arc::new(crate::message::Publisher {
                client_id: self.session.client_id.as_str().to_owned(),
                username: self.username.as_deref().map(str::to_owned),
                listener: self.listener.bind,
            }));
        }
        let delivered = self.broker.publish(Arc::new(message));
        if delivered == 0 {
            ReasonCode::NO_MATCHING_SUBSCRIBERS
        } else {
            ReasonCode::SUCCESS
        }
    }

    fn handle_subscribe(&mut self, subscribe: Subscribe, now: Instant) {
        let mut codes = Vec::with_capacity(subscribe.filters.len());
        let mut retained = Vec::new();
        let id = subscribe.properties.subscription_identifier;
        for (filter, options) in subscribe.filters {
            let filter = match &self.listener.settings.mount_point {
                None => filter,
                Some(mount) => match mount::filter(mount, &filter) {
                    Some(mounted) => mounted,
                    None => {
                        codes.push(if self.version.is_v5() {
                            ReasonCode::TOPIC_FILTER_INVALID
                        } else {
                            ReasonCode::UNSPECIFIED_ERROR
                        });
                        continue;
                    }
                },
            };
            if !self.scope.may_subscribe(&self.acl_client(), &filter) {
                // SUBACK 0x80 Failure (3.1.1) / 0x87 Not authorized (v5), per filter.
                debug!(
                    "Denied SUBSCRIBE from {} to '{filter}'",
                    self.session.client_id
                );
                codes.push(if self.version.is_v5() {
                    ReasonCode::NOT_AUTHORIZED
                } else {
                    ReasonCode::UNSPECIFIED_ERROR
                });
                continue;
            }
            let granted = self
                .broker
                .granted_qos(options.qos)
                .min(self.listener.settings.max_qos);
            let options = SubscriptionOptions {
                qos: granted,
                ..options
            };
            let existed =
                self.broker
                    .subscribe(&self.session, &filter, Subscription { options, id });
            codes.push(ReasonCode(granted.as_u8()));
            // Retained messages are not sent for shared subscriptions (MQTT 5.0 §4.8.2).
            let send_retained = !filter.is_shared()
                && match options.retain_handling {
                    RetainHandling::SendAtSubscribe => true,
                    RetainHandling::SendAtSubscribeIfNew => !existed,
                    RetainHandling::DoNotSend => false,
                };
            if send_retained {
                for message in self.broker.retained_for(&filter, now) {
                    if !self.broker.retain_source_may_publish(&message) {
                        continue;
                    }
                    // [MQTT-3.3.1-9]: sent because of a new subscription, RETAIN is 1.
                    let qos = self.broker.outgoing_qos(message.qos, granted);
                    retained.push(Delivery {
                        message,
                        qos,
                        retain: true,
                        subscription_ids: id.into_iter().collect(),
                        shared: None,
                        stored: false,
                    });
                }
            }
        }
        self.send(Packet::SubAck(SubAck {
            packet_id: subscribe.packet_id,
            reason_codes: codes,
            properties: Default::default(),
        }));
        for delivery in retained {
            self.broker.deliver(&self.session, delivery);
        }
    }

    fn handle_unsubscribe(&mut self, unsubscribe: Unsubscribe) {
        let mount = self.listener.settings.mount_point.clone();
        let codes: Vec<ReasonCode> = unsubscribe
            .filters
            .iter()
            .map(|filter| {
                let mounted;
                let filter = match &mount {
                    None => filter,
                    Some(mount) => match mount::filter(mount, filter) {
                        Some(m) => {
                            mounted = m;
                            &mounted
                        }
                        None => return ReasonCode::TOPIC_FILTER_INVALID,
                    },
                };
                if self.broker.unsubscribe(&self.session, filter) {
                    ReasonCode::SUCCESS
                } else {
                    ReasonCode::NO_SUBSCRIPTION_EXISTED
                }
            })
            .collect();
        let reason_codes = if self.version.is_v5() {
            codes
        } else {
            Vec::new()
        };
        self.send(Packet::UnsubAck(UnsubAck {
            packet_id: unsubscribe.packet_id,
            reason_codes,
            properties: Default::default(),
        }));
    }
}

/// An acknowledgement of the wrong type for a message in flight (a PUBREC or
/// PUBCOMP for a QoS 1 message, a PUBACK for a QoS 2 one, a PUBCOMP before
/// its PUBREL) is a protocol violation that closes the connection: MQTT 3.1.1
/// [MQTT-4.8.0-1], MQTT 5.0 §4.13 (DISCONNECT 0x82), as Mosquitto does. One
/// for an identifier not in flight is not: it may answer a message that an
/// earlier connection of the session completed.
fn wrong_ack(state: Option<OutboundState>, ack: &str) -> Result<(), End> {
    use OutboundState::*;
    let wrong = match (ack, state) {
        (_, None) => false,
        ("PUBACK", Some(s)) => s != AwaitingPubAck,
        ("PUBREC", Some(s)) => s == AwaitingPubAck,
        (_, Some(s)) => s != AwaitingPubComp,
    };
    if wrong {
        let what = match state {
            Some(AwaitingPubAck) => "a QoS 1 message",
            Some(AwaitingPubRec) => "a QoS 2 message awaiting PUBREC",
            _ => "a QoS 2 message awaiting PUBCOMP",
        };
        return Err(End::Server(
            ReasonCode::PROTOCOL_ERROR,
            format!("{ack} for {what}"),
        ));
    }
    Ok(())
}
