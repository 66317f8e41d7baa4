//! Tests of the mosquitto.conf parser: every directive, its errors and
//! warnings with their lines, includes, and the Config each file gives.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use super::super::tests::Scratch;
use super::super::StorageSettings;
use super::*;
use crate::storage::Durability;
use starling_proto::ProtocolVersion;

const DAY: u64 = 86_400;

fn parse(text: &str) -> Result<(Config, ConfigReport), ConfigReport> {
    let scratch = Scratch::new("mosquitto");
    parse_mosquitto(&scratch.write("mosquitto.conf", text))
}

/// The configuration, which must come with no error and no warning.
fn valid(text: &str) -> Config {
    match parse(text) {
        Ok((config, report)) => {
            assert!(
                report.warnings.is_empty(),
                "unexpected warnings: {:#?}",
                report.warnings
            );
            config
        }
        Err(report) => panic!("unexpected errors: {:#?}", report.errors),
    }
}

/// The errors, as (line, reason).
fn errors(text: &str) -> Vec<(usize, String)> {
    let report = parse(text).expect_err("errors expected");
    report
        .errors
        .into_iter()
        .map(|p| (p.line, p.reason))
        .collect()
}

fn warnings(text: &str) -> Vec<(usize, String)> {
    let (_, report) = parse(text).unwrap_or_else(|r| panic!("unexpected errors: {:#?}", r.errors));
    report
        .warnings
        .into_iter()
        .map(|p| (p.line, p.reason))
        .collect()
}

fn listeners(addrs: &[&str]) -> Vec<Listener> {
    addrs
        .iter()
        .map(|a| Listener::new(a.parse::<SocketAddr>().expect("address")))
        .collect()
}

#[test]
fn sample_with_every_directive() {
    let scratch = Scratch::new("sample");
    scratch.write("conf.d/extra.conf", "listener 9001 localhost\n");
    let main = scratch.write(
        "mosquitto.conf",
        "# A mosquitto.conf using every directive Starling reads.\n\
         per_listener_settings false\n\
         allow_anonymous true\n\
         allow_zero_length_clientid false\n\
         auto_id_prefix dev-\n\
         password_file /etc/starling/passwd\n\
         acl_file /etc/starling/acl\n\
         max_connections 500\n\
         max_packet_size 1048576\n\
         message_size_limit 65536\n\
         max_inflight_messages 10\n\
         max_queued_messages 200\n\
         max_queued_bytes 1000000\n\
         max_keepalive 300\n\
         max_topic_alias 5\n\
         retain_available false\n\
         persistent_client_expiration 14d\n\
         upgrade_outgoing_qos true\n\
         sys_interval 30\n\
         queue_qos0_messages true\n\
         persistence false\n\
         persistence_location /var/lib/mosquitto/\n\
         persistence_sync_interval 250\n\
         persistence_sync periodic\n\
         log_type error\n\
         log_type warning\n\
         log_type subscribe\n\
         log_dest stdout\n\
         log_dest file /var/log/starling broker.log\n\
         log_timestamp false\n\
         log_timestamp_format %Y-%m-%dT%H:%M:%S\n\
         connection_messages false\n\
         user starling\n\
         pid_file /run/starling/starling.pid\n\
         port 1884\n\
         bind_address 127.0.0.1\n\
         listener 1883\n\
         listener 8883 ::1\n\
         include_dir conf.d\n",
    );
    let (config, report) = parse_mosquitto(&main).expect("valid");
    assert!(report.warnings.is_empty(), "{:#?}", report.warnings);
    let expected = Config {
        // The default listener (port, bind_address) comes last, as in Mosquitto.
        listeners: listeners(&[
            "0.0.0.0:1883",
            "[::]:1883",
            "[::1]:8883",
            "127.0.0.1:9001",
            "[::1]:9001",
            "127.0.0.1:1884",
        ]),
        allow_anonymous: true,
        max_connections: Some(500),
        connect_timeout: Duration::from_secs(10),
        max_publish_rate: None,
        max_packet_size: NonZeroU32::new(1_048_576),
        message_size_limit: NonZeroU32::new(65_536),
        max_inflight_messages: 10,
        max_queued_messages: Some(200),
        max_queued_bytes: Some(1_000_000),
        queue_qos0_messages: true,
        max_keepalive: 300,
        max_topic_alias: 5,
        max_topic_levels: 201,
        retain_available: false,
        allow_zero_length_clientid: false,
        auto_id_prefix: "dev-".into(),
        password_file: Some("/etc/starling/passwd".into()),
        acl_file: Some("/etc/starling/acl".into()),
        psk_file: None,
        per_listener_settings: false,
        login_delay: Default::default(),
        clientid_prefixes: None,
        set_tcp_nodelay: true,
        check_retain_source: false,
        persistent_client_expiration: Some(Duration::from_secs(14 * DAY)),
        upgrade_outgoing_qos: true,
        sys_interval: Some(Duration::from_secs(30)),
        logging: super::super::Logging {
            types: vec!["error".into(), "warning".into(), "subscribe".into()],
            destinations: vec!["stdout".into(), "file /var/log/starling broker.log".into()],
            packets: false,
            timestamp: false,
            timestamp_format: Some("%Y-%m-%dT%H:%M:%S".into()),
            connection_messages: false,
        },
        storage: StorageSettings {
            enabled: false,
            dir: Some("/var/lib/mosquitto/".into()),
            durability: Durability::Periodic(Duration::from_millis(250)),
        },
        process: super::super::ProcessSettings {
            user: Some("starling".into()),
            pid_file: Some("/run/starling/starling.pid".into()),
        },
    };
    assert_eq!(config, expected);
}

