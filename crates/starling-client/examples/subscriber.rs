//! Subscribes to a topic filter and prints each message as `topic payload`,
//! like `mosquitto_sub -v`, until interrupted (Ctrl-C disconnects cleanly).
//!
//! ```text
//! cargo run -p starling-client --example subscriber -- [URL] [FILTER] [QOS]
//! ```
//!
//! URL defaults to `mqtt://127.0.0.1:1883`, FILTER to `/ufscar/mqtt_activity`
//! (the `practical_activity` example's topic), QOS to 2. Connection events go
//! to standard error. The client reconnects with backoff if the connection is
//! lost, and subscribes again when the broker did not keep the session.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use starling_client::{Client, ClientOptions, Event, QoS};

#[tokio::main]
async fn main() -> Result<(), starling_client::Error> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "mqtt://127.0.0.1:1883".into());
    let filter = args
        .next()
        .unwrap_or_else(|| "/ufscar/mqtt_activity".into());
    let qos = match args.next().as_deref() {
        None | Some("2") => QoS::ExactlyOnce,
        Some("1") => QoS::AtLeastOnce,
        Some("0") => QoS::AtMostOnce,
        Some(other) => {
            eprintln!("QoS must be 0, 1 or 2, not {other}");
            std::process::exit(2);
        }
    };

    let (client, mut events) = Client::connect(ClientOptions::new(&url)?).await?;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(Event::Message(message)) => {
                    println!("{} {}", message.topic, String::from_utf8_lossy(&message.payload));
                }
                Some(Event::Connected { session_present, .. }) => {
                    eprintln!("connected to {url} as {:?}", client.client_id().as_str());
                    if !session_present {
                        let granted = client.subscribe_one(&filter, qos).await?;
                        eprintln!("subscribed to {filter}: {:?}", granted.reason_codes);
                    }
                }
                Some(Event::Disconnected { reason }) => eprintln!("disconnected: {reason}"),
                Some(_) => {}
                None => break,
            },
            _ = tokio::signal::ctrl_c() => {
                client.disconnect().await?;
                break;
            }
        }
    }
    Ok(())
}
