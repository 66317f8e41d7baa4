//! `protocol websockets` listeners (MQTT 5.0 §6.0, MQTT 3.1.1 §6): MQTT in
//! binary frames, packets split across frames or packed into one, the `mqtt`
//! subprotocol echoed, path and origin rules, frames bounded by the maximum
//! packet size; `ws://` and `wss://` with our client library.

mod common;

use std::num::NonZeroU32;

use common::*;
use futures_util::SinkExt;
use starling_broker::config::{ListenerSettings, Protocol, WebSocketSettings};
use starling_broker::Config;
use starling_client::{Client, ClientOptions, Event, QoS, TlsOptions};
use starling_proto::{Packet, ProtocolVersion, ReasonCode};
use starling_transport::WsStream;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

fn websockets(websockets: WebSocketSettings) -> ListenerSettings {
    ListenerSettings {
        protocol: Protocol::WebSockets,
        websockets,
        ..Default::default()
    }
}

/// Opens a WebSocket to `path` offering `subprotocol` (and `origin`), with the
/// HTTP status and `Sec-WebSocket-Protocol` the broker answered.
async fn open(
    served: &Served,
    path: &str,
    subprotocol: Option<&str>,
    origin: Option<&str>,
) -> Result<(WebSocketStream<TcpStream>, Option<String>), u16> {
    let url = format!("ws://{}{path}", served.addr());
    let mut request = url.into_client_request().unwrap();
    if let Some(subprotocol) = subprotocol {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(subprotocol).unwrap(),
        );
    }
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("Origin", HeaderValue::from_str(origin).unwrap());
    }
    let tcp = TcpStream::connect(served.addr()).await.unwrap();
    match tokio_tungstenite::client_async(request, tcp).await {
        Ok((socket, response)) => {
            let chosen = response
                .headers()
                .get("Sec-WebSocket-Protocol")
                .map(|v| v.to_str().unwrap().to_string());
            Ok((socket, chosen))
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(e) => panic!("handshake failed without a status: {e}"),
    }
}

async fn next_message(client: &mut starling_client::Events) -> starling_client::Message {
    loop {
        match tokio::time::timeout(WAIT, client.recv()).await.unwrap() {
            Some(Event::Message(message)) => return message,
            Some(_) => continue,
            None => panic!("events ended"),
        }
    }
}

#[tokio::test]
async fn our_client_over_ws_talks_to_a_tcp_client() {
    let served = Served::many(
        Config::default(),
        vec![websockets(Default::default()), ListenerSettings::default()],
    )
    .await;
    let ws_url = format!("ws://127.0.0.1:{}/mqtt", served.addrs[0].port());
    let tcp_url = format!("mqtt://127.0.0.1:{}", served.addrs[1].port());
    let (ws_client, mut ws_events) = Client::connect(
        ClientOptions::new(&ws_url)
            .unwrap()
            .version(ProtocolVersion::V5),
    )
    .await
    .expect("ws connection");
    ws_client
        .subscribe_one("ws/#", QoS::ExactlyOnce)
        .await
        .unwrap();
    let (tcp_client, mut tcp_events) = Client::connect(ClientOptions::new(&tcp_url).unwrap())
        .await
        .unwrap();
    tcp_client
        .subscribe_one("tcp/#", QoS::AtLeastOnce)
        .await
        .unwrap();

    let big = vec![7u8; 100_000];
    tcp_client
        .publish("ws/in", big.clone(), QoS::ExactlyOnce, false)
        .await
        .unwrap();
    assert_eq!(next_message(&mut ws_events).await.payload.len(), big.len());
    ws_client
        .publish("tcp/in", "from ws", QoS::AtLeastOnce, false)
        .await
        .unwrap();
    assert_eq!(&next_message(&mut tcp_events).await.payload[..], b"from ws");
    ws_client.disconnect().await.unwrap();
    tcp_client.disconnect().await.unwrap();
    served.stop().await;
}