#[test]
fn no_directive_leaves_the_defaults() {
    assert_eq!(valid("# nothing but a comment\n\n"), Config::default());
}

#[test]
fn listener_without_address_binds_every_interface() {
    let config = valid("listener 1883\n");
    assert_eq!(config.listeners, listeners(&["0.0.0.0:1883", "[::]:1883"]));
}

#[test]
fn listener_addresses() {
    let config = valid(
        "listener 1884 127.0.0.1\n\
         listener 1885 localhost\n\
         listener 1886 [::1]\n\
         listener 1887 ::\n",
    );
    let expected = listeners(&[
        "127.0.0.1:1884",
        "127.0.0.1:1885",
        "[::1]:1885",
        "[::1]:1886",
        "[::]:1887",
    ]);
    assert_eq!(config.listeners, expected);
}

#[test]
fn port_alone_listens_on_every_interface() {
    let config = valid("port 1884\n");
    assert_eq!(config.listeners, listeners(&["0.0.0.0:1884", "[::]:1884"]));
}

#[test]
fn bind_address_alone_uses_port_1883() {
    assert_eq!(
        valid("bind_address 127.0.0.1\n").listeners,
        listeners(&["127.0.0.1:1883"])
    );
    let both = valid("bind_address ::1\nport 1999\n");
    assert_eq!(both.listeners, listeners(&["[::1]:1999"]));
}

#[test]
fn a_listener_turns_anonymous_access_off_unless_allowed() {
    assert!(
        valid("max_keepalive 60\n").allow_anonymous,
        "local-only keeps anonymous access"
    );
    assert!(!valid("listener 1883\n").allow_anonymous);
    assert!(!valid("port 1883\n").allow_anonymous);
    assert!(!valid("bind_address 127.0.0.1\n").allow_anonymous);
    assert!(valid("listener 1883\nallow_anonymous true\n").allow_anonymous);
    assert!(valid("allow_anonymous true\nlistener 1883\n").allow_anonymous);
    assert!(!valid("allow_anonymous false\n").allow_anonymous);
}

#[test]
fn zero_and_negative_values_mean_unlimited_as_in_mosquitto() {
    let config = valid(
        "max_connections -1\n\
         max_packet_size 0\n\
         message_size_limit 0\n\
         max_inflight_messages 0\n\
         max_queued_messages 0\n\
         max_queued_bytes 0\n\
         sys_interval 0\n",
    );
    assert_eq!(config.max_connections, None);
    assert_eq!(config.max_packet_size, None);
    assert_eq!(config.message_size_limit, None);
    assert_eq!(config.max_inflight_messages, 65535);
    assert_eq!(config.max_queued_messages, None);
    assert_eq!(config.max_queued_bytes, None);
    assert_eq!(config.sys_interval, None);

    let negative = valid(
        "max_connections 0\nmax_inflight_messages -5\nmax_queued_messages -1\nmax_queued_bytes -1\n",
    );
    assert_eq!(negative.max_connections, None);
    assert_eq!(negative.max_inflight_messages, 65535);
    assert_eq!(negative.max_queued_messages, None);
    assert_eq!(negative.max_queued_bytes, None);
}

#[test]
fn limits_at_their_bounds() {
    let config = valid(
        "max_keepalive 0\nmax_topic_alias 65535\nmax_packet_size 20\n\
         message_size_limit 268435455\nmax_inflight_messages 65535\nsys_interval 65535\n\
         max_topic_levels 65536\n",
    );
    assert_eq!(config.max_topic_levels, 65536);
    assert_eq!(
        valid("").max_topic_levels,
        201,
        "Mosquitto's limit by default"
    );
    assert_eq!(config.max_keepalive, 0);
    assert_eq!(config.max_topic_alias, 65535);
    assert_eq!(config.max_packet_size, NonZeroU32::new(20));
    assert_eq!(config.message_size_limit, NonZeroU32::new(268_435_455));
    assert_eq!(config.max_inflight_messages, 65535);
    assert_eq!(config.sys_interval, Some(Duration::from_secs(65535)));
}

#[test]
fn expiration_units() {
    for (text, secs) in [
        ("2h", 2 * 3600),
        ("14d", 14 * DAY),
        ("1w", 7 * DAY),
        ("1m", 30 * DAY),
        ("1y", 365 * DAY),
    ] {
        let config = valid(&format!("persistent_client_expiration {text}\n"));
        assert_eq!(
            config.persistent_client_expiration,
            Some(Duration::from_secs(secs)),
            "{text}"
        );
    }
}

#[test]
fn persistence_is_on_by_default_unlike_mosquitto() {
    let storage = valid("max_keepalive 60\n").storage;
    assert_eq!(storage, StorageSettings::default());
    assert!(storage.enabled);
    assert_eq!(storage.dir, None);
    assert_eq!(storage.durability, Durability::Sync);
    assert!(!valid("persistence false\n").storage.enabled);
    assert!(
        valid("persistence false\npersistence true\n")
            .storage
            .enabled
    );
}

