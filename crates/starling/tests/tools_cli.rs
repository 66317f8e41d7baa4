//! The command line of `starling pub`, `sub` and `rr` against Mosquitto's:
//! bad arguments give Mosquitto's message, usage line and exit status; an
//! unreachable broker, an unknown host and a refused connection give one line
//! and Mosquitto's status (the CONNACK code when refused); TLS options are
//! checked as Mosquitto checks them (TLS itself: tools_tls.rs); the defaults
//! file is read as Mosquitto reads its own; `--help` lists every flag.

mod common;

use common::tools::{as_starling, mask_ids, Broker, Done, Run};
use common::{free_port, Scratch};

/// Runs the same arguments through `mosquitto_TOOL` and `starling TOOL`.
fn both(tool: &str, args: &[&str]) -> (Done, Done) {
    let theirs = Run::either(false, tool, args).run();
    let ours = Run::either(true, tool, args).run();
    (theirs, ours)
}

/// The same stderr (Mosquitto's tool names replaced), stdout and exit status.
fn same(tool: &str, args: &[&str]) {
    let (theirs, ours) = both(tool, args);
    assert_eq!(
        ours.stderr,
        as_starling(&theirs.stderr),
        "stderr of {tool} {args:?}"
    );
    assert_eq!(
        ours.stdout,
        as_starling(&theirs.stdout),
        "stdout of {tool} {args:?}"
    );
    assert_eq!(ours.code, theirs.code, "exit status of {tool} {args:?}");
}

