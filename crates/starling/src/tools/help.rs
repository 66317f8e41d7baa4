//! `--help` for `starling pub`, `sub` and `rr`: Mosquitto 2.0's usage texts, with
//! every flag, and what differs in Starling said where it applies.

use super::args::Tool;

const CONNECTION: &str =
    " -A : bind the outgoing socket to this host/ip address. Use to control which interface
      the client communicates over.
 -c : disable clean session/enable persistent client mode
      When this argument is used, the broker will be instructed not to clean existing sessions
      for the same client id when the client connects, and sessions will never expire when the
      client disconnects. MQTT v5 clients can change their session expiry interval with the -x
      argument.
 -d : enable debug messages (the lines Mosquitto 2.0's clients print).
 -D : Define MQTT v5 properties: -D command identifier value, e.g.
      -D publish user-property key value, -D connect session-expiry-interval 60.
      Commands: connect, publish, subscribe, unsubscribe, disconnect, will.
      Implies -V mqttv5 (a later -V still applies).
 -h : mqtt host to connect to. Defaults to localhost.
 -i : id to use for this client. Defaults to none: the broker assigns one (MQTT 3.1.1
      and 5), or a random mosq-... id (MQTT 3.1).
 -I : define the client id as id_prefix appended with the process id. Useful for when the
      broker is using the clientid_prefixes option.
 -k : keep alive in seconds for this client. Defaults to 60.
 -L : specify user, password, hostname, port and topic as a URL in the form:
      mqtt(s)://[username[:password]@]host[:port]/topic
 -M : the maximum inflight messages for QoS 1/2. Defaults to 20.
 -p : network port to connect to. Defaults to 1883 for plain MQTT and 8883 for MQTT over TLS.
 -P : provide a password
 -u : provide a username
 -V : specify the version of the MQTT protocol to use when connecting.
";

const SESSION_EXPIRY: &str =
    " -x : Set the session-expiry-interval property on the CONNECT packet. Applies to MQTT v5
      clients only. Set to 0-4294967294 to specify the session will expire in that many
      seconds after the client disconnects, or use -1, 4294967295, or ∞ for a session
      that does not expire. Defaults to -1 if -c is also given, or 0 if -c not given.
 --help : display this message.
 --nodelay : disable Nagle's algorithm (Starling's client always does).
";

const WILL_AND_TLS: &str =
    " --will-payload : payload for the client Will, which is sent by the broker in case of
                  unexpected disconnection. If not given and will-topic is set, a zero
                  length message will be sent.
 --will-qos : QoS level for the client Will.
 --will-retain : if given, make the client Will retained.
 --will-topic : the topic on which to publish the client Will.
 --version : print the version and exit.

 TLS: on with --cafile or --capath (those CAs), --tls-use-os-certs, an mqtts:// URL
 or port 8883 (the system's CAs), or --psk, as in Mosquitto; OpenSSL, as in Mosquitto.
 An encrypted --key asks for its pass phrase on the terminal, or reads it from the file
 STARLING_TLS_PASSPHRASE_FILE names. --tls-engine and --keyform engine are refused.
 --cafile : path to a file containing trusted CA certificates to enable encrypted
            communication.
 --capath : path to a directory containing trusted CA certificates to enable encrypted
            communication.
 --cert : client certificate for authentication, if required by server.
 --key : client private key for authentication, if required by server.
 --keyform : keyfile type, can be either \"pem\" or \"engine\".
 --ciphers : openssl compatible list of TLS ciphers to support.
 --tls-version : TLS protocol version, can be one of tlsv1.3 tlsv1.2 or tlsv1.1: the
                 lowest allowed.
 --insecure : do not check that the server certificate hostname matches the remote
              hostname.
 --tls-alpn : TLS application layer protocol.
 --tls-engine : TLS engine device.
 --tls-engine-kpass-sha1 : SHA1 of the key password to be used with the selected engine.
 --tls-use-os-certs : Load and trust OS provided CA certificates.
 --psk : pre-shared-key in hexadecimal (no leading 0x) to enable TLS-PSK mode.
 --psk-identity : client identity string for TLS-PSK mode.
 --unix : connect through a unix domain socket (not supported yet: the tool stops).
 --proxy : SOCKS5 proxy URL socks5h://[username[:password]@]hostname[:port]
           (not supported yet: the tool stops).

Defaults are read from $XDG_CONFIG_HOME/starling/TOOL (or ~/.config/starling/TOOL),
one option per line, before the command line.
Exit status: 0 on success, 1 for bad arguments or when the broker cannot be reached,
the CONNACK code when the broker refuses the connection, 7 when the connection is
lost, 8 when the TLS handshake fails, 27 when -W times out.
";

const TLS_SYNOPSIS: &str = "\
{{--cafile file | --capath dir} [--cert file] [--key file]
{0}  [--ciphers ciphers] [--insecure]
{0}  [--tls-alpn protocol]
{0}  [--tls-engine engine] [--keyform keyform] [--tls-engine-kpass-sha1]]
{0}  [--tls-use-os-certs]
{0}[--psk hex-key --psk-identity identity [--ciphers ciphers]]
{0}[--proxy socks-url]
";