#[test]
fn persistence_location_is_kept_as_given() {
    let dir = |text: &str| valid(text).storage.dir;
    // Mosquitto's value is a directory, usually with a trailing slash.
    assert_eq!(
        dir("persistence_location /var/lib/mosquitto/\n"),
        Some("/var/lib/mosquitto/".into())
    );
    let storage = valid("persistence_location /var/lib/mosquitto/\n").storage;
    assert_eq!(
        storage.file(),
        Path::new("/var/lib/mosquitto/starling.db"),
        "the trailing slash changes nothing"
    );
    // Relative: to the working directory, as in Mosquitto, not to this file.
    assert_eq!(dir("persistence_location data\n"), Some("data".into()));
    assert_eq!(
        dir("persistence_location /srv/my data  # comment\n"),
        Some("/srv/my data".into()),
        "the rest of the line, spaces and all"
    );
}

#[test]
fn persistence_sync_modes() {
    let durability = |text: &str| valid(text).storage.durability;
    assert_eq!(durability("persistence_sync sync\n"), Durability::Sync);
    assert_eq!(durability("persistence_sync off\n"), Durability::Off);
    assert_eq!(
        durability("persistence_sync periodic\n"),
        Durability::Periodic(Duration::from_millis(1000)),
        "1000 ms unless told otherwise"
    );
    // The interval means something to periodic only.
    assert_eq!(
        durability("persistence_sync_interval 50\n"),
        Durability::Sync
    );
    assert_eq!(
        durability("persistence_sync off\npersistence_sync_interval 50\n"),
        Durability::Off
    );
    assert_eq!(
        durability("persistence_sync_interval 3600000\npersistence_sync periodic\n"),
        Durability::Periodic(Duration::from_secs(3600))
    );
}

#[test]
fn persistence_sync_and_its_interval_in_either_order() {
    let want = Durability::Periodic(Duration::from_millis(20));
    let scratch = Scratch::new("sync-order");
    scratch.write("conf.d/sync.conf", "persistence_sync periodic\n");
    let main = scratch.write(
        "mosquitto.conf",
        "persistence_sync_interval 20\ninclude_dir conf.d\n",
    );
    let (config, _) = parse_mosquitto(&main).expect("valid");
    assert_eq!(config.storage.durability, want, "across files too");
    for text in [
        "persistence_sync periodic\npersistence_sync_interval 20\n",
        "persistence_sync_interval 20\npersistence_sync periodic\n",
        "persistence_sync_interval 5\npersistence_sync periodic\npersistence_sync_interval 20\n",
    ] {
        assert_eq!(valid(text).storage.durability, want, "{text:?}");
    }
}

#[test]
fn mosquitto_s_own_store_settings_are_warned_about_and_not_used() {
    let text = "persistence_file mosquitto.db\n\
                autosave_interval 1800\n\
                autosave_on_changes false\n\
                persistence true\n\
                persistence_location /var/lib/mosquitto/\n";
    assert_eq!(
        warnings(text),
        [
            (
                1,
                "persistence_file: Starling keeps its store in starling.db inside \
                 persistence_location and does not read Mosquitto's mosquitto.db; \
                 'mosquitto.db' is not used"
                    .to_string()
            ),
            (
                2,
                "autosave_interval: Starling writes every change as it happens \
                 (see persistence_sync); autosave is not used"
                    .to_string()
            ),
            (
                3,
                "autosave_on_changes: Starling writes every change as it happens \
                 (see persistence_sync); autosave is not used"
                    .to_string()
            ),
        ]
    );
    let (config, _) = parse(text).expect("valid");
    assert_eq!(
        config.storage.file(),
        Path::new("/var/lib/mosquitto/starling.db")
    );
}

#[test]
fn log_type_replaces_the_default_then_accumulates() {
    let types = |text: &str| valid(text).logging.types;
    assert_eq!(types("log_type debug\n"), ["debug"]);
    assert_eq!(
        types("log_type debug\nlog_type error\nlog_type debug\n"),
        ["debug", "error"]
    );
    assert_eq!(types("log_type error\nlog_type none\n"), ["none"]);
    assert_eq!(types("log_type none\nlog_type error\n"), ["error"]);
    assert_eq!(types("log_type all\nlog_type debug\n"), ["all"]);
    assert_eq!(types("log_type debug\nlog_type all\n"), ["all"]);
}

#[test]
fn log_dest_replaces_the_default_then_accumulates() {
    let dests = |text: &str| valid(text).logging.destinations;
    assert_eq!(
        dests("log_dest syslog\nlog_dest topic\n"),
        ["syslog", "topic"]
    );
    assert_eq!(dests("log_dest none\n"), ["none"]);
    assert_eq!(
        dests("log_dest file   /tmp/a b.log  \n"),
        ["file /tmp/a b.log"]
    );
    assert_eq!(
        errors("log_dest file /tmp/a.log\nlog_dest file /tmp/b.log\n"),
        [(
            2,
            "log_dest: only one file destination may be configured".to_string()
        )]
    );
}

