//! TLS listeners (mosquitto.conf(5), "Certificate based SSL/TLS Support"):
//! MQTT over TLS, client certificates required and checked (untrusted,
//! expired and revoked ones refused during the handshake), user names from
//! certificates, the oldest TLS version, and reloading the certificates while
//! clients stay connected. Certificates are made by `openssl` for each test.

mod common;

use common::*;
use starling_broker::config::{TlsSettings, TlsVersion};
use starling_broker::Config;
use starling_client::{Client, ClientOptions, Event, QoS, TlsOptions};
use starling_proto::{Packet, ProtocolVersion, ReasonCode};

/// Connects over TLS as `client`, sends CONNECT and returns the CONNACK, or
/// why there was none (a refused handshake shows up here: with TLS 1.3 the
/// client only learns of it when it reads).
async fn mqtt_over_tls(
    served: &Served,
    pki: &Pki,
    client: Option<&Issued>,
    version: ProtocolVersion,
) -> Result<starling_proto::ConnAck, String> {
    let stream = tls_connect(served.addr(), &pki.ca(), client, None)
        .await
        .map_err(|e| e.to_string())?;
    let mut raw = Raw::new(stream, version);
    raw.connect("tls-client").await
}

#[tokio::test]
async fn mqtt_over_tls_with_our_client_library() {
    let pki = Pki::new("tls-basic");
    let served = Served::one(Config::default(), with_tls(tls(&pki))).await;
    let url = format!("mqtts://127.0.0.1:{}", served.addr().port());
    let tls_options = TlsOptions::new().cafile(pki.ca());
    let (subscriber, mut events) =
        Client::connect(ClientOptions::new(&url).unwrap().tls(tls_options.clone()))
            .await
            .expect("TLS connection");
    subscriber
        .subscribe_one("tls/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let (publisher, _publisher_events) = Client::connect(
        ClientOptions::new(&url)
            .unwrap()
            .version(ProtocolVersion::V5)
            .tls(tls_options),
    )
    .await
    .expect("TLS connection");
    // A payload larger than a TLS record crosses several of them.
    let payload = vec![b'x'; 40_000];
    publisher
        .publish("tls/big", payload.clone(), QoS::ExactlyOnce, false)
        .await
        .unwrap();
    let message = loop {
        match tokio::time::timeout(WAIT, events.recv()).await.unwrap() {
            Some(Event::Message(message)) => break message,
            Some(_) => continue,
            None => panic!("events ended"),
        }
    };
    assert_eq!(message.topic.as_str(), "tls/big");
    assert_eq!(message.payload.len(), payload.len());
    publisher.disconnect().await.unwrap();
    subscriber.disconnect().await.unwrap();
    served.stop().await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_broker_fails_the_handshake() {
    let pki = Pki::new("tls-distrust");
    let served = Served::one(Config::default(), with_tls(tls(&pki))).await;
    // The client trusts another CA only.
    let result = Client::connect(
        ClientOptions::new(&format!("mqtts://127.0.0.1:{}", served.addr().port()))
            .unwrap()
            .tls(TlsOptions::new().cafile(pki.new_ca())),
    )
    .await;
    let error = result.expect_err("untrusted server").to_string();
    assert!(error.contains("TLS"), "{error}");
    // A client that verifies the name: the certificate names 127.0.0.1 and
    // localhost, not other.example, unless insecure.
    let wrong_name = TlsOptions::new()
        .cafile(pki.ca())
        .server_name("other.example");
    let url = format!("mqtts://127.0.0.1:{}", served.addr().port());
    assert!(
        Client::connect(ClientOptions::new(&url).unwrap().tls(wrong_name.clone()))
            .await
            .is_err()
    );
    let (client, _events) = Client::connect(
        ClientOptions::new(&url)
            .unwrap()
            .tls(wrong_name.insecure(true)),
    )
    .await
    .expect("insecure skips the name check");
    client.disconnect().await.unwrap();
    served.stop().await;
}

#[tokio::test]
async fn require_certificate_refuses_missing_untrusted_expired_and_revoked_certificates() {
    let pki = Pki::new("tls-require");
    let settings = TlsSettings {
        crlfile: Some(pki.crl()),
        ..mutual_tls(&pki)
    };
    let served = Served::one(Config::default(), with_tls(settings)).await;
    let v = ProtocolVersion::V3_1_1;
    let ack = mqtt_over_tls(&served, &pki, Some(&pki.alice()), v)
        .await
        .expect("a trusted certificate");
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    for (what, client) in [
        ("no certificate", None),
        ("another CA's", Some(pki.untrusted())),
        ("an expired one", Some(pki.expired())),
        ("a revoked one", Some(pki.mallory())),
    ] {
        let result = mqtt_over_tls(&served, &pki, client.as_ref(), v).await;
        assert!(result.is_err(), "{what} was let in: {result:?}");
    }
    // With TLS 1.2 the client sees the refusal in the handshake itself.
    for client in [pki.untrusted(), pki.expired(), pki.mallory()] {
        let handshake = tls_connect(
            served.addr(),
            &pki.ca(),
            Some(&client),
            Some(TlsVersion::Tls12),
        )
        .await;
        assert!(handshake.is_err(), "{} accepted", client.cert.display());
    }
    served.stop().await;

    // The same revoked certificate without the CRL: only revocation kept it out.
    let served = Served::one(Config::default(), with_tls(mutual_tls(&pki))).await;
    let ack = mqtt_over_tls(&served, &pki, Some(&pki.mallory()), v).await;
    assert!(ack.is_ok(), "{ack:?}");
    served.stop().await;
}

/// As Mosquitto: without `require_certificate` the server asks for no
/// client certificate (`SSL_VERIFY_NONE`), so none is checked.
#[tokio::test]
async fn without_require_certificate_no_client_certificate_is_asked_for() {
    let pki = Pki::new("tls-optional");
    let settings = TlsSettings {
        require_certificate: false,
        ..mutual_tls(&pki)
    };
    let served = Served::one(Config::default(), with_tls(settings)).await;
    let v = ProtocolVersion::V5;
    assert!(mqtt_over_tls(&served, &pki, None, v).await.is_ok());
    assert!(mqtt_over_tls(&served, &pki, Some(&pki.alice()), v)
        .await
        .is_ok());
    assert!(mqtt_over_tls(&served, &pki, Some(&pki.untrusted()), v)
        .await
        .is_ok());
    served.stop().await;
}

#[tokio::test]
async fn capath_is_a_directory_of_cas() {
    let pki = Pki::new("tls-capath");
    let dir = pki.path("capath");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(pki.ca(), dir.join("ca.pem")).unwrap();
    // OpenSSL finds CAs in a directory by subject hash, as Mosquitto's users
    // lay it out (`openssl rehash`, `c_rehash`).
    pki.openssl(&["rehash", "capath"]);
    let settings = TlsSettings {
        cafile: None,
        capath: Some(dir),
        ..mutual_tls(&pki)
    };
    let served = Served::one(Config::default(), with_tls(settings)).await;
    let v = ProtocolVersion::V3_1_1;
    assert!(mqtt_over_tls(&served, &pki, Some(&pki.alice()), v)
        .await
        .is_ok());
    assert!(mqtt_over_tls(&served, &pki, Some(&pki.untrusted()), v)
        .await
        .is_err());
    served.stop().await;
}

#[tokio::test]
async fn use_identity_as_username_lets_in_without_a_password() {
    let pki = Pki::new("tls-identity");
    let settings = TlsSettings {
        use_identity_as_username: true,
        ..mutual_tls(&pki)
    };
    // Anonymous clients are refused: only the certificate's name lets in.
    let config = Config {
        allow_anonymous: false,
        ..Config::default()
    };
    let served = Served::one(config, with_tls(settings)).await;
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let ack = mqtt_over_tls(&served, &pki, Some(&pki.alice()), version)
            .await
            .expect("CONNACK");
        assert_eq!(ack.reason_code, ReasonCode::SUCCESS, "{version:?}");
    }
    served.stop().await;

    // A listener that takes names from certificates but does not require
    // one refuses, at CONNECT, a client that has none (Not Authorized).
    let settings = TlsSettings {
        use_identity_as_username: true,
        require_certificate: false,
        ..mutual_tls(&pki)
    };
    let served = Served::one(Config::default(), with_tls(settings)).await;
    let ack = mqtt_over_tls(&served, &pki, None, ProtocolVersion::V5)
        .await
        .expect("CONNACK");
    assert_eq!(ack.reason_code, ReasonCode::NOT_AUTHORIZED);
    let ack = mqtt_over_tls(&served, &pki, None, ProtocolVersion::V3_1_1)
        .await
        .expect("CONNACK");
    assert_eq!(ack.reason_code, ReasonCode::NOT_AUTHORIZED);
    served.stop().await;
}