fn tls_synopsis(indent: &str) -> String {
    TLS_SYNOPSIS.replace("{0}", indent).replace("{{", "[{")
}

/// The text of `starling TOOL --help`.
pub(crate) fn text(tool: Tool) -> String {
    let version = env!("CARGO_PKG_VERSION");
    match tool {
        Tool::Pub => {
            let pad = " ".repeat(20);
            format!(
                "starling pub is a simple mqtt client that will publish a message on a single topic and exit.
starling pub version {version}, flag for flag with mosquitto_pub 2.0.

Usage: starling pub {{[-h host] [--unix path] [-p port] [-u username] [-P password] -t topic | -L URL}}
{pad}{{-f file | -l | -n | -m message}}
{pad}[-c] [-k keepalive] [-q qos] [-r] [--repeat N] [--repeat-delay time] [-x session-expiry]
{pad}[-A bind_address] [--nodelay]
{pad}[-i id] [-I id_prefix]
{pad}[-d] [--quiet]
{pad}[-M max_inflight]
{pad}[-u username [-P password]]
{pad}[--will-topic [--will-payload payload] [--will-qos qos] [--will-retain]]
{pad}{tls}{pad}[--property command identifier value]
{pad}[-D command identifier value]
       starling pub --help

{CONNECTION}      Can be mqttv5 (5), mqttv311 (311) or mqttv31 (31). Defaults to mqttv311.
 -f : send the contents of a file as the message.
 -l : read messages from stdin, sending a separate message for each line.
 -m : message payload to send.
 -n : send a null (zero length) message.
 -q : quality of service level to use for all messages. Defaults to 0.
 -r : message should be retained.
 -s : read message from stdin, sending the entire input as a message.
 -t : mqtt topic to publish to.
{SESSION_EXPIRY} --quiet : don't print error messages.
 --repeat : if publish mode is -f, -m, or -s, then repeat the publish N times.
 --repeat-delay : if using --repeat, wait time seconds between publishes. Defaults to 0.
{WILL_AND_TLS}",
                tls = tls_synopsis(&pad).trim_start_matches(' '),
            )
        }
        Tool::Sub => {
            let pad = " ".repeat(20);
            format!(
                "starling sub is a simple mqtt client that will subscribe to a set of topics and print all messages it receives.
starling sub version {version}, flag for flag with mosquitto_sub 2.0.

Usage: starling sub {{[-h host] [--unix path] [-p port] [-u username] [-P password] -t topic | -L URL [-t topic]}}
{pad}[-c] [-k keepalive] [-q qos] [-x session-expiry-interval]
{pad}[-C msg_count] [-E] [-R] [--retained-only] [--remove-retained] [-T filter_out] [-U topic ...]
{pad}[-F format]
{pad}[-W timeout_secs]
{pad}[-A bind_address] [--nodelay]
{pad}[-i id] [-I id_prefix]
{pad}[-d] [-N] [--quiet] [-v]
{pad}[--will-topic [--will-payload payload] [--will-qos qos] [--will-retain]]
{pad}{tls}{pad}[-D command identifier value]
       starling sub --help

{CONNECTION}      Can be mqttv5 (5), mqttv311 (311) or mqttv31 (31). Defaults to mqttv311.
 -C : disconnect and exit after receiving the 'msg_count' messages.
 -E : Exit once all subscriptions have been acknowledged by the broker.
 -F : output format: %t topic, %p payload, %x/%X payload in hex, %l length, %q QoS,
      %r retain, %m message id, %I ISO 8601 time, %U Unix time, %j/%J JSON,
      %A %C %D %E %F %P %R %S MQTT v5 properties, @ strftime fields, \\ escapes.
 -N : do not add an end of line character when printing the payload.
 -q : quality of service level to use for the subscription. Defaults to 0.
 -R : do not print stale messages (those with retain set).
 -t : mqtt topic to subscribe to. May be repeated multiple times.
 -T : topic string to filter out of results. May be repeated.
 -U : unsubscribe from a topic. May be repeated.
 -v : print published messages verbosely.
 -W : Specifies a timeout in seconds how long to process incoming MQTT messages.
{SESSION_EXPIRY} --pretty : print formatted output rather than minimised output when using the
            JSON output format option.
 --quiet : don't print error messages.
 --random-filter : only print a percentage of received messages. Set to 100 to have all
                   messages printed, 50.0 to have half of the messages received on average
                   printed, and so on.
 --retain-as-published : ask the broker (MQTT v5) to keep the retain flag of messages as
                         published.
 --retained-only : only handle messages with the retained flag set, and exit when the
                   first non-retained message is received.
 --remove-retained : send a message to the server to clear any received retained messages
                     Use -T to filter out messages you do not want to be cleared.
{WILL_AND_TLS}",
                tls = tls_synopsis(&pad).trim_start_matches(' '),
            )
        }
        Tool::Rr => {
            let pad = " ".repeat(19);
            format!(
                "starling rr is an mqtt client that can be used to publish a request message and wait for a response.
            Defaults to MQTT v5, where the Request-Response feature will be used, but v3.1.1 can also be used
            with v3.1.1 brokers.
starling rr version {version}, flag for flag with mosquitto_rr 2.0.

Usage: starling rr {{[-h host] [--unix path] [-p port] [-u username] [-P password] -t topic | -L URL}} -e response-topic
{pad}{{-f file | -n | -m message | -s}}
{pad}[-c] [-k keepalive] [-q qos] [-R] [-x session-expiry-interval]
{pad}[-F format]
{pad}[-W timeout_secs]
{pad}[-A bind_address] [--nodelay]
{pad}[-i id] [-I id_prefix]
{pad}[-d] [-N] [--quiet] [-v]
{pad}[--will-topic [--will-payload payload] [--will-qos qos] [--will-retain]]
{pad}{tls}{pad}[-D command identifier value]
       starling rr --help

{CONNECTION}      Can be mqttv5 (5), mqttv311 (311) or mqttv31 (31). Defaults to mqttv5.
 -e : Response topic. The client will subscribe to this topic to wait for a response,
      and send it as the request's response-topic property (MQTT v5). Correlation data
      is sent only if given (-D publish correlation-data ...); as with mosquitto_rr, the
      first message on the response topic is printed, whatever its correlation data.
 -f : send the contents of a file as the request.
 -F : output format (as starling sub -F).
 -m : message payload to send.
 -n : send a null (zero length) request.
 -N : do not add an end of line character when printing the payload.
 -q : quality of service level to use for communications. Defaults to 0.
 -R : do not print stale messages (those with retain set).
 -s : read the request from stdin, sending the entire input as a message.
 -t : topic where the request message will be sent.
 -v : print received messages verbosely.
 -W : Specifies a timeout in seconds how long to wait for a response.
{SESSION_EXPIRY} --pretty : print formatted output rather than minimised output when using the
            JSON output format option.
 --quiet : don't print error messages.
 --retain-as-published : accepted, as mosquitto_rr accepts it (it has no effect).
{WILL_AND_TLS}",
                tls = tls_synopsis(&pad).trim_start_matches(' '),
            )
        }
    }
}

/// The text of `starling TOOL --version`.
pub(crate) fn version(tool: Tool) -> String {
    format!(
        "starling {} version {}.\n",
        tool.name(),
        env!("CARGO_PKG_VERSION")
    )
}