#[test]
fn comments_whitespace_and_crlf() {
    let config = valid(
        "# comment\r\n\
         \t  # indented comment\r\n\
         max_keepalive\t60   # trailing comment\r\n\
         \r\n\
         \x20 sys_interval 5\r\n",
    );
    assert_eq!(config.max_keepalive, 60);
    assert_eq!(config.sys_interval, Some(Duration::from_secs(5)));
}

/// Every kind of error, each with the line it is on: all reported from one file.
#[test]
fn every_error_is_reported_with_its_line() {
    let cases: &[(&str, &str)] = &[
        ("max_keepalive 70000", "max_keepalive: 70000 is out of range 0..65535"),
        ("max_keepalive", "max_keepalive: missing value"),
        ("max_keepalive 60 70", "max_keepalive: unexpected extra value '70'"),
        ("max_keepalive sixty", "max_keepalive: 'sixty' is not a whole number"),
        ("allow_anonymous yes", "allow_anonymous: 'yes' is not a boolean (expected true or false)"),
        ("retain_available 1", "retain_available: '1' is not a boolean (expected true or false)"),
        ("queue_qos0_messages TRUE", "queue_qos0_messages: 'TRUE' is not a boolean"),
        ("upgrade_outgoing_qos", "upgrade_outgoing_qos: missing value"),
        ("allow_zero_length_clientid false true", "allow_zero_length_clientid: unexpected extra value 'true'"),
        ("per_listener_settings maybe", "per_listener_settings: 'maybe' is not a boolean"),
        ("frobnicate 3", "unknown directive 'frobnicate'"),
        ("listener", "listener: missing port"),
        ("listener 0", "listener: 0 is out of range 1..65535"),
        ("listener 70000", "listener: 70000 is out of range 1..65535"),
        ("listener x1883", "listener: 'x1883' is not a whole number"),
        ("listener 1890 127.0.0.1 extra", "listener: unexpected extra value 'extra'"),
        ("listener 1891 no-such-host.invalid", "listener: cannot resolve 'no-such-host.invalid'"),
        ("port 0", "port: 0 is out of range 1..65535"),
        ("bind_address", "bind_address: missing value"),
        ("max_connections lots", "max_connections: 'lots' is not a whole number"),
        ("max_packet_size 10", "max_packet_size: 10 is out of range: 0 (unlimited) or 20..4294967295"),
        ("max_packet_size 5000000000", "max_packet_size: 5000000000 is out of range"),
        ("message_size_limit 268435456", "message_size_limit: 268435456 is out of range 0..268435455"),
        ("max_inflight_messages 65536", "max_inflight_messages: 65536 is out of range 0..65535"),
        ("max_queued_messages 1.5", "max_queued_messages: '1.5' is not a whole number"),
        ("max_queued_bytes many", "max_queued_bytes: 'many' is not a whole number"),
        ("max_topic_alias -1", "max_topic_alias: -1 is out of range 0..65535"),
        ("max_topic_levels 0", "max_topic_levels: 0 is out of range 1..65536"),
        ("max_topic_levels 65537", "max_topic_levels: 65537 is out of range 1..65536"),
        ("sys_interval 70000", "sys_interval: 70000 is out of range 0..65535"),
        (
            "persistent_client_expiration 14x",
            "persistent_client_expiration: '14x' is not a duration (a whole number and h, d, w, m or y, e.g. 14d)",
        ),
        ("persistent_client_expiration d", "persistent_client_expiration: 'd' is not a duration"),
        ("persistent_client_expiration 0d", "persistent_client_expiration: '0d' must be longer than zero"),
        ("persistence yes", "persistence: 'yes' is not a boolean (expected true or false)"),
        ("persistence", "persistence: missing value"),
        ("persistence_location", "persistence_location: missing value"),
        ("persistence_file", "persistence_file: missing value"),
        ("persistence_sync fast", "persistence_sync: 'fast' is not sync, periodic or off"),
        ("persistence_sync", "persistence_sync: missing value"),
        ("persistence_sync off now", "persistence_sync: unexpected extra value 'now'"),
        ("persistence_sync_interval 0", "persistence_sync_interval: 0 is out of range 1..3600000"),
        ("persistence_sync_interval -5", "persistence_sync_interval: -5 is out of range 1..3600000"),
        ("persistence_sync_interval 3600001", "persistence_sync_interval: 3600001 is out of range 1..3600000"),
        ("persistence_sync_interval 1s", "persistence_sync_interval: '1s' is not a whole number"),
        ("log_type loud", "log_type: unknown type 'loud' (expected one of none, error,"),
        ("log_type", "log_type: missing value"),
        ("log_dest paper", "log_dest: unknown destination 'paper' (expected one of none, stderr,"),
        ("log_dest file", "log_dest: file needs a path"),
        ("log_dest stderr stdout", "log_dest: unexpected extra value 'stdout'"),
        ("include_dir", "include_dir: missing value"),
        ("include_dir does-not-exist", "include_dir: cannot read directory"),
        ("remote_username bob", "remote_username: a bridge option, valid only after a `connection` line"),
    ];
    // Valid lines and blank lines between the bad ones, so that line numbers
    // are not just positions in the list.
    let mut text = String::from("# errors, one per kind\n");
    let mut expected = Vec::new();
    for (index, (line, reason)) in cases.iter().enumerate() {
        text.push_str(line);
        text.push('\n');
        expected.push((text.lines().count(), *reason));
        text.push_str(if index % 2 == 0 {
            "max_queued_messages 100\n"
        } else {
            "\n"
        });
    }
    let found = errors(&text);
    assert_eq!(found.len(), cases.len(), "{found:#?}");
    for ((line, reason), (want_line, want_reason)) in found.iter().zip(&expected) {
        assert_eq!(line, want_line, "line of '{reason}'");
        assert!(
            reason.starts_with(want_reason),
            "line {line}: '{reason}' should start with '{want_reason}'"
        );
    }
}