#[tokio::test]
async fn tls_version_1_3_refuses_tls_1_2_clients() {
    let pki = Pki::new("tls-version");
    let settings = TlsSettings {
        min_version: TlsVersion::Tls13,
        ..tls(&pki)
    };
    let served = Served::one(Config::default(), with_tls(settings)).await;
    assert!(
        tls_connect(served.addr(), &pki.ca(), None, Some(TlsVersion::Tls12))
            .await
            .is_err()
    );
    let stream = tls_connect(served.addr(), &pki.ca(), None, Some(TlsVersion::Tls13))
        .await
        .expect("TLS 1.3");
    let mut raw = Raw::new(stream, ProtocolVersion::V3_1_1);
    assert!(raw.connect("v13").await.is_ok());
    served.stop().await;
}

#[tokio::test]
async fn reloading_swaps_the_certificate_for_new_connections_only() {
    let pki = Pki::new("tls-reload");
    // The listener's files are copies the test replaces.
    let certfile = pki.path("live.pem");
    let keyfile = pki.path("live.key");
    std::fs::copy(pki.server().cert, &certfile).unwrap();
    std::fs::copy(pki.server().key, &keyfile).unwrap();
    let settings = TlsSettings {
        certfile: Some(certfile.clone()),
        keyfile: Some(keyfile.clone()),
        ..tls(&pki)
    };
    let served = Served::one(Config::default(), with_tls(settings)).await;

    // A client connected before the reload, subscribed.
    let stream = tls_connect(served.addr(), &pki.ca(), None, None)
        .await
        .unwrap();
    let mut old = Raw::new(stream, ProtocolVersion::V3_1_1);
    old.connect("before-reload").await.unwrap();
    old.send(Packet::Subscribe(starling_proto::Subscribe {
        packet_id: starling_proto::PacketId::new(1).unwrap(),
        filters: vec![(
            starling_proto::TopicFilter::try_from("reload/#").unwrap(),
            starling_proto::SubscriptionOptions::new(QoS::AtMostOnce),
        )],
        properties: Default::default(),
    }))
    .await;
    assert!(matches!(old.recv().await, Packet::SubAck(_)));

    // Before the reload, the new CA's clients do not trust the broker.
    assert!(tls_connect(served.addr(), &pki.new_ca(), None, None)
        .await
        .is_err());

    // A broken file keeps the certificate in force.
    std::fs::write(&certfile, "not a certificate").unwrap();
    assert!(served.broker.reload_tls().is_err());
    assert!(tls_connect(served.addr(), &pki.ca(), None, None)
        .await
        .is_ok());

    std::fs::copy(pki.new_server().cert, &certfile).unwrap();
    std::fs::copy(pki.new_server().key, &keyfile).unwrap();
    assert_eq!(served.broker.reload_tls().expect("reloaded"), 1);

    // New connections get the new certificate...
    assert!(tls_connect(served.addr(), &pki.ca(), None, None)
        .await
        .is_err());
    let url = format!("mqtts://localhost:{}", served.addr().port());
    let (publisher, _events) = Client::connect(
        ClientOptions::new(&url)
            .unwrap()
            .tls(TlsOptions::new().cafile(pki.new_ca())),
    )
    .await
    .expect("the new certificate");
    // ...and the old connection is still there.
    publisher
        .publish("reload/x", "after", QoS::AtLeastOnce, false)
        .await
        .unwrap();
    match old.recv().await {
        Packet::Publish(publish) => assert_eq!(&publish.payload[..], b"after"),
        other => panic!("expected PUBLISH, got {other:?}"),
    }
    publisher.disconnect().await.unwrap();
    served.stop().await;
}

