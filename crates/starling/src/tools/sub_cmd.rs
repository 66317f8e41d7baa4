//! `starling sub`: mosquitto_sub. Connects, subscribes to every `-t` filter in
//! one SUBSCRIBE and sends one UNSUBSCRIBE per `-U` right after, prints what
//! arrives (see [`receive`](super::receive)) until `-C`, `-E`,
//! `--retained-only`, `-W` or a signal ends it, and subscribes again after each
//! reconnection (the connection is retried every second, as Mosquitto's loop
//! does).

use starling_client::{Client, RetainHandling, SubscriptionOptions, TopicFilter};
use starling_proto::property::{SubscribeProperties, UnsubscribeProperties};
use tokio::time::Instant;

use super::args::Config;
use super::errors::Fail;
use super::listen::{start, Listening, Wake};

/// Runs `starling sub`; the exit status.
pub(crate) async fn run(cfg: Config) -> Result<u8, Fail> {
    if cfg.no_retain && cfg.retained_only {
        return Err(Fail {
            message: "\nError: Combining '-R' and '--retained-only' makes no sense.\n".to_owned(),
            usage_hint: false,
            quiet_suppresses: false,
            code: 1,
        });
    }
    let subscribe_props = cfg.properties.subscribe().map_err(|m| Fail::plain(m, 1))?;
    let unsubscribe_props = cfg
        .properties
        .unsubscribe()
        .map_err(|m| Fail::plain(m, 1))?;
    let mut options = SubscriptionOptions::new(cfg.qos);
    if cfg.version.is_v5() {
        options.retain_as_published = cfg.retain_as_published;
        if cfg.no_retain {
            options.retain_handling = RetainHandling::DoNotSend;
        }
    }
    let filters: Vec<(TopicFilter, SubscriptionOptions)> = cfg
        .topics
        .iter()
        .filter_map(|t| TopicFilter::try_from(t.as_str()).ok())
        .map(|f| (f, options))
        .collect();
    let unsubscribe: Vec<TopicFilter> = cfg
        .unsub_topics
        .iter()
        .filter_map(|t| TopicFilter::try_from(t.as_str()).ok())
        .collect();
    let deadline = cfg
        .timeout
        .map(|s| Instant::now() + std::time::Duration::from_secs(u64::from(s)));
    let mut listening = Listening::connect(&cfg, deadline).await?;
    loop {
        subscribe(
            &listening.client,
            &filters,
            &subscribe_props,
            &unsubscribe,
            &unsubscribe_props,
        );
        match listening.wait(deadline).await {
            Wake::Reconnected => continue,
            Wake::End(ending) => return listening.finish(&cfg, ending).await,
        }
    }
}

/// Sends the SUBSCRIBE and then the UNSUBSCRIBEs, in that order, without
/// waiting for their answers (the receiver handles the SUBACK).
fn subscribe(
    client: &Client,
    filters: &[(TopicFilter, SubscriptionOptions)],
    properties: &SubscribeProperties,
    unsubscribe: &[TopicFilter],
    unsubscribe_props: &UnsubscribeProperties,
) {
    let mut requests = Vec::new();
    let c = client.clone();
    let (f, p) = (filters.to_vec(), properties.clone());
    requests.push(Box::pin(async move { c.subscribe(f, p).await.map(drop) })
        as std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>>);
    for filter in unsubscribe {
        let c = client.clone();
        let (f, p) = (vec![filter.clone()], unsubscribe_props.clone());
        requests.push(Box::pin(async move { c.unsubscribe(f, p).await.map(drop) }));
    }
    tokio::spawn(async move {
        let mut waiting = Vec::new();
        for mut request in requests {
            if start(&mut request).await.is_none() {
                waiting.push(request);
            }
        }
        // Failures (a connection lost meanwhile) are retried on reconnection.
        for request in waiting {
            let _ = request.await;
        }
    });
}
