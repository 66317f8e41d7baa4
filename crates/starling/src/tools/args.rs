//! The options of `starling pub`, `sub` and `rr`, read as Mosquitto 2.0.11's
//! `client_config_load()` reads them: each argument compared whole (no `-qd`,
//! no `--qos=1`), the value in the next argument, numbers through C's `atoi`,
//! options a tool does not have refused as unknown, and each error in
//! Mosquitto's words. [`load`] reads the defaults file first, one chunk per
//! line, then the command line, then makes the checks Mosquitto makes once
//! everything is read.

use std::path::PathBuf;
use std::time::Duration;

use starling_proto::{ProtocolVersion, QoS, TopicFilter, TopicName};

use super::cnum::{atof, atoi, strtol_whole};
use super::config_file;
use super::props::Properties;
use super::Fail;

/// Which tool is reading its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tool {
    /// `starling pub` (`mosquitto_pub`).
    Pub,
    /// `starling sub` (`mosquitto_sub`).
    Sub,
    /// `starling rr` (`mosquitto_rr`).
    Rr,
}

impl Tool {
    /// The subcommand name, which is also the defaults file's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Tool::Pub => "pub",
            Tool::Sub => "sub",
            Tool::Rr => "rr",
        }
    }
}

/// What `pub` and `rr` send: `-m`, `-f`, `-s`, `-l` or `-n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Payload {
    /// `-m`: the argument.
    Message(Vec<u8>),
    /// `-f`: a file's contents.
    File(PathBuf),
    /// `-s`: all of standard input.
    Stdin,
    /// `-l`: one message per line of standard input.
    Lines,
    /// `-n`: an empty payload.
    Null,
}

/// The TLS options as given; [`super::tls`] decides from them, as Mosquitto
/// does, whether the connection uses TLS and how.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TlsArgs {
    pub(crate) cafile: Option<String>,
    pub(crate) capath: Option<String>,
    pub(crate) cert: Option<String>,
    pub(crate) key: Option<String>,
    pub(crate) ciphers: Option<String>,
    pub(crate) version: Option<String>,
    pub(crate) alpn: Option<String>,
    pub(crate) engine: Option<String>,
    pub(crate) keyform: Option<String>,
    pub(crate) kpass_sha1: Option<String>,
    pub(crate) psk: Option<String>,
    pub(crate) psk_identity: Option<String>,
    pub(crate) insecure: bool,
    pub(crate) use_os_certs: bool,
}

/// Everything the options say.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) tool: Tool,
    pub(crate) host: String,
    /// `-p` or the URL's port; `None` for the default (1883, or 8883 with TLS).
    pub(crate) port: Option<i32>,
    /// `-L mqtts://...`, which asks for TLS with the system's CAs (Mosquitto's
    /// `tls_use_os_certs`); a later `mqtt://` URL does not undo it.
    pub(crate) url_tls: bool,
    pub(crate) unix_socket: Option<String>,
    pub(crate) proxy: Option<String>,
    pub(crate) bind_address: Option<String>,
    pub(crate) nodelay: bool,
    pub(crate) version: ProtocolVersion,
    pub(crate) id: Option<Vec<u8>>,
    pub(crate) id_prefix: Option<Vec<u8>>,
    pub(crate) keepalive: u16,
    pub(crate) clean_session: bool,
    /// `-x` (or what `-c` implies for MQTT 5.0); `None` if unset.
    pub(crate) session_expiry: Option<u32>,
    pub(crate) username: Option<Vec<u8>>,
    pub(crate) password: Option<Vec<u8>>,
    pub(crate) will_topic: Option<String>,
    pub(crate) will_payload: Option<Vec<u8>>,
    pub(crate) will_qos: QoS,
    pub(crate) will_retain: bool,
    pub(crate) max_inflight: u16,
    pub(crate) qos: QoS,
    pub(crate) debug: bool,
    pub(crate) quiet: bool,
    pub(crate) properties: Properties,
    pub(crate) tls: TlsArgs,
    pub(crate) payload: Option<Payload>,
    /// The topic `pub` publishes to and `rr` sends its request to.
    pub(crate) topic: Option<String>,
    pub(crate) retain: bool,
    pub(crate) repeat_count: u32,
    pub(crate) repeat_delay: Duration,
    pub(crate) response_topic: Option<String>,
    /// The filters `sub` subscribes to.
    pub(crate) topics: Vec<String>,
    pub(crate) unsub_topics: Vec<String>,
    pub(crate) filter_outs: Vec<String>,
    /// `-C`: stop after this many messages; 0 for no limit (1 for `rr`).
    pub(crate) msg_count: u32,
    /// `-W`: seconds.
    pub(crate) timeout: Option<u32>,
    pub(crate) no_retain: bool,
    pub(crate) retain_as_published: bool,
    pub(crate) retained_only: bool,
    pub(crate) remove_retained: bool,
    pub(crate) exit_after_sub: bool,
    /// `--random-filter`: the chance of printing, in ten-thousandths.
    pub(crate) random_filter: u32,
    pub(crate) verbose: bool,
    pub(crate) eol: bool,
    pub(crate) pretty: bool,
    pub(crate) format: Option<Vec<u8>>,
}