#[tokio::test]
async fn an_unusable_certificate_or_key_is_an_error_at_start() {
    let pki = Pki::new("tls-errors");
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bind = socket.local_addr().unwrap();
    let mut settings = tls(&pki);
    settings.keyfile = Some(pki.alice().key); // not the certificate's key
    let listener = starling_broker::config::Listener {
        settings: with_tls(settings),
        ..starling_broker::config::Listener::new(bind)
    };
    let error = starling_broker::transport::Endpoint::new(socket, listener)
        .expect_err("mismatched key")
        .to_string();
    assert!(
        error.contains("alice.key") && error.contains("key does not match certificate"),
        "{error}"
    );

    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut settings = tls(&pki);
    settings.certfile = Some(pki.path("missing.pem"));
    let listener = starling_broker::config::Listener {
        settings: with_tls(settings),
        ..starling_broker::config::Listener::new(bind)
    };
    let error = starling_broker::transport::Endpoint::new(socket, listener)
        .expect_err("missing file")
        .to_string();
    assert!(
        error.contains("missing.pem") && error.contains("cannot read"),
        "{error}"
    );
}

/// A TLS-PSK client of `identity` with `key` (no certificate checked, as
/// `mosquitto_pub --psk` does), sending CONNECT.
async fn mqtt_over_psk(
    served: &Served,
    identity: &str,
    key: &[u8],
) -> Result<starling_proto::ConnAck, String> {
    let settings = starling_transport::tls::ClientSettings {
        psk: Some(starling_transport::tls::Psk {
            identity: identity.into(),
            key: key.to_vec(),
        }),
        ..Default::default()
    };
    let context = starling_transport::tls::ClientTls::new(&settings).map_err(|e| e.to_string())?;
    let tcp = tokio::net::TcpStream::connect(served.addr())
        .await
        .map_err(|e| e.to_string())?;
    let stream = context
        .connect("127.0.0.1", tcp)
        .await
        .map_err(|e| e.to_string())?;
    let mut raw = Raw::new(stream, ProtocolVersion::V5);
    raw.connect("psk-client").await
}