#[tokio::test]
async fn our_client_over_wss() {
    let pki = Pki::new("wss");
    let settings = ListenerSettings {
        tls: Some(tls(&pki)),
        ..websockets(Default::default())
    };
    let served = Served::one(Config::default(), settings).await;
    let url = format!("wss://localhost:{}/mqtt", served.addr().port());
    let tls_options = TlsOptions::new().cafile(pki.ca());
    let (client, mut events) =
        Client::connect(ClientOptions::new(&url).unwrap().tls(tls_options.clone()))
            .await
            .expect("wss connection");
    client
        .subscribe_one("wss/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    client
        .publish("wss/echo", "over wss", QoS::AtLeastOnce, false)
        .await
        .unwrap();
    assert_eq!(&next_message(&mut events).await.payload[..], b"over wss");
    client.disconnect().await.unwrap();
    // Plain ws:// to a wss listener does not get in.
    let plain = format!("ws://localhost:{}/mqtt", served.addr().port());
    assert!(Client::connect(ClientOptions::new(&plain).unwrap())
        .await
        .is_err());
    served.stop().await;
}

#[tokio::test]
async fn packets_split_across_and_packed_into_frames() {
    let served = Served::one(Config::default(), websockets(Default::default())).await;
    let (socket, chosen) = open(&served, "/mqtt", Some("mqtt"), None).await.unwrap();
    // [MQTT-6.0.0-4]: the server returns the subprotocol `mqtt`.
    assert_eq!(chosen.as_deref(), Some("mqtt"));
    let mut raw = Raw::new(WsStream::new(socket), ProtocolVersion::V3_1_1);
    // CONNECT in three frames [MQTT-6.0.0-2].
    let mut connect = bytes::BytesMut::new();
    Packet::Connect(Box::new(common::connect(ProtocolVersion::V3_1_1, "split")))
        .encode(ProtocolVersion::V3_1_1, &mut connect)
        .unwrap();
    raw.send_bytes(&connect[..1]).await;
    raw.send_bytes(&connect[1..5]).await;
    raw.send_bytes(&connect[5..]).await;
    assert!(
        matches!(raw.recv().await, Packet::ConnAck(ack) if ack.reason_code == ReasonCode::SUCCESS)
    );
    // PINGREQ, PINGREQ and half a third in one frame, the rest in the next.
    raw.send_bytes(&[0xC0, 0x00, 0xC0, 0x00, 0xC0]).await;
    raw.send_bytes(&[0x00]).await;
    for _ in 0..3 {
        assert_eq!(raw.recv().await, Packet::PingResp);
    }
    served.stop().await;
}

#[tokio::test]
async fn subprotocols_paths_and_origins() {
    let served = Served::one(Config::default(), websockets(Default::default())).await;
    // Mosquitto 2.0 accepts any path, MQTT 3.1's `mqttv3.1`, and no subprotocol.
    let (_, chosen) = open(&served, "/any/path", Some("mqttv3.1"), None)
        .await
        .unwrap();
    assert_eq!(chosen.as_deref(), Some("mqttv3.1"));
    let (_, chosen) = open(&served, "/", None, None).await.unwrap();
    assert_eq!(chosen, None);
    assert_eq!(
        open(&served, "/", Some("chat"), None).await.unwrap_err(),
        400
    );
    served.stop().await;

    let settings = websockets(WebSocketSettings {
        path: Some("/mqtt".into()),
        origins: vec!["https://app.example".into()],
    });
    let served = Served::one(Config::default(), settings).await;
    let origin = Some("https://app.example");
    assert!(open(&served, "/mqtt", Some("mqtt"), origin).await.is_ok());
    assert_eq!(
        open(&served, "/ws", Some("mqtt"), origin)
            .await
            .unwrap_err(),
        404
    );
    assert_eq!(
        open(&served, "/mqtt", Some("mqtt"), Some("https://evil.example"))
            .await
            .unwrap_err(),
        403
    );
    assert_eq!(
        open(&served, "/mqtt", Some("mqtt"), None)
            .await
            .unwrap_err(),
        403
    );
    served.stop().await;
}

#[tokio::test]
async fn a_text_frame_or_an_oversized_frame_closes_the_connection() {
    let config = Config {
        max_packet_size: NonZeroU32::new(1024),
        ..Config::default()
    };
    let served = Served::one(config, websockets(Default::default())).await;

    // [MQTT-6.0.0-1]: anything but binary frames closes the connection.
    let (mut socket, _) = open(&served, "/mqtt", Some("mqtt"), None).await.unwrap();
    socket.send(Message::text("CONNECT")).await.unwrap();
    let mut raw = Raw::new(WsStream::new(socket), ProtocolVersion::V3_1_1);
    assert!(raw.closed().await.is_empty());

    // A frame larger than the maximum packet size is refused before it is
    // buffered whole.
    let (socket, _) = open(&served, "/mqtt", Some("mqtt"), None).await.unwrap();
    let mut raw = Raw::new(WsStream::new(socket), ProtocolVersion::V5);
    let ack = raw.connect("big").await.unwrap();
    assert_eq!(ack.properties.maximum_packet_size, NonZeroU32::new(1024));
    raw.send_bytes(&vec![0u8; 4096]).await;
    assert!(raw.closed().await.is_empty());
    served.stop().await;
}
