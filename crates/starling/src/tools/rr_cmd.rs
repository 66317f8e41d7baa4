//! `starling rr`: mosquitto_rr. Connects (MQTT 5.0 by default), subscribes to
//! the response topic `-e`, and once the SUBACK grants it publishes the request
//! to `-t` with the response topic as its Response Topic property (and any
//! `-D publish` properties, such as correlation-data); prints the first message
//! that arrives on the response topic and ends.
//!
//! As mosquitto_rr, it does not generate correlation data, nor compare the
//! response's with the request's: the first message on the response topic is
//! the answer. Over MQTT 3.1.1 the request goes without properties (the
//! responder must know where to answer). Unlike mosquitto_rr, which closes its
//! socket without a DISCONNECT (so that the broker publishes its will), it
//! disconnects cleanly.

use std::sync::Arc;

use bytes::Bytes;
use starling_client::{Message, SubscriptionOptions, TopicFilter, TopicName};
use starling_proto::property::PublishProperties;
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

use super::args::{Config, Payload};
use super::errors::Fail;
use super::listen::{Ending, Listening, Wake};

/// Runs `starling rr`; the exit status.
pub(crate) async fn run(mut cfg: Config) -> Result<u8, Fail> {
    let (Some(topic), Some(payload), Some(response_topic)) = (
        cfg.topic.clone(),
        cfg.payload.clone(),
        cfg.response_topic.clone(),
    ) else {
        return Err(Fail::usage(
            "Error: All of topic, message, and response topic must be supplied.\n",
        ));
    };
    cfg.properties.add_response_topic(&response_topic);
    if cfg.properties.check().is_err() {
        return Err(Fail::plain(
            "Error in PUBLISH properties: Duplicate response topic.\n",
            1,
        ));
    }
    let payload = match payload {
        Payload::Message(m) => m,
        Payload::Null => Vec::new(),
        Payload::File(path) => std::fs::read(&path).map_err(|_| {
            let name = path.display();
            Fail::plain(
                format!("Error: Unable to open file \"{name}\".\nError loading input file \"{name}\".\n"),
                1,
            )
        })?,
        Payload::Stdin => {
            let mut data = Vec::new();
            let _ = tokio::io::stdin().read_to_end(&mut data).await;
            if data.is_empty() {
                return Err(Fail::plain(
                    "Error: Zero length input.\nError loading input from stdin.\n",
                    1,
                ));
            }
            data
        }
        Payload::Lines => unreachable!("-l is not an option of rr"),
    };
    let properties = if cfg.version.is_v5() {
        cfg.properties.publish().map_err(|m| Fail::plain(m, 1))?
    } else {
        PublishProperties::default()
    };
    let subscribe_props = cfg.properties.subscribe().map_err(|m| Fail::plain(m, 1))?;
    let request = Message::new(
        TopicName::try_from(topic.as_str()).map_err(|e| Fail::plain(format!("Error: {e}\n"), 1))?,
        Bytes::from(payload),
        cfg.qos,
    )
    .properties(properties);
    let response = TopicFilter::try_from(response_topic.as_str())
        .map_err(|e| Fail::plain(format!("Error: {e}\n"), 1))?;
    let deadline = cfg
        .timeout
        .map(|s| Instant::now() + std::time::Duration::from_secs(u64::from(s)));
    let mut listening = Listening::connect(&cfg, deadline).await?;
    // mosquitto_rr subscribes with options 0 whatever -R and --retain-as-published say.
    let client = listening.client.clone();
    let request = Arc::new(request);
    let send = tokio::spawn(async move {
        let suback = client
            .subscribe(
                vec![(response, SubscriptionOptions::new(request.qos))],
                subscribe_props,
            )
            .await?;
        if suback.reason_codes.first().is_some_and(|c| !c.is_error()) {
            match client.publish_with((*request).clone()).await {
                Ok(_) | Err(starling_client::Error::Rejected { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    let ending = loop {
        match listening.wait(deadline).await {
            Wake::Reconnected => continue,
            Wake::End(ending) => break ending,
        }
    };
    let ending = match ending {
        // A request that could not be sent is the failure to report.
        Ending::Lost(e) if send.is_finished() => match send.await {
            Ok(Err(send_error)) => Ending::Lost(send_error),
            _ => Ending::Lost(e),
        },
        other => other,
    };
    listening.finish(&cfg, ending).await
}