#[test]
fn several_errors_are_all_reported() {
    let found =
        errors("max_keepalive 70000\nallow_anonymous yes\n\nlistener 0\nmax_keepalive 30\n");
    assert_eq!(
        found,
        [
            (
                1,
                "max_keepalive: 70000 is out of range 0..65535".to_string()
            ),
            (
                2,
                "allow_anonymous: 'yes' is not a boolean (expected true or false)".to_string()
            ),
            (4, "listener: 0 is out of range 1..65535".to_string()),
        ]
    );
}

#[test]
fn duplicate_listeners_are_errors() {
    assert_eq!(
        errors("listener 1883\nlistener 1883 0.0.0.0\n"),
        [(
            2,
            "listener: 0.0.0.0:1883 is already configured at line 1".to_string()
        )]
    );
    // The default listener is checked after the whole file, at its own line.
    assert_eq!(
        errors("port 1883\nlistener 1883 ::\n"),
        [(
            1,
            "port: [::]:1883 is already configured at line 2".to_string()
        )]
    );
    assert_eq!(
        errors("bind_address ::1\nbind_address ::1\n"),
        [(2, "bind_address: given more than once".to_string())]
    );
}

#[test]
fn include_dir_reads_conf_files_in_mosquitto_order() {
    let scratch = Scratch::new("include");
    // Mosquitto sorts case-insensitively: a.conf, then B.conf (byte order
    // would read B.conf first and end with 20).
    scratch.write("conf.d/a.conf", "max_keepalive 20\n");
    scratch.write("conf.d/B.conf", "max_keepalive 30\n");
    scratch.write("conf.d/c.conf", "max_topic_alias 7\ninclude_dir ../more\n");
    scratch.write("conf.d/notes.txt", "not a directive\n");
    scratch.write("conf.d/.conf", "not a directive\n");
    scratch.write("more/d.conf", "max_topic_alias 8\n");
    let main = scratch.write("mosquitto.conf", "max_keepalive 10\ninclude_dir conf.d\n");
    let (config, report) = parse_mosquitto(&main).expect("valid");
    assert_eq!(config.max_keepalive, 30);
    assert_eq!(
        config.max_topic_alias, 7,
        "include_dir in an included file is not followed"
    );
    assert_eq!(report.warnings.len(), 1, "{:#?}", report.warnings);
    let warning = &report.warnings[0];
    assert_eq!(warning.file, scratch.dir().join("conf.d/c.conf"));
    assert_eq!(warning.line, 2);
    assert!(
        warning
            .reason
            .starts_with("include_dir: read only in the main"),
        "{}",
        warning.reason
    );
}

#[test]
fn include_dir_takes_absolute_paths() {
    let scratch = Scratch::new("include-absolute");
    scratch.write("elsewhere/x.conf", "sys_interval 3\n");
    let absolute = scratch.dir().join("elsewhere");
    let main = scratch.write(
        "etc/mosquitto.conf",
        &format!("include_dir {}\n", absolute.display()),
    );
    let (config, _) = parse_mosquitto(&main).expect("valid");
    assert_eq!(config.sys_interval, Some(Duration::from_secs(3)));
}

#[test]
fn errors_in_included_files_name_that_file_and_line() {
    let scratch = Scratch::new("include-errors");
    scratch.write("conf.d/a.conf", "# first\nmax_keepalive 99999\n");
    scratch.write("conf.d/b.conf", "\n\nbogus 1\n");
    let main = scratch.write("mosquitto.conf", "include_dir conf.d\nsys_interval -1\n");
    let report = parse_mosquitto(&main).expect_err("errors");
    let found: Vec<_> = report
        .errors
        .iter()
        .map(|p| (p.file.clone(), p.line, p.reason.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (
                scratch.dir().join("conf.d/a.conf"),
                2,
                "max_keepalive: 99999 is out of range 0..65535"
            ),
            (
                scratch.dir().join("conf.d/b.conf"),
                3,
                "unknown directive 'bogus'"
            ),
            (main.clone(), 2, "sys_interval: -1 is out of range 0..65535"),
        ]
    );
}

#[test]
fn include_dir_must_not_hold_the_main_file() {
    let scratch = Scratch::new("include-self");
    scratch.write("other.conf", "max_keepalive 40\n");
    let main = scratch.write("mosquitto.conf", "include_dir .\n");
    let report = parse_mosquitto(&main).expect_err("includes itself");
    assert_eq!(report.errors.len(), 1, "{:#?}", report.errors);
    assert_eq!(report.errors[0].line, 1);
    assert!(report.errors[0]
        .reason
        .contains("holds the main configuration file"));
}