impl Config {
    /// Mosquitto's `init_config()`.
    fn new(tool: Tool) -> Config {
        Config {
            tool,
            host: String::new(),
            port: None,
            url_tls: false,
            unix_socket: None,
            proxy: None,
            bind_address: None,
            nodelay: false,
            version: match tool {
                Tool::Rr => ProtocolVersion::V5,
                Tool::Pub | Tool::Sub => ProtocolVersion::V3_1_1,
            },
            id: None,
            id_prefix: None,
            keepalive: 60,
            clean_session: true,
            session_expiry: None,
            username: None,
            password: None,
            will_topic: None,
            will_payload: None,
            will_qos: QoS::AtMostOnce,
            will_retain: false,
            max_inflight: 20,
            qos: QoS::AtMostOnce,
            debug: false,
            quiet: false,
            properties: Properties::default(),
            tls: TlsArgs::default(),
            payload: None,
            topic: None,
            retain: false,
            repeat_count: 1,
            repeat_delay: Duration::ZERO,
            response_topic: None,
            topics: Vec::new(),
            unsub_topics: Vec::new(),
            filter_outs: Vec::new(),
            msg_count: if tool == Tool::Rr { 1 } else { 0 },
            timeout: None,
            no_retain: false,
            retain_as_published: false,
            retained_only: false,
            remove_retained: false,
            exit_after_sub: false,
            random_filter: 10_000,
            verbose: false,
            eol: true,
            pretty: false,
            format: None,
        }
    }

    /// The port to connect to: the one given, else 8883 if TLS is asked for, else 1883.
    pub(crate) fn port(&self) -> i32 {
        self.port.unwrap_or(
            if self.tls.cafile.is_some() || self.tls.capath.is_some() || self.tls.psk.is_some() {
                8883
            } else {
                1883
            },
        )
    }
}

/// What reading the arguments asks for.
#[derive(Debug)]
pub(crate) enum Loaded {
    /// Run with this configuration.
    Run(Box<Config>),
    /// `--help`.
    Help,
    /// `--version`.
    Version,
}

/// Where an option stops being read early.
enum Stop {
    Help,
    Version,
}

/// An error while reading one option: Mosquitto's message with its newlines.
type ArgResult<T> = Result<T, Fail>;

fn bad(message: impl Into<String>) -> Fail {
    Fail::usage(message)
}

/// Reads the defaults file and the command line `args` (without the program
/// and subcommand names) for `tool`, and makes Mosquitto's checks.
pub(crate) fn load(tool: Tool, args: &[Vec<u8>]) -> Result<Loaded, Fail> {
    let mut cfg = Config::new(tool);
    let file_chunks = config_file::read(tool);
    for chunk in file_chunks.iter().chain(std::iter::once(&args.to_vec())) {
        match parse(&mut cfg, chunk)? {
            Some(Stop::Help) => return Ok(Loaded::Help),
            Some(Stop::Version) => return Ok(Loaded::Version),
            None => {}
        }
    }
    finish(&mut cfg)?;
    Ok(Loaded::Run(Box::new(cfg)))
}

/// The command line `args` alone (no defaults file), with Mosquitto's checks:
/// for the unit tests of other modules.
#[cfg(test)]
pub(crate) fn load_args(tool: Tool, args: &[&str]) -> Result<Config, Fail> {
    let mut cfg = Config::new(tool);
    let argv: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
    parse(&mut cfg, &argv)?;
    finish(&mut cfg)?;
    Ok(cfg)
}

