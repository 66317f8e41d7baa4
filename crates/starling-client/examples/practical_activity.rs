//! The publisher of the MQTT practical activity (UFSCar, "MQTT Last Will
//! Implementation"), on Starling's client instead of Paho.
//!
//! As in the activity, the will is set before connecting (it travels in
//! CONNECT): topic `/ufscar/mqtt_activity`, "Publisher disconnected", QoS 1.
//! Then one message at each QoS, each awaited to the end of its flow:
//! "First Message" at QoS 0, "Second Message" at QoS 1 (PUBACK), "Third
//! Message" at QoS 2 (PUBREC, PUBREL, PUBCOMP).
//!
//! ```text
//! cargo run -p starling-client --example practical_activity -- [URL] [--abrupt]
//! ```
//!
//! URL defaults to `mqtt://127.0.0.1:1883`. The publisher disconnects cleanly,
//! so the broker discards the will; with `--abrupt` it exits without
//! DISCONNECT and the broker publishes the will (watch it with the
//! `subscriber` example).

#![allow(clippy::print_stdout)]

use std::time::Duration;

use starling_client::{Client, ClientOptions, LastWill, ProtocolVersion, QoS};

const TOPIC: &str = "/ufscar/mqtt_activity";
const LAST_WILL_MESSAGE: &str = "Publisher disconnected";
const LAST_WILL_QOS: QoS = QoS::AtLeastOnce;

#[tokio::main]
async fn main() -> Result<(), starling_client::Error> {
    let mut url = "mqtt://127.0.0.1:1883".to_owned();
    let mut abrupt = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--abrupt" => abrupt = true,
            _ => url = arg,
        }
    }

    // The will is part of the options, so it is set before connecting.
    let options = ClientOptions::new(&url)?
        .version(ProtocolVersion::V3_1_1)
        .keep_alive(Duration::from_secs(60))
        .last_will(LastWill::new(TOPIC, LAST_WILL_MESSAGE, LAST_WILL_QOS));
    let (client, _events) = Client::connect(options).await?;

    for (message, qos) in [
        ("First Message", QoS::AtMostOnce),
        ("Second Message", QoS::AtLeastOnce),
        ("Third Message", QoS::ExactlyOnce),
    ] {
        let published = client.publish(TOPIC, message, qos, false).await?;
        println!("Sent message - id: {}, QoS: {}", published.message_id, qos);
    }

    if abrupt {
        // No DISCONNECT: the operating system closes the socket and the
        // broker publishes the will.
        std::process::exit(0);
    }
    client.disconnect().await
}
