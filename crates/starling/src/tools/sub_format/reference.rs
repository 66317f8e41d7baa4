//! The reference test: the real `mosquitto_sub` 2.0.11, against a real `mosquitto`, prints
//! every message of a list with every format of a list (and `-v`, `-N`, `--pretty`, MQTT
//! 3.1.1 and 5.0); [`print_message`] must print the same bytes, on stdout and stderr.
//!
//! It runs the real tools and fails, never skips, when they are missing (scripts/test
//! installs them). Time fields are compared exactly too: each format carries one source
//! of the time `mosquitto_sub` used (`@s.@N`, `%U`, or an ISO 8601 time it printed),
//! which is read back from its output and given to [`print_message`].

use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use jiff::tz::TimeZone;
use starling_proto::property::{PublishProperties, UserProperty};
use starling_proto::{MqttString, QoS, SubscriptionId, TopicName};

use super::*;

/// Ends every format, in `-F` syntax, so that records can be told apart.
const TERMINATOR: &[u8] = br"\0\e\e\0";
const RECORD_END: &[u8] = b"\0\x1b\x1b\0";
const SUBSCRIPTION_ID: u32 = 7;
const UTC: &str = "UTC0";

fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|file| file.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not installed: this test compares with Debian's mosquitto and \
                 mosquitto-clients 2.0.11 (scripts/test installs them)"
            )
        })
}

/// A message as published, in the order subscribers receive it.
struct Sent {
    topic: &'static str,
    payload: Vec<u8>,
    qos: QoS,
    retain: bool,
    properties: PublishProperties,
}

fn string(s: &str) -> MqttString {
    MqttString::try_from(s).unwrap()
}

fn user(name: &str, value: &str) -> UserProperty {
    UserProperty {
        name: string(name),
        value: string(value),
    }
}

impl Sent {
    fn view<'a>(
        &'a self,
        mid: u16,
        properties: &'a PublishProperties,
        received: SystemTime,
    ) -> MessageView<'a> {
        MessageView {
            topic: self.topic,
            payload: &self.payload,
            qos: self.qos,
            retain: self.retain,
            mid,
            properties,
            received,
        }
    }
}

/// The packet identifiers the broker gives a new subscriber's messages: 1, 2, …
/// for those above QoS 0.
fn packet_ids(sent: &[Sent]) -> Vec<u16> {
    let mut last = 0;
    sent.iter()
        .map(|message| match message.qos {
            QoS::AtMostOnce => 0,
            _ => {
                last += 1;
                last
            }
        })
        .collect()
}