/// The checks `client_config_load()` makes after reading every option.
fn finish(cfg: &mut Config) -> Result<(), Fail> {
    if cfg.will_payload.is_some() && cfg.will_topic.is_none() {
        return Err(bad("Error: Will payload given, but no will topic given.\n"));
    }
    if cfg.will_retain && cfg.will_topic.is_none() {
        return Err(bad("Error: Will retain given, but no will topic given.\n"));
    }
    if cfg.tls.cert.is_some() != cfg.tls.key.is_some() {
        return Err(bad(
            "Error: Both certfile and keyfile must be provided if one of them is set.\n",
        ));
    }
    if cfg.tls.keyform.is_some() && cfg.tls.key.is_none() {
        return Err(bad(
            "Error: If keyform is set, keyfile must be also specified.\n",
        ));
    }
    if cfg.tls.kpass_sha1.is_some() && (cfg.tls.keyform.is_none() || cfg.tls.engine.is_none()) {
        return Err(bad("Error: when using tls-engine-kpass-sha1, both tls-engine and keyform must also be provided.\n"));
    }
    if (cfg.tls.cafile.is_some() || cfg.tls.capath.is_some()) && cfg.tls.psk.is_some() {
        return Err(bad(
            "Error: Only one of --psk or --cafile/--capath may be used at once.\n",
        ));
    }
    if cfg.tls.psk.is_some() && cfg.tls.psk_identity.is_none() {
        return Err(bad("Error: --psk-identity required if --psk used.\n"));
    }
    if cfg.version.is_v5() {
        if !cfg.clean_session && cfg.session_expiry.is_none() {
            // -c without -x: a session that never expires.
            cfg.session_expiry = Some(u32::MAX);
        }
        if let Some(expiry) = cfg.session_expiry.filter(|&e| e > 0) {
            if expiry == u32::MAX && (cfg.id_prefix.is_some() || cfg.id.is_none()) {
                return Err(bad("Error: You must provide a client id if you are using an infinite session expiry interval.\n"));
            }
            cfg.properties.add_session_expiry(expiry);
        }
    } else if !cfg.clean_session && (cfg.id_prefix.is_some() || cfg.id.is_none()) {
        return Err(bad(
            "Error: You must provide a client id if you are using the -c option.\n",
        ));
    }
    if cfg.tool == Tool::Sub && cfg.topics.is_empty() {
        return Err(bad("Error: You must specify a topic to subscribe to.\n"));
    }
    if cfg.host.is_empty() {
        cfg.host = "localhost".to_owned();
    }
    cfg.properties.check().map_err(|message| {
        let mut fail = bad(message);
        fail.quiet_suppresses = true;
        fail
    })
}

