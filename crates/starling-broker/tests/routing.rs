//! Routing over real sockets: wildcard matching, `$` topics, overlapping
//! subscriptions, replacing and removing subscriptions, SUBACK and UNSUBACK
//! codes, No Local, Retain As Published and `upgrade_outgoing_qos`, for 3.1.1
//! and 5.0 clients where they differ.

mod common;

use common::*;
use starling_broker::Config;
use starling_proto::{QoS, ReasonCode};

fn topics(received: &[starling_proto::Publish]) -> Vec<String> {
    let mut names: Vec<String> = received.iter().map(|p| p.topic.to_string()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn plus_matches_one_level_and_hash_matches_the_rest() {
    // MQTT 5.0 §4.7.1.2 and §4.7.1.3 (the matching rules carry no statement id;
    // [MQTT-4.7.1-1] and [MQTT-4.7.1-2] are the filter syntax they rely on):
    // `#` matches the parent level and any below, `+` exactly one, an empty one too.
    let broker = TestBroker::start().await;
    for version in [V3_1_1, V5] {
        let filters = ["sport/+", "sport/#", "+/tennis/#", "#", "+/+"];
        let mut subs = Vec::new();
        for (i, filter) in filters.iter().enumerate() {
            let mut sub = connected(&broker, version, &format!("wild-{version:?}-{i}")).await;
            subscribe_one(&mut sub, filter, opts(QoS::AtMostOnce)).await;
            subs.push(sub);
        }
        let mut publisher = connected(&broker, version, &format!("wild-pub-{version:?}")).await;
        for name in [
            "sport",
            "sport/tennis",
            "sport/tennis/player1",
            "sport/",
            "/finance",
        ] {
            publish_flow(
                &mut publisher,
                message(name, name.to_owned(), QoS::AtMostOnce, 0),
            )
            .await;
        }
        let expected: [&[&str]; 5] = [
            &["sport/", "sport/tennis"],
            &["sport", "sport/", "sport/tennis", "sport/tennis/player1"],
            &["sport/tennis", "sport/tennis/player1"],
            &[
                "/finance",
                "sport",
                "sport/",
                "sport/tennis",
                "sport/tennis/player1",
            ],
            &["/finance", "sport/", "sport/tennis"],
        ];
        for ((sub, filter), want) in subs.iter_mut().zip(filters).zip(expected) {
            assert_eq!(topics(&drain(sub).await), want, "{version:?} {filter}");
        }
    }
    broker.stop().await;
}

#[tokio::test]
async fn dollar_topics_are_not_matched_by_leading_wildcards() {
    // [MQTT-4.7.2-1]: `#` and `+/...` do not match a topic starting with `$`;
    // a filter starting with the `$` level does.
    let broker = TestBroker::start().await;
    let mut sub = connected(&broker, V5, "dollar-sub").await;
    for (i, filter) in ["#", "+/x", "+/+", "$app/#", "$app/+"].iter().enumerate() {
        let n = i as u16 + 1;
        let codes = subscribe(
            &mut sub,
            n,
            &[(filter, opts(QoS::AtMostOnce))],
            Some(n.into()),
        )
        .await;
        assert_eq!(codes, vec![ReasonCode::GRANTED_QOS_0]);
    }
    let mut old = connected(&broker, V3_1_1, "dollar-old").await;
    subscribe_one(&mut old, "#", opts(QoS::AtMostOnce)).await;
    subscribe_one(&mut old, "+/x", opts(QoS::AtMostOnce)).await;

    let mut publisher = connected(&broker, V5, "dollar-pub").await;
    publish_flow(
        &mut publisher,
        message("$app/x", "system", QoS::AtMostOnce, 0),
    )
    .await;
    publish_flow(
        &mut publisher,
        message("app/x", "plain", QoS::AtMostOnce, 0),
    )
    .await;

    let got = drain(&mut sub).await;
    assert_eq!(got.len(), 2, "one copy of each: {got:?}");
    assert_eq!(got[0].topic.as_str(), "$app/x");
    assert_eq!(
        sub_ids(&got[0]),
        vec![4, 5],
        "only the `$app/...` filters matched"
    );
    assert_eq!(got[1].topic.as_str(), "app/x");
    assert_eq!(sub_ids(&got[1]), vec![1, 2, 3]);

    let got = drain(&mut old).await;
    assert_eq!(
        topics(&got),
        vec!["app/x"],
        "3.1.1 client: [MQTT-4.7.2-1] and [MQTT-3.3.5-1]"
    );
    broker.stop().await;
}

#[tokio::test]
async fn overlapping_subscriptions_give_one_copy_at_the_highest_qos_with_every_identifier() {
    // [MQTT-3.3.4-2], [MQTT-3.3.4-3], [MQTT-3.3.4-4]; [MQTT-3.8.4-8] caps the QoS
    // at the message's.
    let broker = TestBroker::start().await;
    let mut sub = connected(&broker, V5, "overlap-sub").await;
    subscribe(&mut sub, 1, &[("ov/+", opts(QoS::AtMostOnce))], Some(7)).await;
    subscribe(&mut sub, 2, &[("ov/#", opts(QoS::ExactlyOnce))], Some(9)).await;
    subscribe(&mut sub, 3, &[("ov/a", opts(QoS::AtLeastOnce))], None).await;
    let mut publisher = connected(&broker, V5, "overlap-pub").await;

    publish_flow(&mut publisher, message("ov/a", "q2", QoS::ExactlyOnce, 1)).await;
    let got = receive(&mut sub).await;
    assert_eq!(got.qos(), QoS::ExactlyOnce);
    assert_eq!(sub_ids(&got), vec![7, 9]);

    publish_flow(&mut publisher, message("ov/a", "q1", QoS::AtLeastOnce, 2)).await;
    let got = receive(&mut sub).await;
    assert_eq!((text(&got).as_str(), got.qos()), ("q1", QoS::AtLeastOnce));
    assert_eq!(sub_ids(&got), vec![7, 9]);

    // Only `ov/#` matches one level further down.
    publish_flow(
        &mut publisher,
        message("ov/a/b", "deep", QoS::ExactlyOnce, 3),
    )
    .await;
    let got = receive(&mut sub).await;
    assert_eq!((text(&got).as_str(), got.qos()), ("deep", QoS::ExactlyOnce));
    assert_eq!(sub_ids(&got), vec![9]);
    sub.expect_nothing(QUIET).await;
    broker.stop().await;
}

#[tokio::test]
async fn overlapping_subscriptions_of_a_3_1_1_client_give_the_highest_qos() {
    // [MQTT-3.3.5-1] of 3.1.1.
    let broker = TestBroker::start().await;
    let mut sub = connected(&broker, V3_1_1, "overlap-old").await;
    subscribe_one(&mut sub, "ov/+", opts(QoS::AtMostOnce)).await;
    subscribe_one(&mut sub, "ov/#", opts(QoS::ExactlyOnce)).await;
    let mut publisher = connected(&broker, V3_1_1, "overlap-old-pub").await;
    publish_flow(&mut publisher, message("ov/a", "x", QoS::ExactlyOnce, 1)).await;
    let got = receive(&mut sub).await;
    assert_eq!(got.qos(), QoS::ExactlyOnce);
    sub.expect_nothing(QUIET).await;
    broker.stop().await;
}

#[tokio::test]
async fn subscribing_again_to_the_same_filter_replaces_the_subscription() {
    // [MQTT-3.8.4-3]: the new QoS (and, in 5.0, the new identifier) applies and
    // there is still one subscription.
    let broker = TestBroker::start().await;
    for version in [V3_1_1, V5] {
        let mut sub = connected(&broker, version, "replace-sub").await;
        let id = version.is_v5().then_some(1);
        let codes = subscribe(&mut sub, 1, &[("rp/t", opts(QoS::AtMostOnce))], id).await;
        assert_eq!(codes, vec![ReasonCode::GRANTED_QOS_0]);
        let mut publisher = connected(&broker, version, "replace-pub").await;
        publish_flow(
            &mut publisher,
            message("rp/t", "before", QoS::ExactlyOnce, 1),
        )
        .await;
        assert_eq!(receive(&mut sub).await.qos(), QoS::AtMostOnce);

        let id = version.is_v5().then_some(2);
        let codes = subscribe(&mut sub, 2, &[("rp/t", opts(QoS::ExactlyOnce))], id).await;
        assert_eq!(codes, vec![ReasonCode::GRANTED_QOS_2]);
        publish_flow(
            &mut publisher,
            message("rp/t", "after", QoS::ExactlyOnce, 2),
        )
        .await;
        let got = receive(&mut sub).await;
        assert_eq!(
            (text(&got).as_str(), got.qos()),
            ("after", QoS::ExactlyOnce)
        );
        if version.is_v5() {
            assert_eq!(
                sub_ids(&got),
                vec![2],
                "the replaced subscription's identifier"
            );
        }
        sub.expect_nothing(QUIET).await;
        // One subscription, not two (the other version's round has ended).
        eventually(|| broker.broker.subscription_count() == 1).await;
        send_disconnect(sub).await;
        send_disconnect(publisher).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn unsubscribe_stops_delivery_and_reports_each_filter() {
    // [MQTT-3.10.4-1] exact comparison, [MQTT-3.10.4-2] no new messages,
    // [MQTT-3.11.3-1] one code per filter in order, 0x11 for a filter that was
    // not subscribed (MQTT 5.0 §3.11.3); a 3.1.1 UNSUBACK has no codes.
    let broker = TestBroker::start().await;
    for version in [V3_1_1, V5] {
        let mut sub = connected(&broker, version, &format!("unsub-{version:?}")).await;
        subscribe_one(&mut sub, "us/a", opts(QoS::AtLeastOnce)).await;
        subscribe_one(&mut sub, "us/b", opts(QoS::AtLeastOnce)).await;
        let codes = unsubscribe(&mut sub, 5, &["us/a", "us/none", "us/+"]).await;
        if version.is_v5() {
            assert_eq!(
                codes,
                vec![
                    ReasonCode::SUCCESS,
                    ReasonCode::NO_SUBSCRIPTION_EXISTED,
                    ReasonCode::NO_SUBSCRIPTION_EXISTED
                ]
            );
        } else {
            assert!(codes.is_empty());
        }
        let mut publisher = connected(&broker, version, &format!("unsub-pub-{version:?}")).await;
        publish_flow(&mut publisher, message("us/a", "gone", QoS::AtLeastOnce, 1)).await;
        publish_flow(&mut publisher, message("us/b", "kept", QoS::AtLeastOnce, 2)).await;
        let got = drain(&mut sub).await;
        assert_eq!(topics(&got), vec!["us/b"], "{version:?}");
    }
    broker.stop().await;
}

#[tokio::test]
async fn suback_has_one_code_per_filter_in_order() {
    // [MQTT-3.8.4-5], [MQTT-3.8.4-6], [MQTT-3.9.3-1]; [MQTT-3.8.4-8]: each
    // message goes out at the lower of its QoS and the granted one.
    let broker = TestBroker::start().await;
    for version in [V3_1_1, V5] {
        let mut sub = connected(&broker, version, &format!("suback-{version:?}")).await;
        let codes = subscribe(
            &mut sub,
            9,
            &[
                ("sa/two", opts(QoS::ExactlyOnce)),
                ("sa/zero", opts(QoS::AtMostOnce)),
                ("sa/one", opts(QoS::AtLeastOnce)),
            ],
            None,
        )
        .await;
        assert_eq!(
            codes,
            vec![
                ReasonCode::GRANTED_QOS_2,
                ReasonCode::GRANTED_QOS_0,
                ReasonCode::GRANTED_QOS_1
            ]
        );
        let mut publisher = connected(&broker, version, &format!("suback-pub-{version:?}")).await;
        for (i, name) in ["sa/two", "sa/zero", "sa/one"].into_iter().enumerate() {
            publish_flow(
                &mut publisher,
                message(name, name.to_owned(), QoS::ExactlyOnce, i as u16 + 1),
            )
            .await;
        }
        let got = drain(&mut sub).await;
        let qos: Vec<(String, QoS)> = got.iter().map(|p| (text(p), p.qos())).collect();
        assert_eq!(
            qos,
            vec![
                ("sa/two".to_owned(), QoS::ExactlyOnce),
                ("sa/zero".to_owned(), QoS::AtMostOnce),
                ("sa/one".to_owned(), QoS::AtLeastOnce),
            ]
        );
    }
    broker.stop().await;
}

#[tokio::test]
async fn no_local_keeps_a_clients_own_messages_from_it() {
    // [MQTT-3.8.3-3]: not forwarded to the publishing client through a No Local
    // subscription; still through another matching one, with only that one's
    // identifier; other clients get it.
    let broker = TestBroker::start().await;
    let mut me = connected(&broker, V5, "nl-me").await;
    let mut no_local = opts(QoS::AtLeastOnce);
    no_local.no_local = true;
    subscribe(&mut me, 1, &[("nl/t", no_local)], Some(1)).await;
    let mut other = connected(&broker, V5, "nl-other").await;
    subscribe(&mut other, 1, &[("nl/t", no_local)], None).await;

    let reason = publish_flow(&mut me, message("nl/t", "mine", QoS::AtLeastOnce, 1)).await;
    assert_eq!(reason, ReasonCode::SUCCESS);
    assert_eq!(text(&receive(&mut other).await), "mine");
    me.expect_nothing(QUIET).await;

    subscribe(&mut me, 2, &[("nl/#", opts(QoS::AtLeastOnce))], Some(2)).await;
    publish_flow(&mut me, message("nl/t", "again", QoS::AtLeastOnce, 2)).await;
    let got = receive(&mut me).await;
    assert_eq!(text(&got), "again");
    assert_eq!(
        sub_ids(&got),
        vec![2],
        "only the subscription without No Local"
    );
    me.expect_nothing(QUIET).await;
    assert_eq!(text(&receive(&mut other).await), "again");

    // 3.1.1 has no No Local: a client gets its own messages back.
    let mut old = connected(&broker, V3_1_1, "nl-old").await;
    subscribe_one(&mut old, "nl/old", opts(QoS::AtLeastOnce)).await;
    publish_flow(&mut old, message("nl/old", "echo", QoS::AtLeastOnce, 1)).await;
    assert_eq!(text(&receive(&mut old).await), "echo");
    broker.stop().await;
}

#[tokio::test]
async fn retain_as_published_keeps_the_retain_flag_of_forwarded_messages() {
    // [MQTT-3.3.1-12]: without Retain As Published, RETAIN is 0 when forwarding;
    // [MQTT-3.3.1-13]: with it, RETAIN is as published. 3.1.1 [MQTT-3.3.1-9]:
    // always 0 on an established subscription.
    let broker = TestBroker::start().await;
    let mut as_published = connected(&broker, V5, "rap-1").await;
    let mut rap = opts(QoS::AtLeastOnce);
    rap.retain_as_published = true;
    subscribe_one(&mut as_published, "rap/t", rap).await;
    let mut plain = connected(&broker, V5, "rap-0").await;
    subscribe_one(&mut plain, "rap/t", opts(QoS::AtLeastOnce)).await;
    let mut old = connected(&broker, V3_1_1, "rap-old").await;
    subscribe_one(&mut old, "rap/t", opts(QoS::AtLeastOnce)).await;

    let mut publisher = connected(&broker, V5, "rap-pub").await;
    publish_flow(
        &mut publisher,
        retained("rap/t", "kept", QoS::AtLeastOnce, 1),
    )
    .await;
    assert!(receive(&mut as_published).await.retain, "[MQTT-3.3.1-13]");
    assert!(!receive(&mut plain).await.retain, "[MQTT-3.3.1-12]");
    assert!(!receive(&mut old).await.retain, "3.1.1 [MQTT-3.3.1-9]");

    publish_flow(
        &mut publisher,
        message("rap/t", "live", QoS::AtLeastOnce, 2),
    )
    .await;
    let got = receive(&mut as_published).await;
    assert_eq!(
        (text(&got).as_str(), got.retain),
        ("live", false),
        "[MQTT-3.3.1-13]"
    );
    broker.stop().await;
}

#[tokio::test]
async fn upgrade_outgoing_qos_delivers_at_the_subscription_qos() {
    // Mosquitto's upgrade_outgoing_qos: a deliberate exception to [MQTT-3.8.4-8],
    // which holds by default.
    for upgrade in [false, true] {
        let broker = TestBroker::with_config(Config {
            sys_interval: None,
            upgrade_outgoing_qos: upgrade,
            ..Config::default()
        })
        .await;
        for version in [V3_1_1, V5] {
            let mut two = connected(&broker, version, "up-2").await;
            subscribe_one(&mut two, "up/t", opts(QoS::ExactlyOnce)).await;
            let mut one = connected(&broker, version, "up-1").await;
            subscribe_one(&mut one, "up/t", opts(QoS::AtLeastOnce)).await;
            let mut publisher = connected(&broker, version, "up-pub").await;
            publish_flow(&mut publisher, message("up/t", "q0", QoS::AtMostOnce, 0)).await;
            let (q2, q1) = (receive(&mut two).await, receive(&mut one).await);
            if upgrade {
                assert_eq!((q2.qos(), q1.qos()), (QoS::ExactlyOnce, QoS::AtLeastOnce));
                assert!(q2.packet_id().is_some() && q1.packet_id().is_some());
            } else {
                assert_eq!((q2.qos(), q1.qos()), (QoS::AtMostOnce, QoS::AtMostOnce));
            }
            // Retained messages too, as Mosquitto sends them: a QoS 0
            // retained message goes out at the QoS of the new subscription.
            publish_flow(&mut publisher, retained("up/r", "r0", QoS::AtMostOnce, 0)).await;
            let mut late = connected(&broker, version, "up-late").await;
            subscribe_one(&mut late, "up/r", opts(QoS::AtLeastOnce)).await;
            let r = receive(&mut late).await;
            let want = if upgrade {
                QoS::AtLeastOnce
            } else {
                QoS::AtMostOnce
            };
            assert_eq!(r.qos(), want, "{version} upgrade {upgrade}: retained");
            send_disconnect(late).await;
            for client in [two, one, publisher] {
                send_disconnect(client).await;
            }
        }
        broker.stop().await;
    }
}