/// mosquitto.conf(5) `psk_hint`, `psk_file`: a listener with no certificate
/// takes clients by pre-shared key; the identity is the user name with
/// `use_identity_as_username`; a wrong key or an unknown identity fails the
/// handshake; a reload (SIGHUP) reads the file again for new handshakes.
#[tokio::test]
async fn pre_shared_keys_from_psk_file_with_the_identity_as_user_name() {
    let pki = Pki::new("tls-psk");
    let psk_file = pki.path("psk");
    std::fs::write(
        &psk_file,
        "# devices\nsensor-1:00112233445566778899aabbccddeeff\n",
    )
    .unwrap();
    let acl = pki.path("acl");
    // Only sensor-1 may publish to its topic: the identity is its user name.
    std::fs::write(&acl, "user sensor-1\ntopic readwrite sensors/1/#\n").unwrap();
    let config = Config {
        psk_file: Some(psk_file.clone()),
        acl_file: Some(acl),
        allow_anonymous: false,
        ..Config::default()
    };
    let settings = TlsSettings {
        certfile: None,
        keyfile: None,
        psk_hint: Some("starling".into()),
        use_identity_as_username: true,
        ..tls(&pki)
    };
    let served = Served::one(config.clone(), with_tls(settings)).await;
    let key = [
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee,
        0xff,
    ];
    let ack = mqtt_over_psk(&served, "sensor-1", &key)
        .await
        .expect("the right key");
    // Anonymous clients are refused: the identity made it a named one.
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    assert!(mqtt_over_psk(&served, "sensor-1", &[1, 2, 3])
        .await
        .is_err());
    assert!(mqtt_over_psk(&served, "sensor-2", &key).await.is_err());

    // A new key for sensor-1 and a new device, read on reload.
    std::fs::write(&psk_file, "sensor-1:0102\nsensor-2:0a0b0c\n").unwrap();
    served.broker.reload(&config).expect("reloaded");
    assert!(mqtt_over_psk(&served, "sensor-1", &key).await.is_err());
    assert!(mqtt_over_psk(&served, "sensor-1", &[1, 2]).await.is_ok());
    assert!(mqtt_over_psk(&served, "sensor-2", &[0x0a, 0x0b, 0x0c])
        .await
        .is_ok());
    served.stop().await;
}