/// Reads one argument vector (the command line, or one line of the defaults
/// file) into `cfg`, as `client_config_line_proc()` does.
fn parse(cfg: &mut Config, args: &[Vec<u8>]) -> ArgResult<Option<Stop>> {
    let tool = cfg.tool;
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_slice();
        let unknown = || {
            Fail::usage(format!(
                "Error: Unknown option '{}'.\n",
                String::from_utf8_lossy(arg)
            ))
        };
        // The value after option `args[i]`, or Mosquitto's "no value" error.
        let mut value = |what: &str| -> ArgResult<Vec<u8>> {
            if i + 1 >= args.len() {
                return Err(bad(format!("Error: {what}\n\n")));
            }
            i += 1;
            Ok(args[i].clone())
        };
        let only = |tools: &[Tool]| -> ArgResult<()> {
            if tools.contains(&tool) {
                Ok(())
            } else {
                Err(unknown())
            }
        };
        match arg {
            b"-A" => {
                let v = value("-A argument given but no address specified.")?;
                cfg.bind_address = Some(text(&v));
            }
            b"--cafile" => {
                cfg.tls.cafile = Some(text(&value(
                    "--cafile argument given but no file specified.",
                )?))
            }
            b"--capath" => {
                cfg.tls.capath = Some(text(&value(
                    "--capath argument given but no directory specified.",
                )?))
            }
            b"--cert" => {
                cfg.tls.cert = Some(text(&value(
                    "--cert argument given but no file specified.",
                )?))
            }
            b"--ciphers" => {
                cfg.tls.ciphers = Some(text(&value(
                    "--ciphers argument given but no ciphers specified.",
                )?))
            }
            b"-C" => {
                only(&[Tool::Sub])?;
                let v = value("-C argument given but no count specified.")?;
                let n = atoi(&v);
                if n < 1 {
                    return Err(bad(format!("Error: Invalid message count \"{n}\".\n\n")));
                }
                cfg.msg_count = n as u32;
            }
            b"-c" | b"--disable-clean-session" => cfg.clean_session = false,
            b"-d" | b"--debug" => cfg.debug = true,
            b"-D" | b"--property" => {
                i += 1;
                cfg.properties.parse(args, &mut i).map_err(bad)?;
                cfg.version = ProtocolVersion::V5;
            }
            b"-e" => {
                only(&[Tool::Rr])?;
                let v = value("-e argument given but no response topic specified.")?;
                let topic = utf8(&v, "-e")?;
                check_publish_topic(&topic, "response")?;
                cfg.response_topic = Some(topic);
            }
            b"-E" => {
                only(&[Tool::Sub])?;
                cfg.exit_after_sub = true;
            }
            b"-f" | b"--file" => {
                only(&[Tool::Pub, Tool::Rr])?;
                one_payload(cfg)?;
                let v = value("-f argument given but no file specified.")?;
                cfg.payload = Some(Payload::File(PathBuf::from(text(&v))));
            }
            b"-F" => {
                only(&[Tool::Sub, Tool::Rr])?;
                let v = value("-F argument given but no format specified.")?;
                super::sub_format::check_format(&v).map_err(|e| bad(format!("{e}\n")))?;
                cfg.format = Some(v);
            }
            b"--help" => return Ok(Some(Stop::Help)),
            b"-h" | b"--host" => {
                cfg.host = text(&value("-h argument given but no host specified.")?)
            }
            b"--insecure" => cfg.tls.insecure = true,
            b"-i" | b"--id" => {
                if cfg.id_prefix.is_some() {
                    return Err(bad(
                        "Error: -i and -I argument cannot be used together.\n\n",
                    ));
                }
                cfg.id = Some(value("-i argument given but no id specified.")?);
            }
            b"-I" | b"--id-prefix" => {
                if cfg.id.is_some() {
                    return Err(bad(
                        "Error: -i and -I argument cannot be used together.\n\n",
                    ));
                }
                cfg.id_prefix = Some(value("-I argument given but no id prefix specified.")?);
            }
            b"-k" | b"--keepalive" => {
                let v = value("-k argument given but no keepalive specified.")?;
                let k = atoi(&v);
                if !(5..=65535).contains(&k) {
                    return Err(bad("Error: Invalid keepalive given, it must be between 5 and 65535 inclusive.\n\n"));
                }
                cfg.keepalive = k as u16;
            }
            b"--key" => {
                cfg.tls.key = Some(text(&value("--key argument given but no file specified.")?))
            }
            b"--keyform" => {
                cfg.tls.keyform = Some(text(&value(
                    "--keyform argument given but no keyform specified.",
                )?))
            }
            b"-L" | b"--url" => {
                let v = value("-L argument given but no URL specified.")?;
                parse_url(cfg, &v)?;
            }
            b"-l" | b"--stdin-line" => {
                only(&[Tool::Pub])?;
                one_payload(cfg)?;
                cfg.payload = Some(Payload::Lines);
            }
            b"-m" | b"--message" => {
                only(&[Tool::Pub, Tool::Rr])?;
                one_payload(cfg)?;
                let v = value("-m argument given but no message specified.")?;
                if v.len() > 268_435_455 {
                    return Err(bad(
                        "Error: Message length must be less than 268435455 bytes.\n\n",
                    ));
                }
                cfg.payload = Some(Payload::Message(v));
            }
            b"-M" => {
                let v = value("-M argument given but max_inflight not specified.")?;
                let n = atoi(&v);
                if n < 1 {
                    return Err(bad(
                        "Error: Maximum inflight messages must be greater than 0.\n\n",
                    ));
                }
                cfg.max_inflight = u16::try_from(n).unwrap_or(u16::MAX);
            }
            b"--nodelay" => cfg.nodelay = true,
            b"-n" | b"--null-message" => {
                only(&[Tool::Pub, Tool::Rr])?;
                one_payload(cfg)?;
                cfg.payload = Some(Payload::Null);
            }
            b"-N" => {
                only(&[Tool::Sub, Tool::Rr])?;
                cfg.eol = false;
            }
            b"-p" | b"--port" => {
                let v = value("-p argument given but no port specified.")?;
                let port = atoi(&v);
                if !(0..=65535).contains(&port) {
                    return Err(bad(format!("Error: Invalid port given: {port}\n")));
                }
                cfg.port = Some(port);
            }
            b"--pretty" => {
                only(&[Tool::Sub, Tool::Rr])?;
                cfg.pretty = true;
            }
            b"-P" | b"--pw" => {
                cfg.password = Some(value("-P argument given but no password specified.")?)
            }
            b"--proxy" => {
                let v = text(&value(
                    "--proxy argument given but no proxy url specified.",
                )?);
                if !v.starts_with("socks5h://") {
                    return Err(bad(format!("Error: Unsupported proxy protocol: {v}\n")));
                }
                cfg.proxy = Some(v);
            }
            b"--psk" => {
                cfg.tls.psk = Some(text(&value("--psk argument given but no key specified.")?))
            }
            b"--psk-identity" => {
                cfg.tls.psk_identity = Some(text(&value(
                    "--psk-identity argument given but no identity specified.",
                )?))
            }
            b"-q" | b"--qos" => {
                let v = value("-q argument given but no QoS specified.")?;
                cfg.qos = qos(&v, |q| format!("Error: Invalid QoS given: {q}\n"))?;
            }
            b"--quiet" => cfg.quiet = true,
            b"-r" | b"--retain" => {
                only(&[Tool::Pub])?;
                cfg.retain = true;
            }
            b"-R" => {
                only(&[Tool::Sub, Tool::Rr])?;
                cfg.no_retain = true;
            }
            b"--random-filter" => {
                only(&[Tool::Sub])?;
                let v = value("--random-filter argument given but no chance specified.")?;
                let percent = atof(&v);
                // Mosquitto's check (10 × the value in 1..=10000)...
                if !(1..=10_000).contains(&((10.0 * percent) as i64)) {
                    return Err(bad(
                        "Error: --random-filter chance must be between 0.1-100.0\n\n",
                    ));
                }
                // ...but the chance its help describes: 2.0.11 compares 10 × the
                // value with a number below 10,000, so that 100 prints 10%.
                cfg.random_filter = ((100.0 * percent) as u32).min(10_000);
            }
            b"--remove-retained" => {
                only(&[Tool::Sub])?;
                cfg.remove_retained = true;
            }
            b"--repeat" => {
                only(&[Tool::Pub])?;
                let v = value("--repeat argument given but no count specified.")?;
                let n = atoi(&v);
                if n < 1 {
                    return Err(bad("Error: --repeat argument must be >0.\n\n"));
                }
                cfg.repeat_count = n as u32;
            }
            b"--repeat-delay" => {
                only(&[Tool::Pub])?;
                let v = value("--repeat-delay argument given but no time specified.")?;
                let seconds = atof(&v) as f32;
                if seconds < 0.0 {
                    return Err(bad("Error: --repeat-delay argument must be >=0.0.\n\n"));
                }
                // Mosquitto keeps microseconds in a C int.
                let micros = (seconds * 1.0e6).min(i32::MAX as f32) as u64;
                cfg.repeat_delay = Duration::from_micros(micros);
            }
            b"--retain-as-published" => {
                only(&[Tool::Sub, Tool::Rr])?;
                cfg.retain_as_published = true;
            }
            b"--retained-only" => {
                only(&[Tool::Sub])?;
                cfg.retained_only = true;
            }
            b"-s" | b"--stdin-file" => {
                only(&[Tool::Pub, Tool::Rr])?;
                one_payload(cfg)?;
                cfg.payload = Some(Payload::Stdin);
            }
            b"-t" | b"--topic" => {
                let v = value("-t argument given but no topic specified.")?;
                add_topic(cfg, &v, "-t")?;
            }
            b"-T" | b"--filter-out" => {
                only(&[Tool::Sub])?;
                let v = value("-T argument given but no topic filter specified.")?;
                let filter = utf8(&v, "-T")?;
                check_filter(&filter, "filter")?;
                cfg.filter_outs.push(filter);
            }
            b"--tls-alpn" => {
                cfg.tls.alpn = Some(text(&value(
                    "--tls-alpn argument given but no protocol specified.",
                )?))
            }
            b"--tls-engine" => {
                cfg.tls.engine = Some(text(&value(
                    "--tls-engine argument given but no engine_id specified.",
                )?))
            }
            b"--tls-engine-kpass-sha1" => {
                cfg.tls.kpass_sha1 = Some(text(&value(
                    "--tls-engine-kpass-sha1 argument given but no kpass sha1 specified.",
                )?))
            }
            b"--tls-use-os-certs" => cfg.tls.use_os_certs = true,
            b"--tls-version" => {
                cfg.tls.version = Some(text(&value(
                    "--tls-version argument given but no version specified.",
                )?))
            }
            b"-U" | b"--unsubscribe" => {
                only(&[Tool::Sub])?;
                let v = value("-U argument given but no unsubscribe topic specified.")?;
                let filter = utf8(&v, "-U")?;
                check_filter(&filter, "unsubscribe")?;
                cfg.unsub_topics.push(filter);
            }
            b"-u" | b"--username" => {
                cfg.username = Some(value("-u argument given but no username specified.")?)
            }
            b"--unix" => {
                let v = value("--unix argument given but no socket path specified.")?;
                cfg.unix_socket = Some(text(&v));
                cfg.port = Some(0);
            }
            b"-V" | b"--protocol-version" => {
                let v = value("--protocol-version argument given but no version specified.")?;
                cfg.version = match v.as_slice() {
                    b"mqttv31" | b"31" => ProtocolVersion::V3_1,
                    b"mqttv311" | b"311" => ProtocolVersion::V3_1_1,
                    b"mqttv5" | b"5" => ProtocolVersion::V5,
                    _ => return Err(bad("Error: Invalid protocol version argument given.\n\n")),
                };
            }
            b"-v" | b"--verbose" => {
                only(&[Tool::Sub, Tool::Rr])?;
                cfg.verbose = true;
            }
            b"--version" => return Ok(Some(Stop::Version)),
            b"-W" => {
                only(&[Tool::Sub, Tool::Rr])?;
                let v = value("-W argument given but no timeout specified.")?;
                let n = atoi(&v);
                if n < 1 {
                    return Err(bad(format!("Error: Invalid timeout \"{n}\".\n\n")));
                }
                cfg.timeout = Some(n as u32);
            }
            b"--will-payload" => {
                cfg.will_payload = Some(value(
                    "--will-payload argument given but no will payload specified.",
                )?)
            }
            b"--will-qos" => {
                let v = value("--will-qos argument given but no will QoS specified.")?;
                cfg.will_qos = qos(&v, |q| format!("Error: Invalid will QoS {q}.\n\n"))?;
            }
            b"--will-retain" => cfg.will_retain = true,
            b"--will-topic" => {
                let v = value("--will-topic argument given but no will topic specified.")?;
                let topic = utf8(&v, "--will-topic")?;
                check_publish_topic(&topic, "will")?;
                cfg.will_topic = Some(topic);
            }
            b"-x" => {
                let v = value("-x argument given but no session expiry interval specified.")?;
                cfg.session_expiry = Some(session_expiry(&v)?);
            }
            _ => return Err(unknown()),
        }
        i += 1;
    }
    Ok(None)
}