#[test]
fn later_directives_are_warned_about_and_ignored() {
    let mut text = String::new();
    for directive in LATER {
        text.push_str(&format!("{directive} some-value\n"));
    }
    text.push_str("auth_opt_db_host localhost\nplugin_opt_key value\n");
    text.push_str("retry_interval 20\nstore_clean_interval 10\n");
    let (config, report) = parse(&text).unwrap_or_else(|r| panic!("{:#?}", r.errors));
    assert_eq!(config, Config::default());
    assert_eq!(report.warnings.len(), LATER.len() + 4);
    for (index, warning) in report.warnings.iter().enumerate() {
        assert_eq!(warning.line, index + 1);
    }
    assert_eq!(
        report.warnings[0].reason,
        format!("{}: not supported yet; ignored", LATER[0])
    );
    assert_eq!(
        report.warnings[LATER.len() + 2].reason,
        "retry_interval: no longer used by Mosquitto 2; ignored"
    );
}

#[test]
fn a_bridge_is_one_warning() {
    let found = warnings(
        "connection uplink\n\
         address 192.0.2.1:1883\n\
         topic sensors/# out 1\n\
         remote_username bob\n\
         bridge_protocol_version mqttv50\n",
    );
    assert_eq!(
        found,
        [(1, "connection: bridges are not supported yet; bridge 'uplink' and its options are ignored".to_string())]
    );
}

#[test]
fn max_connections_is_per_listener_after_a_listener_line() {
    let text =
        "max_connections 100\nlistener 1883 127.0.0.1\nmax_connections 10\nmax_topic_alias 3\n\
                listener 1884 127.0.0.1\nmax_connections 20\nmax_topic_alias 4\n";
    let (config, report) = parse(text).expect("valid");
    assert_eq!(
        config.max_connections,
        Some(100),
        "before any listener: the broker's"
    );
    let limits: Vec<_> = config
        .listeners
        .iter()
        .map(|l| l.settings.max_connections)
        .collect();
    assert_eq!(limits, [Some(10), Some(20)]);
    assert_eq!(config.max_topic_alias, 4);
    assert_eq!(report.warnings.len(), 1);
    assert_eq!(report.warnings[0].line, 7);
    assert!(report.warnings[0]
        .reason
        .starts_with("max_topic_alias: Mosquitto sets this per listener"));
}

#[test]
fn other_warnings() {
    let found = warnings("port 1883\nport 1884\nlistener 0 /tmp/mqtt.sock\n");
    let lines: Vec<usize> = found.iter().map(|(line, _)| *line).collect();
    assert_eq!(lines, [2, 3], "{found:#?}");
    let (config, _) = parse("port 1883\nport 1884\n").expect("valid");
    assert_eq!(
        config.listeners,
        listeners(&["0.0.0.0:1884", "[::]:1884"]),
        "the last port wins"
    );
}

#[test]
fn unreadable_and_invalid_files() {
    let scratch = Scratch::new("unreadable");
    let missing = scratch.dir().join("missing.conf");
    let report = parse_mosquitto(&missing).expect_err("missing");
    assert_eq!(
        (report.errors[0].file.as_path(), report.errors[0].line),
        (missing.as_path(), 0)
    );

    let binary = scratch.dir().join("binary.conf");
    std::fs::write(&binary, b"max_keepalive 60\n\xff\xfe\n").expect("write");
    let report = parse_mosquitto(&binary).expect_err("not UTF-8");
    assert_eq!(report.errors[0].line, 2);
    assert_eq!(report.errors[0].reason, "the file is not valid UTF-8");
}

#[test]
fn listener_options_apply_to_their_listener_s_sockets() {
    let scratch = Scratch::new("listener-options");
    let main = scratch.write(
        "mosquitto.conf",
        "connect_timeout 5\nmax_publish_rate 100\n\
         listener 8883\ncertfile certs/server.pem\nkeyfile /etc/ssl/server.key\n\
         cafile ca.pem\ncrlfile crl.pem\nrequire_certificate true\n\
         use_identity_as_username true\ntls_version tlsv1.3\nmax_connections 50\n\
         listener 9001 127.0.0.1\nprotocol websockets\nwebsockets_path /mqtt\n\
         websockets_origin https://app.example\nenable_proxy_protocol 2\n\
         listener 1883 127.0.0.1\nenable_proxy_protocol 1\n",
    );
    let (config, report) = parse_mosquitto(&main).expect("valid");
    assert!(report.warnings.is_empty(), "{:#?}", report.warnings);
    assert_eq!(config.connect_timeout, Duration::from_secs(5));
    assert_eq!(config.max_publish_rate, NonZeroU32::new(100));
    let [tls4, tls6, ws, mqtt] = &config.listeners[..] else {
        panic!("{:#?}", config.listeners);
    };
    assert_eq!(
        tls4.settings, tls6.settings,
        "one listener line, two sockets"
    );
    let tls = tls4.settings.tls.as_ref().expect("TLS");
    assert_eq!(
        tls.certfile.as_deref(),
        Some(scratch.dir().join("certs/server.pem").as_path())
    );
    assert_eq!(
        tls.keyfile.as_deref(),
        Some(Path::new("/etc/ssl/server.key"))
    );
    assert_eq!(
        tls.crlfile.as_deref(),
        Some(scratch.dir().join("crl.pem").as_path())
    );
    assert!(tls.require_certificate && tls.use_identity_as_username);
    assert_eq!(tls.min_version, super::super::TlsVersion::Tls13);
    assert_eq!(tls4.settings.max_connections, Some(50));
    assert_eq!(config.max_connections, None);
    assert_eq!(ws.settings.protocol, super::super::Protocol::WebSockets);
    assert_eq!(ws.settings.websockets.path.as_deref(), Some("/mqtt"));
    assert_eq!(ws.settings.websockets.origins, ["https://app.example"]);
    assert_eq!(
        ws.settings.proxy_protocol,
        Some(super::super::ProxyProtocol::V2)
    );
    assert!(ws.settings.tls.is_none());
    assert_eq!(
        mqtt.settings.proxy_protocol,
        Some(super::super::ProxyProtocol::V1)
    );
    assert_eq!(mqtt.settings.protocol, super::super::Protocol::Mqtt);
}