#[test]
fn bad_arguments_get_mosquittos_message_usage_line_and_status() {
    // Nothing listens on this port; none of these gets as far as connecting.
    let port = free_port().to_string();
    let p = port.as_str();
    let cases: &[(&str, &[&str])] = &[
        ("pub", &["-p", p, "--bogus"]),
        ("pub", &["-p", p, "-t"]),
        ("pub", &["-p", p, "-t", "a", "-q", "3", "-m", "x"]),
        ("pub", &["-p", "70000", "-t", "a", "-m", "x"]),
        ("pub", &["-p", "-5", "-t", "a", "-m", "x"]),
        ("pub", &["-p", p, "-V", "4", "-t", "a", "-m", "x"]),
        ("pub", &["-p", p, "-t", "a", "-m", "x", "-f", "y"]),
        ("pub", &["-p", p, "-t", "a", "-m", "x", "-l"]),
        (
            "pub",
            &["-p", p, "-t", "a", "-m", "x", "-i", "a", "-I", "b"],
        ),
        ("pub", &["-p", p, "-t", "a", "-m", "x", "-c"]),
        (
            "pub",
            &["-p", p, "-t", "a", "-m", "x", "-c", "-V", "mqttv5"],
        ),
        ("pub", &["-p", p, "-t", "a", "-m", "x", "-x", "abc"]),
        ("pub", &["-p", p, "-t", "a", "-m", "x", "-x", "-2"]),
        ("pub", &["-p", p, "-t", "a", "-m", "x", "-k", "3"]),
        ("pub", &["-p", p, "-t", "a", "-m", "x", "-M", "0"]),
        ("pub", &["-p", p, "-t", "a/#", "-m", "x"]),
        (
            "pub",
            &["-p", p, "-t", "a", "-m", "x", "--will-payload", "x"],
        ),
        ("pub", &["-p", p, "-t", "a", "-m", "x", "--will-retain"]),
        (
            "pub",
            &[
                "-p",
                p,
                "-t",
                "a",
                "-m",
                "x",
                "--will-qos",
                "3",
                "--will-topic",
                "w",
            ],
        ),
        (
            "pub",
            &["-p", p, "-t", "a", "-m", "x", "--will-topic", "w/+"],
        ),
        ("pub", &["-p", p, "-m", "x", "-L", "http://h/a"]),
        ("pub", &["-p", p, "-m", "x", "-L", "mqtt://h"]),
        ("pub", &["-p", p, "-t", "a", "-m", "x", "--repeat", "0"]),
        (
            "pub",
            &["-p", p, "-t", "a", "-m", "x", "--repeat-delay", "-1"],
        ),
        ("pub", &["-p", p, "-t", "a", "-m", "x", "--cert", "c.pem"]),
        ("pub", &["-p", p, "-t", "a", "-m", "x", "-v"]),
        ("pub", &["-p", p, "-t", "a", "-m", "x", "-o", "file"]),
        ("pub", &["-p", p, "-t", "a", "-m", "x", "-D", "publish"]),
        (
            "pub",
            &[
                "-p",
                p,
                "-t",
                "a",
                "-m",
                "x",
                "-D",
                "pubish",
                "user-property",
                "k",
                "v",
            ],
        ),
        (
            "pub",
            &["-p", p, "-t", "a", "-m", "x", "-D", "publish", "foo", "1"],
        ),
        (
            "pub",
            &[
                "-p",
                p,
                "-t",
                "a",
                "-m",
                "x",
                "-D",
                "publish",
                "session-expiry-interval",
                "1",
            ],
        ),
        (
            "pub",
            &[
                "-p",
                p,
                "-t",
                "a",
                "-m",
                "x",
                "-D",
                "publish",
                "message-expiry-interval",
                "-1",
            ],
        ),
        (
            "pub",
            &[
                "-p",
                p,
                "-t",
                "a",
                "-m",
                "x",
                "-D",
                "publish",
                "subscription-identifier",
                "1",
            ],
        ),
        (
            "pub",
            &[
                "-p",
                p,
                "-t",
                "a",
                "-m",
                "x",
                "-D",
                "puback",
                "reason-string",
                "r",
            ],
        ),
        (
            "pub",
            &[
                "-p",
                p,
                "-t",
                "a",
                "-m",
                "x",
                "-D",
                "connect",
                "receive-maximum",
                "0",
            ],
        ),
        (
            "pub",
            &[
                "-p",
                p,
                "-t",
                "a",
                "-m",
                "x",
                "-D",
                "publish",
                "content-type",
                "a",
                "-D",
                "publish",
                "content-type",
                "b",
            ],
        ),
        (
            "pub",
            &[
                "-p",
                p,
                "-t",
                "a",
                "-m",
                "x",
                "-x",
                "5",
                "-D",
                "connect",
                "session-expiry-interval",
                "6",
            ],
        ),
        ("sub", &["-p", p]),
        ("sub", &["-p", p, "-U", "a"]),
        ("sub", &["-p", p, "-t", "a/#/b"]),
        ("sub", &["-p", p, "-t", "a", "-T", "b/#/c"]),
        ("sub", &["-p", p, "-t", "a", "-C", "0"]),
        ("sub", &["-p", p, "-t", "a", "-W", "0"]),
        ("sub", &["-p", p, "-t", "a", "-R", "--retained-only"]),
        ("sub", &["-p", p, "-t", "a", "-F", "%z"]),
        ("sub", &["-p", p, "-t", "a", "-F", r"\q"]),
        ("sub", &["-p", p, "-t", "a", "--random-filter", "0"]),
        ("sub", &["-p", p, "-t", "a", "-r"]),
        ("sub", &["-p", p, "-t", "a", "-m", "x"]),
        (
            "sub",
            &[
                "-p",
                p,
                "-t",
                "a",
                "-D",
                "subscribe",
                "subscription-identifier",
                "268435456",
            ],
        ),
        ("rr", &["-p", p, "-t", "a", "-m", "x"]),
        ("rr", &["-p", p, "-e", "a", "-m", "x"]),
        ("rr", &["-p", p, "-t", "a", "-e", "r/+", "-m", "x"]),
        ("rr", &["-p", p, "-t", "a", "-e", "r", "-m", "x", "-C", "1"]),
    ];
    for (tool, args) in cases {
        same(tool, args);
    }
    // Properties over MQTT 3.x: Mosquitto refuses CONNECT ones and the will's
    // in its words; for the others it silently sends nothing (no PUBLISH, no
    // SUBSCRIBE) and Starling says why instead.
    same(
        "pub",
        &[
            "-p",
            p,
            "-t",
            "a",
            "-m",
            "x",
            "-D",
            "connect",
            "user-property",
            "k",
            "v",
            "-V",
            "311",
        ],
    );
    for (tool, args) in [
        (
            "pub",
            &[
                "-t",
                "a",
                "-m",
                "x",
                "-D",
                "publish",
                "user-property",
                "k",
                "v",
            ][..],
        ),
        (
            "sub",
            &["-t", "a", "-D", "subscribe", "user-property", "k", "v"],
        ),
        (
            "sub",
            &["-t", "a", "-D", "unsubscribe", "user-property", "k", "v"],
        ),
        (
            "pub",
            &[
                "-t",
                "a",
                "-m",
                "x",
                "-D",
                "disconnect",
                "reason-string",
                "r",
            ],
        ),
    ] {
        let mut all = vec!["-p", p];
        all.extend_from_slice(args);
        all.extend(["-V", "mqttv311"]);
        let packet = args[args.iter().position(|&a| a == "-D").unwrap() + 1];
        let ours = Run::starling(tool, &all).run();
        assert_eq!(
            (ours.stderr, ours.code),
            (
                format!("Error: -D {packet} properties need MQTT v5 (-V mqttv5).\n"),
                Some(1)
            )
        );
    }
    // "Both topic and message": the error, then the whole usage on stdout.
    let ours = Run::starling("pub", ["-p", p, "-m", "x"]).run();
    assert_eq!(ours.code, Some(1));
    assert_eq!(
        ours.stderr,
        "Error: Both topic and message must be supplied.\n"
    );
    assert!(ours
        .stdout
        .starts_with("starling pub is a simple mqtt client"));
}