/// An argument as text (file names, hosts): lossy, as nothing here is sent.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A topic argument, which must be UTF-8.
fn utf8(bytes: &[u8], option: &str) -> ArgResult<String> {
    match std::str::from_utf8(bytes) {
        Ok(s) if starling_proto::string::validate(bytes).is_ok() => Ok(s.to_owned()),
        _ => Err(bad(format!(
            "Error: Malformed UTF-8 in {option} argument.\n\n"
        ))),
    }
}

fn one_payload(cfg: &Config) -> ArgResult<()> {
    if cfg.payload.is_some() {
        return Err(bad(
            "Error: Only one type of message can be sent at once.\n\n",
        ));
    }
    Ok(())
}

fn qos(value: &[u8], message: impl Fn(i32) -> String) -> ArgResult<QoS> {
    let q = atoi(value);
    u8::try_from(q)
        .ok()
        .and_then(QoS::from_u8)
        .ok_or_else(|| bad(message(q)))
}

/// `-x`: seconds, `-1` or `∞` for never; `strtol` with any C prefix.
fn session_expiry(value: &[u8]) -> ArgResult<u32> {
    if value == "∞".as_bytes() {
        return Ok(u32::MAX);
    }
    let n = strtol_whole(value)
        .ok_or_else(|| bad("Error: session-expiry-interval not a number.\n\n"))?;
    match n {
        -1 => Ok(u32::MAX),
        0..=0xFFFF_FFFF => Ok(n as u32),
        _ => Err(bad("Error: session-expiry-interval out of range.\n\n")),
    }
}