/// As OpenSSL builds the chain for Mosquitto: a `certfile` that holds only the
/// server's own certificate is sent with the intermediate CA found in
/// `cafile`, so a client that trusts the root alone verifies it.
#[tokio::test]
async fn the_chain_is_completed_from_cafile() {
    let pki = Pki::new("tls-chain");
    for key in ["inter.key", "leaf.key"] {
        pki.openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            key,
        ]);
    }
    let sign = |csr: &str, ca: &str, ca_key: &str, ext: &str, out: &str| {
        pki.openssl(&[
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            ca,
            "-CAkey",
            ca_key,
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            "ca.cnf",
            "-extensions",
            ext,
            "-out",
            out,
        ]);
    };
    let request = |key: &str, subject: &str, out: &str| {
        pki.openssl(&[
            "req", "-new", "-config", "ca.cnf", "-key", key, "-subj", subject, "-out", out,
        ]);
    };
    request("inter.key", "/CN=Starling Intermediate", "inter.csr");
    sign("inter.csr", "ca.pem", "ca.key", "ca_ext", "inter.pem");
    request("leaf.key", "/CN=localhost", "leaf.csr");
    sign(
        "leaf.csr",
        "inter.pem",
        "inter.key",
        "server_ext",
        "leaf.pem",
    );
    let both = [
        std::fs::read_to_string(pki.ca()).unwrap(),
        std::fs::read_to_string(pki.path("inter.pem")).unwrap(),
    ]
    .concat();
    std::fs::write(pki.path("chain.pem"), both).unwrap();

    let leaf_only = TlsSettings {
        certfile: Some(pki.path("leaf.pem")),
        keyfile: Some(pki.path("leaf.key")),
        ..tls(&pki)
    };
    // Without the intermediate anywhere, the client cannot build the chain.
    let served = Served::one(Config::default(), with_tls(leaf_only.clone())).await;
    let error = tls_connect(served.addr(), &pki.ca(), None, None)
        .await
        .expect_err("no intermediate");
    assert!(
        error
            .to_string()
            .contains("unable to get local issuer certificate"),
        "{error}"
    );
    served.stop().await;

    let with_cafile = TlsSettings {
        cafile: Some(pki.path("chain.pem")),
        ..leaf_only
    };
    let served = Served::one(Config::default(), with_tls(with_cafile)).await;
    let stream = tls_connect(served.addr(), &pki.ca(), None, None)
        .await
        .expect("the intermediate is sent");
    let mut raw = Raw::new(stream, ProtocolVersion::V3_1_1);
    assert!(raw.connect("chained").await.is_ok());
    served.stop().await;
}