fn messages() -> Vec<Sent> {
    let sent = |topic, payload: &[u8], qos| Sent {
        topic,
        payload: payload.to_vec(),
        qos,
        retain: false,
        properties: PublishProperties::default(),
    };
    let mut retained = sent("ref/retained", "retained é".as_bytes(), QoS::AtLeastOnce);
    retained.retain = true;
    retained.properties.user_properties = vec![user("r", "1")];
    retained.properties.content_type = Some(string("text/plain"));
    // Messages with a message expiry interval are QoS 0: the broker forwards those
    // in the loop iteration that received them, while it counts down the interval
    // of a QoS 1 or 2 message that waits past a second boundary.
    let mut props = sent(
        "ref/props",
        b"props \"quoted\" \\ back/slash",
        QoS::AtMostOnce,
    );
    props.properties = PublishProperties {
        payload_format_indicator: Some(true),
        response_topic: Some(TopicName::try_from("resp/topic").unwrap()),
        correlation_data: Some(Bytes::from_static(b"corr\x01\xff")),
        user_properties: vec![
            user("name 1", "va:lue"),
            user("k2", ""),
            user("name 1", "dup"),
        ],
        content_type: Some(string("application/x-ct")),
        message_expiry_interval: Some(3600),
        ..PublishProperties::default()
    };
    let mut long = sent(
        "ref/long",
        b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-the-end-of-it",
        QoS::AtMostOnce,
    );
    long.properties.payload_format_indicator = Some(false);
    long.properties.message_expiry_interval = Some(u32::MAX);
    let nested = |n| format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes();
    vec![
        retained,
        props,
        long,
        sent("ref/te\"x\\t", b"hello world", QoS::AtMostOnce),
        sent(
            "ref/a b/binary",
            b"bin\x01\x02\t\n\r\x1f \x7f\x80\xc3\xa9\xff\"\\\x00end",
            QoS::AtLeastOnce,
        ),
        sent("ref/empty", b"", QoS::ExactlyOnce),
        sent(
            "ref/json",
            br#"{"a":[1,2.50,-0,1e3,1.5e300,12345678901,0.1,1e-7],"s":"x\u00e9\n\/","n":null,"t":true,"f":false,"o":{},"e":[],"d":{"k":[{"z":[]},[1,[2]]]}}"#,
            QoS::ExactlyOnce,
        ),
        sent("ref/json/scalar", b" \x01 -12.5e-3 \t", QoS::AtMostOnce),
        sent(
            "ref/json/string",
            br#""\ud83d\ude00 \u00e9 \t \/ \b\f\u001f""#,
            QoS::AtLeastOnce,
        ),
        sent("ref/json/bad", b"{\"a\":1,}", QoS::AtMostOnce),
        sent("ref/json/bom", b"\xEF\xBB\xBF[1,2]", QoS::AtMostOnce),
        sent("ref/json/hex", br#""a\uZZZZb""#, QoS::AtMostOnce),
        sent(
            "ref/json/numbers",
            b"[1e400,-1e400,2.2250738585072014e-308,5e-324,0.30000000000000004,\
              100000000000000000000,1E2,1.7976931348623157e308,-0.0,0.0,0.1,\
              123456789012345678,1.5,-7,3.14159265358979323846,1e21,1e-5,0.0001,01,1e+2,2E-2]",
            QoS::AtMostOnce,
        ),
        sent("ref/json/deep", &nested(1000), QoS::AtMostOnce),
        sent("ref/json/deeper", &nested(1001), QoS::AtMostOnce),
        sent(
            "ref/json/keys",
            br#"{"a":1,"a":2,"\u0041\"":3, "x" : [ true , false , null ] , "nul\u0000cut":"v\u0000w"}"#,
            QoS::AtMostOnce,
        ),
        sent("ref/json/ws", b"\t\n\r {\"k\"\x1f:\x01\"v\"}\x20\x02", QoS::AtMostOnce),
        sent("ref/json/raw", b"\"tab\there\x01\xff\"", QoS::AtMostOnce),
        sent("ref/json/bad2", b"[1 2]", QoS::AtMostOnce),
        sent("ref/json/bad3", b"\"unterminated", QoS::AtMostOnce),
        sent("ref/json/bad4", b".5", QoS::AtMostOnce),
        sent("ref/json/bad5", b"1.5.3", QoS::AtMostOnce),
        sent("ref/json/long-number", format!("1{}", "0".repeat(70)).as_bytes(), QoS::AtMostOnce),
        sent("ref/json/surrogate", br#""\ud83d x""#, QoS::AtMostOnce),
    ]
}

/// The `-D publish …` arguments for `props`, in the order `json::properties` lists them.
fn property_args(props: &PublishProperties) -> Vec<OsString> {
    let mut args: Vec<Vec<u8>> = Vec::new();
    let mut add = |name: &str, values: &[&[u8]]| {
        args.extend([
            b"-D".to_vec(),
            b"publish".to_vec(),
            name.as_bytes().to_vec(),
        ]);
        args.extend(values.iter().map(|v| v.to_vec()));
    };
    if let Some(utf8) = props.payload_format_indicator {
        add(
            "payload-format-indicator",
            &[if utf8 { b"1" } else { b"0" }],
        );
    }
    if let Some(topic) = &props.response_topic {
        add("response-topic", &[topic.as_str().as_bytes()]);
    }
    if let Some(data) = &props.correlation_data {
        add("correlation-data", &[data]);
    }
    for p in &props.user_properties {
        add(
            "user-property",
            &[p.name.as_str().as_bytes(), p.value.as_str().as_bytes()],
        );
    }
    if let Some(content_type) = &props.content_type {
        add("content-type", &[content_type.as_str().as_bytes()]);
    }
    if let Some(expiry) = props.message_expiry_interval {
        add("message-expiry-interval", &[expiry.to_string().as_bytes()]);
    }
    args.into_iter().map(OsString::from_vec).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// MQTT 5.0, subscribed with subscription identifier 7.
    V5WithId,
    V5,
    V311,
}

/// Where the time `mosquitto_sub` used is read back from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clock {
    /// The format has no time field.
    None,
    /// `@s.@N|` is put before the format.
    At,
    /// `%U|` is put before the format.
    Unix,
    /// The first ISO 8601 time printed (`%I`, or `tst` of `%j`), in UTC.
    Iso,
}

#[derive(Debug, Clone)]
struct Case {
    format: Option<Vec<u8>>,
    verbose: bool,
    eol: bool,
    pretty: bool,
    protocol: Protocol,
    clock: Clock,
    tz: &'static str,
}

impl Case {
    fn new(format: &[u8]) -> Case {
        Case {
            format: Some(format.to_vec()),
            verbose: false,
            eol: true,
            pretty: false,
            protocol: Protocol::V5WithId,
            clock: Clock::None,
            tz: UTC,
        }
    }

    fn default_output(verbose: bool, eol: bool) -> Case {
        Case {
            format: None,
            verbose,
            eol,
            ..Case::new(b"")
        }
    }

    fn clock(mut self, clock: Clock) -> Case {
        self.clock = clock;
        self
    }

    fn protocol(mut self, protocol: Protocol) -> Case {
        self.protocol = protocol;
        self
    }

    /// The `-F` given to `mosquitto_sub`.
    fn full_format(&self) -> Option<Vec<u8>> {
        let prefix: &[u8] = match self.clock {
            Clock::At => b"@s.@N|",
            Clock::Unix => b"%U|",
            Clock::None | Clock::Iso => b"",
        };
        let format = self.format.as_ref()?;
        Some([prefix, format, TERMINATOR].concat())
    }
}

fn cases() -> Vec<Case> {
    let mut every_at = Vec::new();
    for c in (0x20..=0x7e).chain("é".bytes()) {
        every_at.extend([b'@', c, b' ']);
    }
    let mut cases: Vec<Case> = [
        &br"%%|%t|%p|%l|%q|%r|%m"[..],
        br"%x|%X",
        br"%A|%C|%D|%E|%F|%P|%R|%S",
        br"[%10t][%-10t][%.3t][%10.3t][%-10.3t][%.0t][%3t][%.t]",
        br"[%10p][%-10p][%010p][%3p][%-p][%.2p][%-3p][%-05p][%0p][%100p]",
        br"[%10x][%-10x][%010X][%3x][%-x][%1x][%2X][%.1x][%-05x]",
        br"[%5l][%-5l][%05l][%5m][%-5m][%05m][%5q][%-5r][%05q]",
        br"[%5A][%-5A][%05A][%5E][%-5E][%05E][%5F][%-5F][%05F][%5S][%-5S][%05S]",
        br"[%10C][%-10C][%.2C][%05C][%3.1C][%10R][%-10R][%.3R][%010R]",
        br"[%10D][%10P][%-5%][%05%]",
        br"\\|\0|\a|\e|\n|\r|\t|\v|@@|%%",
        "é→ %t ←é".as_bytes(),
        br"%00005t|%-0010l|%99t|%0.5t",
        br"",
    ]
    .into_iter()
    .map(Case::new)
    .collect();
    cases.extend([
        Case::new(br"%A|%C|%D|%E|%F|%P|%R|%S|%m|%q").protocol(Protocol::V311),
        Case::new(br"%S|[%5S]|%P").protocol(Protocol::V5),
        Case {
            eol: false,
            ..Case::new(br"%t %p")
        },
        Case::new(&every_at).clock(Clock::At),
        Case {
            tz: "NST3:30NDT,M3.2.0,M11.1.0",
            ..Case::new(&every_at).clock(Clock::At)
        },
        Case {
            tz: "<+0545>-5:45",
            ..Case::new(br"@z @Z @c").clock(Clock::At)
        },
        Case::new(br"").clock(Clock::Unix),
        Case::new(br"%I").clock(Clock::Iso),
        Case::new(br"[%30I]").clock(Clock::Iso),
        Case::new(br"[%-30I]").clock(Clock::Iso),
        Case::new(br"[%.10I]").clock(Clock::Iso),
        Case::new(br"%j").clock(Clock::Iso),
        Case::new(br"%J|%t").clock(Clock::Iso),
        Case {
            pretty: true,
            ..Case::new(br"%j").clock(Clock::Iso)
        },
        Case {
            pretty: true,
            ..Case::new(br"%J").clock(Clock::Iso)
        },
        Case::new(br"%j").clock(Clock::Iso).protocol(Protocol::V311),
        Case::new(br"%j").clock(Clock::Iso).protocol(Protocol::V5),
        Case {
            eol: false,
            pretty: true,
            ..Case::new(br"%j").clock(Clock::Iso).protocol(Protocol::V311)
        },
        Case::default_output(false, true),
        Case::default_output(true, true),
        Case::default_output(false, false),
        Case::default_output(true, false),
    ]);
    cases
}

/// Kills what it holds when dropped, so a failed test leaves no process behind.
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn collect(mut pipe: impl Read + Send + 'static) -> (Arc<Mutex<Vec<u8>>>, JoinHandle<()>) {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let shared = Arc::clone(&buffer);
    let reader = thread::spawn(move || {
        let mut chunk = [0; 8192];
        while let Ok(n @ 1..) = pipe.read(&mut chunk) {
            shared.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    (buffer, reader)
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

fn start_broker(dir: &Path, processes: &mut Processes) -> u16 {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap()
        .port();
    let config = dir.join("mosquitto.conf");
    fs::write(
        &config,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
    )
    .unwrap();
    let broker = Command::new(tool("mosquitto"))
        .arg("-c")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto does not start");
    processes.0.push(broker);
    wait_until("mosquitto to listen", Duration::from_secs(10), || {
        if let Some(status) = processes.0[0].try_wait().unwrap() {
            panic!("mosquitto exited with {status} (port {port} taken?)");
        }
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    port
}

fn publish(port: u16, dir: &Path, n: usize, sent: &Sent) {
    let mut command = Command::new(tool("mosquitto_pub"));
    command
        .args(["-h", "127.0.0.1", "-V", "mqttv5"])
        .args(["-p", &port.to_string()])
        .args(["-q", &sent.qos.as_u8().to_string()])
        .args(["-t", sent.topic]);
    if sent.payload.is_empty() {
        command.arg("-n");
    } else {
        let file = dir.join(format!("payload-{n}"));
        fs::write(&file, &sent.payload).unwrap();
        command.arg("-f").arg(file);
    }
    if sent.retain {
        command.arg("-r");
    }
    command.args(property_args(&sent.properties));
    let output = command
        .stdin(Stdio::null())
        .output()
        .expect("mosquitto_pub does not run");
    assert!(
        output.status.success(),
        "mosquitto_pub of {} failed: {}",
        sent.topic,
        String::from_utf8_lossy(&output.stderr)
    );
}

struct Subscriber {
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

fn subscribe(port: u16, case: &Case, count: usize, processes: &mut Processes) -> Subscriber {
    let mut command = Command::new(tool("mosquitto_sub"));
    command
        .args(["-h", "127.0.0.1", "-q", "2", "-t", "ref/#", "-W", "60"])
        .args(["-p", &port.to_string()])
        .args(["-C", &count.to_string()])
        .env("TZ", case.tz);
    match case.protocol {
        Protocol::V5WithId => command
            .args(["-V", "mqttv5", "-D", "subscribe"])
            .args(["subscription-identifier", &SUBSCRIPTION_ID.to_string()]),
        Protocol::V5 => command.args(["-V", "mqttv5"]),
        Protocol::V311 => command.args(["-V", "mqttv311"]),
    };
    if let Some(format) = case.full_format() {
        command.arg("-F").arg(OsString::from_vec(format));
    }
    for (set, flag) in [
        (case.verbose, "-v"),
        (!case.eol, "-N"),
        (case.pretty, "--pretty"),
    ] {
        if set {
            command.arg(flag);
        }
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub does not start");
    let (stdout, out_reader) = collect(child.stdout.take().unwrap());
    let (stderr, err_reader) = collect(child.stderr.take().unwrap());
    processes.0.push(child);
    Subscriber {
        stdout,
        stderr,
        readers: vec![out_reader, err_reader],
    }
}

/// Splits a subscriber's output after each [`RECORD_END`] (and newline).
fn records(mut output: &[u8], eol: bool) -> Vec<&[u8]> {
    let end = [RECORD_END, if eol { b"\n" } else { b"" }].concat();
    let mut records = Vec::new();
    while let Some(at) = output.windows(end.len()).position(|w| w == end) {
        records.push(&output[..at + end.len()]);
        output = &output[at + end.len()..];
    }
    if !output.is_empty() {
        records.push(output);
    }
    records
}

/// The time `mosquitto_sub` printed at the start of `record`, or in it.
fn time_in(record: &[u8], clock: Clock) -> Option<SystemTime> {
    let text = String::from_utf8_lossy(record);
    match clock {
        Clock::None => Some(SystemTime::UNIX_EPOCH),
        Clock::At | Clock::Unix => {
            let (seconds, rest) = text.split_once('.')?;
            let nanos = rest.get(..9)?;
            let since = Duration::new(seconds.parse().ok()?, nanos.parse().ok()?);
            Some(SystemTime::UNIX_EPOCH + since)
        }
        Clock::Iso => {
            let bytes = text.as_bytes();
            let start = (0..bytes.len()).find(|&i| {
                bytes.len() >= i + 10
                    && bytes[i..i + 10].iter().enumerate().all(|(j, b)| {
                        if j == 4 || j == 7 {
                            *b == b'-'
                        } else {
                            b.is_ascii_digit()
                        }
                    })
            })?;
            // As much of YYYY-MM-DDTHH:MM:SS.ffffff as was printed.
            let shape = b"dddd-dd-ddTdd:dd:dd.dddddd";
            let mut len = 0;
            while len < shape.len()
                && bytes.get(start + len).is_some_and(|b| match shape[len] {
                    b'd' => b.is_ascii_digit(),
                    s => *b == s,
                })
            {
                len += 1;
            }
            let iso = match len {
                10..=18 => format!("{}T00:00:00", &text[start..start + 10]),
                19..=25 => text[start..start + 19].to_owned(),
                _ => text[start..start + 26].to_owned(),
            };
            let civil: jiff::civil::DateTime = iso.parse().ok()?;
            Some(civil.to_zoned(TimeZone::UTC).ok()?.timestamp().into())
        }
    }
}

fn expected_properties(sent: &Sent, protocol: Protocol) -> PublishProperties {
    match protocol {
        Protocol::V311 => PublishProperties::default(),
        Protocol::V5 => sent.properties.clone(),
        Protocol::V5WithId => PublishProperties {
            subscription_identifiers: vec![SubscriptionId::new(SUBSCRIPTION_ID).unwrap()],
            ..sent.properties.clone()
        },
    }
}

#[test]
fn reference_matches_mosquitto_sub_2_0_11() {
    let version = Command::new(tool("mosquitto_sub"))
        .arg("--help")
        .output()
        .expect("mosquitto_sub does not run");
    let help = String::from_utf8_lossy(&version.stdout);
    assert!(
        help.contains("mosquitto_sub version 2.0.11 "),
        "this test compares with mosquitto_sub 2.0.11; found: {}",
        help.lines().nth(1).unwrap_or_default()
    );

    let dir = std::env::temp_dir().join(format!("starling-sub-format-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let _dir = TempDir(dir.clone());
    let mut processes = Processes(Vec::new());
    let port = start_broker(&dir, &mut processes);

    let sent = messages();
    let cases = cases();
    publish(port, &dir, 0, &sent[0]);
    let subscribers: Vec<Subscriber> = cases
        .iter()
        .map(|case| subscribe(port, case, sent.len(), &mut processes))
        .collect();
    // One message at a time, each once every subscriber has printed the one before:
    // the broker may send a QoS 2 message after a QoS 0 one published later.
    let mids = packet_ids(&sent);
    let printed = |case: &Case, subscriber: &Subscriber| -> usize {
        let stdout = subscriber.stdout.lock().unwrap();
        match case.format {
            Some(_) => records(&stdout, case.eol).len(),
            // Without -F there is no time: the output so far is known in advance.
            None => (0..=sent.len())
                .take_while(|&n| {
                    let mut expected = Vec::new();
                    for (message, &mid) in sent.iter().zip(&mids).take(n) {
                        let properties = expected_properties(message, case.protocol);
                        let view = message.view(mid, &properties, SystemTime::UNIX_EPOCH);
                        format_default(case.verbose, case.eol, &view, &mut expected);
                    }
                    stdout.starts_with(&expected)
                })
                .count()
                .saturating_sub(1),
        }
    };
    for (n, message) in sent.iter().enumerate() {
        // The retained message is there before anyone subscribes: it reaches each
        // subscriber at once, and shows that its subscription is in place.
        if n > 0 {
            publish(port, &dir, n, message);
        }
        wait_until(
            &format!("every mosquitto_sub to print {}", message.topic),
            Duration::from_secs(20),
            || {
                cases
                    .iter()
                    .zip(&subscribers)
                    .all(|(case, subscriber)| printed(case, subscriber) > n)
            },
        );
    }
    wait_until(
        "every mosquitto_sub to exit",
        Duration::from_secs(30),
        || {
            processes.0[1..]
                .iter_mut()
                .all(|child| child.try_wait().unwrap().is_some())
        },
    );

    let mut failures = Vec::new();
    for (case, subscriber) in cases.iter().zip(subscribers) {
        for reader in subscriber.readers {
            reader.join().unwrap();
        }
        let stdout = subscriber.stdout.lock().unwrap().clone();
        let stderr = subscriber.stderr.lock().unwrap().clone();
        let actual: Vec<&[u8]> = match case.format {
            Some(_) => records(&stdout, case.eol),
            None => vec![&stdout],
        };
        let options = OutputOptions {
            format: case.full_format(),
            verbose: case.verbose,
            eol: case.eol,
            pretty: case.pretty,
            time_zone: TimeZone::posix(case.tz).unwrap(),
        };
        let mut expected_stdout = Vec::new();
        let mut expected_stderr = Vec::new();
        for (n, message) in sent.iter().enumerate() {
            let properties = expected_properties(message, case.protocol);
            let received = actual
                .get(n)
                .filter(|_| case.format.is_some())
                .and_then(|record| time_in(record, case.clock))
                .unwrap_or(SystemTime::UNIX_EPOCH);
            let view = message.view(mids[n], &properties, received);
            let mut record = Vec::new();
            for error in print_message(&options, &view, &mut record) {
                expected_stderr.extend_from_slice(format!("{error}\n").as_bytes());
            }
            if case.format.is_some() && actual.get(n).copied() != Some(&record[..]) {
                failures.push(format!(
                    "{case:?}\n  message {n} ({}):\n  mosquitto_sub: {}\n  starling:      {}",
                    message.topic,
                    actual.get(n).copied().unwrap_or_default().escape_ascii(),
                    record.escape_ascii(),
                ));
            }
            expected_stdout.extend_from_slice(&record);
        }
        if stdout != expected_stdout && (case.format.is_none() || failures.is_empty()) {
            failures.push(format!(
                "{case:?}\n  whole stdout differs:\n  mosquitto_sub: {}\n  starling:      {}",
                stdout.escape_ascii(),
                expected_stdout.escape_ascii(),
            ));
        }
        if stderr != expected_stderr {
            failures.push(format!(
                "{case:?}\n  stderr differs:\n  mosquitto_sub: {}\n  starling:      {}",
                stderr.escape_ascii(),
                expected_stderr.escape_ascii(),
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} differences from mosquitto_sub 2.0.11:\n{}",
        failures.len(),
        failures
            .iter()
            .take(25)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