#[test]
fn listener_options_before_any_listener_go_to_the_default_one() {
    let config = valid("certfile /s.pem\nkeyfile /s.key\nport 8883\n");
    assert_eq!(config.listeners.len(), 2);
    assert!(config.listeners.iter().all(|l| l.settings.tls.is_some()));
    // No default listener to take them: an error at the first of them.
    assert_eq!(
        errors("max_keepalive 60\nprotocol websockets\nlistener 9001\n"),
        [(
            2,
            "a listener option before any `listener` line, and no `port` or `bind_address` \
             to make the default listener: write it after the `listener` line it is for"
                .to_string()
        )]
    );
}

#[test]
fn listener_option_errors_and_warnings_have_their_lines() {
    let found = errors(
        "listener 8883\ncertfile /s.pem\nprotocol mqtts\nlistener 8884\n\
         keyfile /k.pem\ncertfile /c.pem\ntls_version sslv3\npsk_hint hi\n\
         listener 8885\ncafile /ca.pem\nenable_proxy_protocol yes\ncertfile\n",
    );
    // Checks of a whole listener come when its block ends: by line here.
    let mut found = found;
    found.sort();
    let expected: &[(usize, &str)] = &[
        (1, "listener: certfile without keyfile: TLS needs both"),
        (3, "protocol: 'mqtts' is not mqtt or websockets"),
        (
            7,
            "tls_version: 'sslv3' is not tlsv1.3, tlsv1.2, tlsv1.1 or tlsv1",
        ),
        (
            9,
            "listener: TLS options without certfile and keyfile (or psk_hint), which TLS needs",
        ),
        (
            11,
            "enable_proxy_protocol: 'yes' is not a PROXY protocol version (1 or 2)",
        ),
        (12, "certfile: missing value"),
    ];
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    for ((line, reason), (want_line, want)) in found.iter().zip(expected) {
        assert_eq!(
            (line, reason.starts_with(want)),
            (want_line, true),
            "{reason}"
        );
    }
    let found = warnings(
        "listener 8883\ncertfile /c.pem\nkeyfile /k.pem\ndhparamfile /dh.pem\n\
         ciphers ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-SHA\ntls_version tlsv1.1\n\
         listener 9001\nprotocol websockets\nhttp_dir /var/www\n",
    );
    let lines: Vec<usize> = found.iter().map(|(line, _)| *line).collect();
    // OpenSSL takes the DH parameters, the cipher expression and TLS 1.1
    // (whether it then speaks TLS 1.1 is its security level's call).
    assert_eq!(lines, [9], "{found:#?}");
}

#[test]
fn login_delay_and_its_maximum_or_off() {
    let config = valid("login_delay 2\nlogin_delay_max 30\n");
    assert_eq!(config.login_delay.first, std::time::Duration::from_secs(2));
    assert_eq!(config.login_delay.max, std::time::Duration::from_secs(30));
    let config = valid("login_delay 0\n");
    assert!(config.login_delay.first.is_zero(), "0 turns it off");
    assert_eq!(errors("login_delay_max 0\n").len(), 1);
    assert_eq!(errors("login_delay -1\n").len(), 1);
}

#[test]
fn connection_level_directives_of_mosquitto_2_0() {
    let text =
        "listener 1883 127.0.0.1\nmax_qos 1\nmount_point tenant/\nuse_username_as_clientid true\n\
         socket_domain ipv4\nbind_interface lo\n\
         listener 1884 127.0.0.1\nmaximum_qos 0\n\
         clientid_prefixes dev-\nset_tcp_nodelay false\n\
         retained_persistence false\nallow_duplicate_messages false\n";
    let (config, report) = parse(text).expect("valid");
    // Deprecated in Mosquitto 2.0, said so as Mosquitto does; still applied.
    let noted: Vec<usize> = report.warnings.iter().map(|w| w.line).collect();
    assert_eq!(noted, [9, 12], "{:#?}", report.warnings);
    let first = &config.listeners[0].settings;
    assert_eq!(first.max_qos, starling_proto::QoS::AtLeastOnce);
    assert_eq!(first.mount_point.as_deref(), Some("tenant/"));
    assert!(first.use_username_as_clientid);
    assert_eq!(first.socket_domain, Some(super::super::SocketDomain::Ipv4));
    assert_eq!(first.bind_interface.as_deref(), Some("lo"));
    assert_eq!(
        config.listeners[1].settings.max_qos,
        starling_proto::QoS::AtMostOnce
    );
    assert_eq!(config.listeners[1].settings.mount_point, None);
    assert_eq!(config.clientid_prefixes.as_deref(), Some("dev-"));
    assert!(!config.set_tcp_nodelay);
    assert!(
        !config.storage.enabled,
        "retained_persistence is persistence, as in 2.0"
    );
    let bad = errors(
        "listener 1883\nmax_qos 3\nmount_point a/+/\nsocket_domain ipx\nuse_username_as_clientid maybe\n",
    );
    let lines: Vec<usize> = bad.iter().map(|(line, _)| *line).collect();
    assert_eq!(lines, [2, 3, 4, 5], "{bad:#?}");
}