/// `mosquitto_pub_topic_check`, stricter in one way: an empty topic is refused
/// here rather than failing at publish time.
fn check_publish_topic(topic: &str, what: &str) -> ArgResult<()> {
    if TopicName::try_from(topic).is_err() {
        return Err(bad(format!(
            "Error: Invalid {what} topic '{topic}', does it contain '+' or '#'?\n"
        )));
    }
    Ok(())
}

fn check_filter(filter: &str, what: &str) -> ArgResult<()> {
    if TopicFilter::try_from(filter).is_err() {
        return Err(bad(format!(
            "Error: Invalid {what} topic '{filter}', are all '+' and '#' wildcards correct?\n"
        )));
    }
    Ok(())
}

/// `cfg_add_topic()`: the topic of `pub` and `rr` (the last one given wins), or
/// one more subscription of `sub`.
fn add_topic(cfg: &mut Config, raw: &[u8], option: &str) -> ArgResult<()> {
    let topic = utf8(raw, option)?;
    match cfg.tool {
        Tool::Pub | Tool::Rr => {
            check_publish_topic(&topic, "publish")?;
            cfg.topic = Some(topic);
        }
        Tool::Sub => {
            check_filter(&topic, "subscription")?;
            cfg.topics.push(topic);
        }
    }
    Ok(())
}