#[test]
fn unreachable_brokers_and_unknown_hosts_fail_in_one_line_as_mosquittos() {
    let closed = free_port().to_string();
    for tool in ["pub", "sub", "rr"] {
        let args: &[&str] = match tool {
            "pub" => &["-p", &closed, "-t", "a", "-m", "x"],
            "sub" => &["-p", &closed, "-t", "a"],
            _ => &["-p", &closed, "-t", "a", "-e", "r", "-m", "x"],
        };
        same(tool, args);
        let ours = Run::starling(tool, args).run();
        assert_eq!(
            (ours.stderr.as_str(), ours.code),
            ("Error: Connection refused\n", Some(1))
        );
    }
    same("pub", &["-h", "no-such-host.invalid", "-t", "a", "-m", "x"]);
    same("pub", &["-p", &closed, "-t", "a", "-m", "x", "--quiet"]);
}

#[test]
fn refused_connections_say_why_in_one_line_and_exit_with_the_connack_code() {
    let broker = Broker::mosquitto("allow_anonymous false\n");
    let port = broker.port.to_string();
    for (tool, version, line, code) in [
        (
            "pub",
            "mqttv311",
            "Connection error: Connection Refused: not authorised.",
            5,
        ),
        (
            "pub",
            "mqttv31",
            "Connection error: Connection Refused: not authorised.",
            5,
        ),
        ("pub", "mqttv5", "Connection error: Not authorized", 135),
        (
            "sub",
            "mqttv311",
            "Connection error: Connection Refused: not authorised.",
            5,
        ),
        ("sub", "mqttv5", "Connection error: Not authorized", 135),
        ("rr", "mqttv5", "Connection error: Not authorized", 135),
    ] {
        let args: Vec<&str> = match tool {
            "pub" => vec!["-p", &port, "-V", version, "-t", "a", "-m", "x", "-d"],
            "sub" => vec!["-p", &port, "-V", version, "-t", "a", "-d"],
            _ => vec![
                "-p", &port, "-V", version, "-t", "a", "-e", "r", "-m", "x", "-d",
            ],
        };
        let (theirs, ours) = both(tool, &args);
        // One line: Mosquitto's first (pub adds a second that says nothing more).
        assert_eq!(ours.stderr, format!("{line}\n"), "{tool} {version}");
        assert!(
            theirs.stderr.starts_with(&ours.stderr),
            "{tool} {version}: {theirs:?}"
        );
        assert_eq!(ours.code, Some(code));
        assert_eq!(ours.code, theirs.code);
        // The -d lines show the CONNACK's code too.
        assert_eq!(
            mask_ids(&ours.stdout),
            mask_ids(&theirs.stdout),
            "{tool} {version}"
        );
        assert!(ours.stdout.contains(&format!("received CONNACK ({code})")));
    }
    // --quiet hides the reason, not the status.
    let ours = Run::starling("pub", ["-p", &port, "-t", "a", "-m", "x", "--quiet"]).run();
    assert_eq!((ours.stderr.as_str(), ours.code), ("", Some(5)));
    // A password without a user name is refused before connecting (3.x).
    same("pub", &["-p", &port, "-t", "a", "-m", "x", "-P", "secret"]);
}

#[test]
fn tls_options_are_checked_as_mosquitto_does() {
    let scratch = Scratch::new("tls");
    let ca = scratch.write("ca.pem", "not really a certificate\n");
    let ca = ca.to_str().unwrap();
    let broker = Broker::mosquitto("");
    let port = broker.port.to_string();
    let missing = scratch.path("missing.pem");
    let missing = missing.to_str().unwrap();
    // Checks Mosquitto makes before connecting: same message and status.
    same(
        "pub",
        &["-p", &port, "-t", "a", "-m", "x", "--cafile", missing],
    );
    same(
        "pub",
        &[
            "-p",
            &port,
            "-t",
            "a",
            "-m",
            "x",
            "--cafile",
            ca,
            "--tls-version",
            "tlsv9",
        ],
    );
    same(
        "pub",
        &[
            "-p", &port, "-t", "a", "-m", "x", "--cafile", ca, "--cert", ca, "--key", missing,
        ],
    );
    same("pub", &["-p", &port, "-t", "a", "-m", "x", "--key", ca]);
    same(
        "pub",
        &["-p", &port, "-t", "a", "-m", "x", "--keyform", "pem"],
    );
    same("sub", &["-p", &port, "-t", "a", "--psk", "00"]);
    // --unix and --proxy: transports the client does not have, said in one line.
    let unix = Run::starling("pub", ["--unix", "/tmp/x.sock", "-t", "a", "-m", "x"]).run();
    assert!(
        unix.stderr.starts_with("Error: --unix is not supported"),
        "{unix:?}"
    );
    let proxy = Run::starling("pub", ["--proxy", "socks5h://h", "-t", "a", "-m", "x"]).run();
    assert!(
        proxy.stderr.starts_with("Error: --proxy is not supported"),
        "{proxy:?}"
    );
    same("pub", &["--proxy", "http://h", "-t", "a", "-m", "x"]);
}