#[test]
fn directives_of_mosquitto_2_1() {
    let config = valid(
        "global_max_connections 100\nlistener 1883 127.0.0.1\naccept_protocol_versions 4, 5\n",
    );
    assert_eq!(config.max_connections, Some(100));
    assert_eq!(
        config.listeners[0].settings.accept_protocol_versions,
        Some(vec![ProtocolVersion::V3_1_1, ProtocolVersion::V5])
    );
    assert_eq!(
        errors("listener 1883\naccept_protocol_versions 4,6\n").len(),
        1
    );
}

#[test]
fn websockets_headers_size_is_checked_and_said_not_to_apply() {
    let found = warnings("websockets_headers_size 4096\n");
    assert_eq!(found.len(), 1);
    assert!(found[0].1.contains("libwebsockets"), "{found:?}");
    assert_eq!(errors("websockets_headers_size 70000\n").len(), 1);
}

#[test]
fn check_retain_source_is_read() {
    assert!(valid("check_retain_source true\n").check_retain_source);
    assert!(!valid("check_retain_source false\n").check_retain_source);
}

/// `user`, `pid_file`, `log_timestamp`, `log_timestamp_format` and
/// `connection_messages`, with Mosquitto's defaults; a format or a path is the
/// rest of the line; the strings given twice are errors, as in Mosquitto.
#[test]
fn process_and_log_directives() {
    let defaults = Config::default();
    assert_eq!(defaults.process.user, None);
    assert_eq!(defaults.process.pid_file, None);
    assert!(defaults.logging.timestamp);
    assert_eq!(defaults.logging.timestamp_format, None);
    assert!(defaults.logging.connection_messages);

    let config = valid(
        "user root\npid_file /var/run/mosquitto/mosquitto.pid\nlog_timestamp false\n\
         log_timestamp_format %Y-%m-%d %H:%M:%S\nconnection_messages false\n",
    );
    assert_eq!(config.process.user.as_deref(), Some("root"));
    assert_eq!(
        config.process.pid_file.as_deref(),
        Some(Path::new("/var/run/mosquitto/mosquitto.pid"))
    );
    assert!(!config.logging.timestamp);
    assert_eq!(
        config.logging.timestamp_format.as_deref(),
        Some("%Y-%m-%d %H:%M:%S")
    );
    assert!(!config.logging.connection_messages);
    let config = valid("log_timestamp true\nconnection_messages true\n");
    assert_eq!(config, Config::default());

    assert_eq!(
        errors(
            "user a\nuser b\npid_file /a\npid_file /b\nlog_timestamp_format %s\n\
             log_timestamp_format %s\nlog_timestamp yes\nconnection_messages 1\n"
        ),
        [
            (2, "user: given more than once".to_string()),
            (4, "pid_file: given more than once".to_string()),
            (6, "log_timestamp_format: given more than once".to_string()),
            (
                7,
                "log_timestamp: 'yes' is not a boolean (expected true or false)".to_string()
            ),
            (
                8,
                "connection_messages: '1' is not a boolean (expected true or false)".to_string()
            ),
        ]
    );
    assert_eq!(errors("user\n"), [(1, "user: missing value".to_string())]);
    assert_eq!(
        errors("user a b\n"),
        [(1, "user: unexpected extra value 'b'".to_string())]
    );
    assert_eq!(
        errors("pid_file\n"),
        [(1, "pid_file: missing value".to_string())]
    );
}

/// `log_facility` takes Mosquitto's 0..7 (local0..local7) and says why it
/// changes nothing; `websockets_log_level` says what it would have set.
#[test]
fn log_facility_and_websockets_log_level_are_explained() {
    assert_eq!(
        warnings("log_facility 5\nwebsockets_log_level 1023\n"),
        [
            (1, format!("log_facility: {}", values::LOG_FACILITY_UNUSED)),
            (
                2,
                format!(
                    "websockets_log_level: {}",
                    values::WEBSOCKETS_LOG_LEVEL_UNUSED
                )
            ),
        ]
    );
    assert_eq!(
        errors("log_facility 8\nlog_facility -1\nwebsockets_log_level x\n"),
        [
            (1, "log_facility: 8 is out of range 0..7".to_string()),
            (2, "log_facility: -1 is out of range 0..7".to_string()),
            (
                3,
                "websockets_log_level: 'x' is not a whole number".to_string()
            ),
        ]
    );
}