/// `-L mqtt[s]://[user[:password]@]host[:port]/topic`, read as Mosquitto reads it
/// (the scheme sets the default port; a port in the URL is not range-checked),
/// and also taking a bracketed IPv6 host.
fn parse_url(cfg: &mut Config, url: &[u8]) -> ArgResult<()> {
    let lower = url.to_ascii_lowercase();
    let rest = if lower.starts_with(b"mqtt://") {
        cfg.port = Some(1883);
        &url[7..]
    } else if lower.starts_with(b"mqtts://") {
        cfg.port = Some(8883);
        cfg.url_tls = true;
        &url[8..]
    } else {
        return Err(bad("Error: unsupported URL scheme.\n\n"));
    };
    let Some(slash) = rest.iter().position(|&b| b == b'/') else {
        return Err(bad(
            "Error: Invalid URL for -L argument specified - topic missing.\n",
        ));
    };
    let (authority, topic) = (&rest[..slash], &rest[slash + 1..]);
    add_topic(cfg, topic, "-L topic")?;
    let mut hostport = authority;
    if let Some(at) = authority.iter().position(|&b| b == b'@') {
        let userinfo = &authority[..at];
        hostport = &authority[at + 1..];
        match userinfo.iter().position(|&b| b == b':') {
            Some(colon) => {
                cfg.username = Some(userinfo[..colon].to_vec());
                cfg.password = Some(userinfo[colon + 1..].to_vec());
            }
            None => cfg.username = Some(userinfo.to_vec()),
        }
    }
    let (host, port) = match hostport.strip_prefix(b"[") {
        Some(bracketed) => match bracketed.iter().position(|&b| b == b']') {
            Some(end) => (&bracketed[..end], bracketed[end + 1..].strip_prefix(b":")),
            None => (hostport, None),
        },
        None => match hostport.iter().position(|&b| b == b':') {
            Some(colon) => (&hostport[..colon], Some(&hostport[colon + 1..])),
            None => (hostport, None),
        },
    };
    cfg.host = text(host);
    if let Some(port) = port {
        cfg.port = Some(atoi(port));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<Vec<u8>> {
        list.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    fn parsed(tool: Tool, list: &[&str]) -> Result<Config, String> {
        let mut cfg = Config::new(tool);
        match parse(&mut cfg, &args(list)) {
            Ok(None) => {}
            Ok(Some(_)) => return Err("help or version".into()),
            Err(fail) => return Err(fail.message),
        }
        finish(&mut cfg).map_err(|fail| fail.message)?;
        Ok(cfg)
    }

    #[test]
    fn options_are_read_like_mosquitto() {
        let cfg = parsed(
            Tool::Pub,
            &[
                "-h", "broker", "-p", "1884", "-t", "a/b", "-m", "hi", "-q", "2", "-r",
            ],
        )
        .unwrap();
        assert_eq!((cfg.host.as_str(), cfg.port()), ("broker", 1884));
        assert_eq!(cfg.topic.as_deref(), Some("a/b"));
        assert_eq!(cfg.payload, Some(Payload::Message(b"hi".to_vec())));
        assert_eq!((cfg.qos, cfg.retain), (QoS::ExactlyOnce, true));
        // atoi: "x" is QoS 0.
        assert_eq!(
            parsed(Tool::Pub, &["-t", "a", "-n", "-q", "x"])
                .unwrap()
                .qos,
            QoS::AtMostOnce
        );
        // -D switches to MQTT 5; a later -V switches back.
        let cfg = parsed(
            Tool::Pub,
            &["-t", "a", "-n", "-D", "publish", "content-type", "x"],
        )
        .unwrap();
        assert_eq!(cfg.version, ProtocolVersion::V5);
        let cfg = parsed(
            Tool::Pub,
            &[
                "-t",
                "a",
                "-n",
                "-D",
                "publish",
                "content-type",
                "x",
                "-V",
                "311",
            ],
        )
        .unwrap();
        assert_eq!(cfg.version, ProtocolVersion::V3_1_1);
        assert_eq!(
            parsed(Tool::Rr, &["-t", "a"]).unwrap().version,
            ProtocolVersion::V5
        );
    }

    #[test]
    fn errors_carry_mosquittos_text() {
        let err = |tool, list: &[&str]| parsed(tool, list).unwrap_err();
        assert_eq!(
            err(Tool::Pub, &["--bogus"]),
            "Error: Unknown option '--bogus'.\n"
        );
        assert_eq!(err(Tool::Pub, &["-v"]), "Error: Unknown option '-v'.\n");
        assert_eq!(err(Tool::Sub, &["-r"]), "Error: Unknown option '-r'.\n");
        assert_eq!(
            err(Tool::Pub, &["-t"]),
            "Error: -t argument given but no topic specified.\n\n"
        );
        assert_eq!(
            err(Tool::Pub, &["-q", "3"]),
            "Error: Invalid QoS given: 3\n"
        );
        assert_eq!(
            err(Tool::Pub, &["-p", "70000"]),
            "Error: Invalid port given: 70000\n"
        );
        assert_eq!(
            err(Tool::Pub, &["-m", "x", "-f", "y"]),
            "Error: Only one type of message can be sent at once.\n\n"
        );
        assert_eq!(
            err(Tool::Pub, &["-t", "a/#"]),
            "Error: Invalid publish topic 'a/#', does it contain '+' or '#'?\n"
        );
        assert_eq!(
            err(Tool::Sub, &["-t", "a/#/b"]),
            "Error: Invalid subscription topic 'a/#/b', are all '+' and '#' wildcards correct?\n"
        );
        assert_eq!(
            err(Tool::Sub, &[]),
            "Error: You must specify a topic to subscribe to.\n"
        );
        assert_eq!(
            err(Tool::Pub, &["-c", "-t", "a"]),
            "Error: You must provide a client id if you are using the -c option.\n"
        );
        assert_eq!(
            err(Tool::Pub, &["-c", "-V", "5"]),
            "Error: You must provide a client id if you are using an infinite session expiry interval.\n"
        );
        assert_eq!(
            err(Tool::Pub, &["-k", "3"]),
            "Error: Invalid keepalive given, it must be between 5 and 65535 inclusive.\n\n"
        );
        assert_eq!(
            err(Tool::Pub, &["-x", "abc"]),
            "Error: session-expiry-interval not a number.\n\n"
        );
        assert_eq!(
            err(Tool::Pub, &["-L", "http://h/t"]),
            "Error: unsupported URL scheme.\n\n"
        );
        assert_eq!(
            err(Tool::Pub, &["--cert", "c"]),
            "Error: Both certfile and keyfile must be provided if one of them is set.\n"
        );
        assert_eq!(
            err(Tool::Pub, &["--will-retain"]),
            "Error: Will retain given, but no will topic given.\n"
        );
        assert_eq!(
            err(Tool::Sub, &["-t", "a", "-F", "%z"]),
            "Error: Invalid format specifier 'z'.\n"
        );
    }

    #[test]
    fn session_expiry_and_clean_session() {
        let cfg = parsed(Tool::Pub, &["-V", "5", "-c", "-i", "me"]).unwrap();
        assert_eq!(cfg.session_expiry, Some(u32::MAX));
        let cfg = parsed(Tool::Pub, &["-V", "5", "-x", "0x10"]).unwrap();
        assert_eq!(cfg.session_expiry, Some(16));
        let cfg = parsed(Tool::Pub, &["-V", "5", "-x", "-1", "-i", "me"]).unwrap();
        assert_eq!(cfg.session_expiry, Some(u32::MAX));
        assert!(parsed(Tool::Pub, &["-x", "-2"]).is_err());
        // -x with -D connect session-expiry-interval is a duplicate, as in Mosquitto.
        let err = parsed(
            Tool::Pub,
            &["-x", "5", "-D", "connect", "session-expiry-interval", "6"],
        )
        .unwrap_err();
        assert_eq!(
            err,
            "Error in CONNECT properties: Duplicate property in property list\n"
        );
    }

    #[test]
    fn urls_give_host_port_credentials_and_topic() {
        let cfg = parsed(Tool::Pub, &["-L", "mqtt://u:p@example.com:1999/a/b", "-n"]).unwrap();
        assert_eq!((cfg.host.as_str(), cfg.port()), ("example.com", 1999));
        assert_eq!(cfg.username.as_deref(), Some(&b"u"[..]));
        assert_eq!(cfg.password.as_deref(), Some(&b"p"[..]));
        assert_eq!(cfg.topic.as_deref(), Some("a/b"));
        let cfg = parsed(Tool::Sub, &["-L", "MQTT://[::1]/x", "-t", "y"]).unwrap();
        assert_eq!((cfg.host.as_str(), cfg.port()), ("::1", 1883));
        assert_eq!(cfg.topics, ["x", "y"]);
        let cfg = parsed(Tool::Pub, &["-L", "mqtts://h/t"]).unwrap();
        assert!(cfg.url_tls);
        assert_eq!(cfg.port(), 8883);
        // The URL's scheme sets the port: a -p before it is overridden.
        let cfg = parsed(Tool::Pub, &["-p", "1", "-L", "mqtt://h/t"]).unwrap();
        assert_eq!(cfg.port(), 1883);
    }
}