/// `ciphers` is an OpenSSL expression and `tls_version` a minimum: a TLS 1.2
/// client offering only a suite the listener excludes fails; one it allows
/// connects, and so does TLS 1.3.
#[tokio::test]
async fn ciphers_restrict_what_tls_1_2_clients_can_negotiate() {
    let pki = Pki::new("tls-ciphers");
    let settings = TlsSettings {
        ciphers: Some("ECDHE-ECDSA-AES256-GCM-SHA384:!aNULL".into()),
        ..tls(&pki)
    };
    let served = Served::one(Config::default(), with_tls(settings)).await;
    let connect = |ciphers: &str, version: TlsVersion| {
        let settings = starling_transport::tls::ClientSettings {
            cafile: Some(pki.ca()),
            ciphers: Some(ciphers.into()),
            min_version: version,
            max_version: Some(version),
            ..Default::default()
        };
        let addr = served.addr();
        async move {
            let context = starling_transport::tls::ClientTls::new(&settings).unwrap();
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            context.connect("localhost", tcp).await
        }
    };
    let refused = connect("ECDHE-ECDSA-AES128-GCM-SHA256", TlsVersion::Tls12)
        .await
        .expect_err("a suite the listener excludes");
    assert!(refused.reason.contains("handshake failure"), "{refused}");
    let allowed = connect("ECDHE-ECDSA-AES256-GCM-SHA384", TlsVersion::Tls12)
        .await
        .expect("the suite it allows");
    assert_eq!(allowed.version(), "TLSv1.2");
    assert_eq!(allowed.cipher(), Some("ECDHE-ECDSA-AES256-GCM-SHA384"));
    let tls13 = connect("DEFAULT", TlsVersion::Tls13)
        .await
        .expect("TLS 1.3");
    assert_eq!(tls13.version(), "TLSv1.3");
    // Closed before the broker stops: it waits for clients that have not
    // sent CONNECT until their connect timeout.
    drop((allowed, tls13));
    served.stop().await;
}

/// `dhparamfile`: finite-field DHE suites need DH parameters. Without them a
/// TLS 1.2 client offering only `DHE-RSA-AES256-GCM-SHA384` finds no shared
/// suite; with them it connects with that suite.
#[tokio::test]
async fn dhparamfile_enables_dhe_cipher_suites() {
    let pki = Pki::new("tls-dh");
    pki.openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "30",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost",
        "-keyout",
        "rsa.key",
        "-out",
        "rsa.pem",
    ]);
    pki.openssl(&[
        "genpkey",
        "-genparam",
        "-algorithm",
        "DH",
        "-pkeyopt",
        "group:ffdhe2048",
        "-out",
        "dh.pem",
    ]);
    let rsa = TlsSettings {
        certfile: Some(pki.path("rsa.pem")),
        keyfile: Some(pki.path("rsa.key")),
        ciphers: Some("DHE-RSA-AES256-GCM-SHA384".into()),
        ..tls(&pki)
    };
    let connect = |addr| {
        let settings = starling_transport::tls::ClientSettings {
            cafile: Some(pki.path("rsa.pem")),
            ciphers: Some("DHE-RSA-AES256-GCM-SHA384".into()),
            max_version: Some(TlsVersion::Tls12),
            ..Default::default()
        };
        async move {
            let context = starling_transport::tls::ClientTls::new(&settings).unwrap();
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            context.connect("localhost", tcp).await
        }
    };
    let served = Served::one(Config::default(), with_tls(rsa.clone())).await;
    assert!(connect(served.addr()).await.is_err(), "no DH parameters");
    served.stop().await;
    let with_dh = TlsSettings {
        dhparamfile: Some(pki.path("dh.pem")),
        ..rsa
    };
    let served = Served::one(Config::default(), with_tls(with_dh)).await;
    let stream = connect(served.addr())
        .await
        .expect("DHE with the parameters");
    assert_eq!(stream.cipher(), Some("DHE-RSA-AES256-GCM-SHA384"));
    drop(stream);
    served.stop().await;
}