#[test]
fn defaults_file_is_read_as_mosquitto_reads_its_own() {
    let broker = Broker::mosquitto("");
    let port = broker.port.to_string();
    let scratch = Scratch::new("xdg");
    let xdg = scratch.path("config");
    // Comments, CR LF, an option and its value split at the first space (the
    // value keeps the rest, spaces included), leading spaces before the option.
    let file = format!("# defaults\n-p {port}\n-d\r\n-m hello world  \n\n -i  spaced\n");
    scratch.write("config/mosquitto_pub", &file);
    scratch.write("config/starling/pub", &file);
    for args in [
        &["-t", "cfg/x"][..],
        &["-t", "cfg/x", "-m", "again"],
        &["-t", "cfg/x", "-q", "1"],
    ] {
        let theirs = Run::mosquitto("mosquitto_pub", args)
            .env("XDG_CONFIG_HOME", &xdg)
            .run();
        let ours = Run::starling("pub", args)
            .env("XDG_CONFIG_HOME", &xdg)
            .run();
        assert_eq!(ours.stdout, theirs.stdout, "{args:?}");
        assert_eq!(ours.stderr, as_starling(&theirs.stderr), "{args:?}");
        assert_eq!(ours.code, theirs.code, "{args:?}");
    }
    let ours = Run::starling("pub", ["-t", "cfg/x"])
        .env("XDG_CONFIG_HOME", &xdg)
        .run();
    assert!(ours
        .stdout
        .contains("Client  spaced sending PUBLISH (d0, q0, r0, m1, 'cfg/x', ... (13 bytes))"));
    // An option without its value on the same line is an error, as in Mosquitto.
    scratch.write("config/starling/sub", format!("-p {port}\n-q\n2\n"));
    let ours = Run::starling("sub", ["-t", "a"])
        .env("XDG_CONFIG_HOME", &xdg)
        .run();
    assert_eq!(ours.code, Some(1));
    assert!(ours
        .stderr
        .starts_with("Error: -q argument given but no QoS specified."));
    // Without XDG_CONFIG_HOME: ~/.config/starling/rr.
    scratch.write(
        "home/.config/starling/rr",
        format!("-p {port}\n-e resp/home\n-W 1\n"),
    );
    let ours = Run::starling("rr", ["-t", "req/home", "-m", "x", "-d"])
        .env_remove("XDG_CONFIG_HOME")
        .env("HOME", scratch.path("home"))
        .run();
    assert_eq!(ours.code, Some(27), "{ours:?}");
    assert!(ours.stdout.contains("Topic: resp/home"), "{ours:?}");
}

#[test]
fn help_lists_every_flag_and_h_is_the_host() {
    for tool in ["pub", "sub", "rr"] {
        let theirs = Run::mosquitto(&format!("mosquitto_{tool}"), ["--help"]).run();
        let ours = Run::starling(tool, ["--help"]).run();
        assert_eq!(ours.code, Some(0));
        assert!(
            ours.stdout.contains(&format!("Usage: starling {tool} ")),
            "{}",
            ours.stdout
        );
        // Every flag Mosquitto's help describes (" -X : ...", " --xyz : ...").
        for line in theirs.stdout.lines() {
            let Some((flag, _)) = line.trim_start().split_once(" : ") else {
                continue;
            };
            if flag.starts_with('-') && !flag.contains(' ') {
                assert!(
                    ours.stdout.contains(&format!(" {flag} :")),
                    "starling {tool} --help lacks {flag}"
                );
            }
        }
        assert!(ours.stdout.contains("STARLING_TLS_PASSPHRASE_FILE"));
        let version = Run::starling(tool, ["--version"]).run();
        assert_eq!(version.code, Some(0));
        assert!(version
            .stdout
            .starts_with(&format!("starling {tool} version ")));
    }
    // -h is the host, not help.
    let ours = Run::starling("pub", ["-h", "no-such-host.invalid", "-t", "a", "-m", "x"]).run();
    assert_eq!(ours.stderr, "Unable to connect (Lookup error.).\n");
}
