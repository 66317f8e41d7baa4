//! Mosquitto's `acl_file`: parsing and checking. Pure: text in, decisions out.
//!
//! The file, as mosquitto.conf(5) describes it:
//! - `topic [read|write|readwrite|deny] <topic>`: a rule for the section it is
//!   in; without an access word it is `readwrite` (and then the topic may not
//!   hold a space);
//! - `user <username>`: starts that user's section (by user name, not client
//!   id); the rules before the first `user` line are the anonymous section, for
//!   clients that gave no user name; sections of the same user add up;
//! - `pattern [access] <topic>`: a rule for every client, where a level that is
//!   exactly `%c` or `%u` stands for the client id or the user name;
//! - `#` at the start of a line makes a comment.
//!
//! A check, as Mosquitto's `acl_file` plugin makes it: first the client's own
//! section (the anonymous one, or its user's), then the patterns; in each, the
//! `deny` rules come before the grants. The first rule that matches decides if
//! it is a `deny` or grants the access asked for; one that matches without
//! granting (a `read` rule for a publish) lets the search go on. Nothing
//! matched: denied. So a user's grant is not undone by a `pattern deny`, and
//! `#` never matches `$SYS/...` (a filter starting with a wildcard does not
//! match a topic starting with `$` [MQTT-4.7.2-1]): `$SYS` needs its own rule.
//! Patterns deny every access to a client whose id or user name holds `+` or
//! `#` (CVE-2017-7650), and a `%u` pattern never applies to an anonymous client.
//!
//! A subscription is checked on its filter (the inner one for `$share/...`):
//! refused when a `deny` rule covers every topic it can match, granted when a
//! `read` rule can match some topic it matches; the search runs in the order
//! above. Every message is then checked again when it is delivered, so a
//! granted `a/#` next to `deny a/secret` never delivers `a/secret`.
//! (Mosquitto 2.0 grants every SUBSCRIBE and checks only deliveries.)

use std::collections::HashMap;
use std::str::Split;

use starling_proto::topic::matches;
use starling_proto::{TopicFilter, TopicName};

use super::LineProblem;

/// What a check asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Receive messages on a topic (deliveries, subscriptions).
    Read,
    /// Publish on a topic (PUBLISH, wills, retained messages).
    Write,
}

/// What a rule gives: both false is `deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Grant {
    read: bool,
    write: bool,
}

impl Grant {
    const DENY: Grant = Grant {
        read: false,
        write: false,
    };

    fn is_deny(self) -> bool {
        self == Grant::DENY
    }

    fn allows(self, access: Access) -> bool {
        match access {
            Access::Read => self.read,
            Access::Write => self.write,
        }
    }
}

/// One level of a `pattern` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Level {
    Literal(String),
    ClientId,
    Username,
}

#[derive(Debug, Clone)]
struct TopicRule {
    filter: String,
    grant: Grant,
}

#[derive(Debug, Clone)]
struct PatternRule {
    levels: Vec<Level>,
    grant: Grant,
}

impl PatternRule {
    fn uses_username(&self) -> bool {
        self.levels.contains(&Level::Username)
    }

    /// The rule's filter with `%c` and `%u` replaced, level by level; the id or
    /// name may itself span levels, as in Mosquitto's substitution.
    fn levels<'a>(&'a self, client: &Client<'a>) -> impl Iterator<Item = &'a str> + 'a {
        let client_id = client.client_id;
        let username = client.username.unwrap_or("");
        self.levels
            .iter()
            .flat_map(move |level| -> Split<'a, char> {
                match level {
                    Level::Literal(text) => text.split('/'),
                    Level::ClientId => client_id.split('/'),
                    Level::Username => username.split('/'),
                }
            })
    }
}

/// Who is asking.
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    /// The client identifier (as assigned, for an empty one).
    pub client_id: &'a str,
    /// The user name, `None` for an anonymous client.
    pub username: Option<&'a str>,
}

/// A parsed ACL file.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    anonymous: Vec<TopicRule>,
    users: HashMap<String, Vec<TopicRule>>,
    patterns: Vec<PatternRule>,
}

impl Acl {
    /// Reads an ACL file's text: the ACL and its warnings, or every error.
    pub fn parse(text: &str) -> Result<(Acl, Vec<LineProblem>), Vec<LineProblem>> {
        let mut acl = Acl::default();
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let mut user: Option<String> = None;
        for (index, line) in text.lines().enumerate() {
            let line_number = index + 1;
            // Mosquitto: a comment starts the line; trailing blanks are dropped.
            if line.starts_with('#') {
                continue;
            }
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (keyword, rest) = split_word(line);
            let result = match keyword {
                "user" => {
                    if rest.is_empty() {
                        Err("user: missing user name".to_string())
                    } else {
                        user = Some(rest.to_string());
                        Ok(None)
                    }
                }
                "topic" | "pattern" => rule(keyword, rest).map(|(grant, topic)| {
                    if keyword == "topic" {
                        let rules = match &user {
                            Some(name) => acl.users.entry(name.clone()).or_default(),
                            None => &mut acl.anonymous,
                        };
                        rules.push(TopicRule {
                            filter: topic.to_string(),
                            grant,
                        });
                        None
                    } else {
                        let (levels, warning) = pattern_levels(topic);
                        acl.patterns.push(PatternRule { levels, grant });
                        warning
                    }
                }),
                other => Err(format!(
                    "unknown keyword '{other}' (expected topic, user or pattern)"
                )),
            };
            match result {
                Ok(None) => {}
                Ok(Some(reason)) => warnings.push(LineProblem {
                    line: line_number,
                    reason,
                }),
                Err(reason) => errors.push(LineProblem {
                    line: line_number,
                    reason,
                }),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        // Deny rules first, as Mosquitto keeps them at the front of each list;
        // a stable sort keeps the file order within each kind.
        acl.anonymous.sort_by_key(|r| !r.grant.is_deny());
        for rules in acl.users.values_mut() {
            rules.sort_by_key(|r| !r.grant.is_deny());
        }
        acl.patterns.sort_by_key(|r| !r.grant.is_deny());
        Ok((acl, warnings))
    }

    /// Whether `client` may read or write `topic`.
    pub fn check(&self, client: &Client<'_>, topic: &TopicName, access: Access) -> bool {
        let topic = topic.as_str();
        let decide = |matched: bool, grant: Grant| match (matched, grant.is_deny()) {
            (false, _) => None,
            (true, true) => Some(false),
            (true, false) => grant.allows(access).then_some(true),
        };
        for rule in self.section(client) {
            if let Some(decision) = decide(matches(&rule.filter, topic), rule.grant) {
                return decision;
            }
        }
        if !self.patterns_apply(client) {
            return false;
        }
        for rule in &self.patterns {
            if rule.uses_username() && client.username.is_none() {
                continue;
            }
            let matched = level_matches(rule.levels(client), topic);
            if let Some(decision) = decide(matched, rule.grant) {
                return decision;
            }
        }
        false
    }

    /// Whether `client` may subscribe to `filter`: see the module documentation.
    pub fn check_subscribe(&self, client: &Client<'_>, filter: &TopicFilter) -> bool {
        let share = filter.share();
        let filter = share.as_ref().map_or(filter, |s| s.filter()).as_str();
        let wanted: Vec<&str> = filter.split('/').collect();
        let decide = |rule: &[&str], grant: Grant| {
            if grant.is_deny() {
                covers(rule, &wanted).then_some(false)
            } else if grant.read {
                overlaps(rule, &wanted).then_some(true)
            } else {
                None
            }
        };
        for rule in self.section(client) {
            let levels: Vec<&str> = rule.filter.split('/').collect();
            if let Some(decision) = decide(&levels, rule.grant) {
                return decision;
            }
        }
        if !self.patterns_apply(client) {
            return false;
        }
        for rule in &self.patterns {
            if rule.uses_username() && client.username.is_none() {
                continue;
            }
            let levels: Vec<&str> = rule.levels(client).collect();
            if let Some(decision) = decide(&levels, rule.grant) {
                return decision;
            }
        }
        false
    }

    /// The client's own section: the anonymous one, or its user's (none if the
    /// file has no `user` line for it).
    fn section(&self, client: &Client<'_>) -> &[TopicRule] {
        match client.username {
            None => &self.anonymous,
            Some(name) => self.users.get(name).map_or(&[], Vec::as_slice),
        }
    }

    /// Patterns are skipped for a client whose id or user name holds a wildcard:
    /// substituted, it would match more than its own levels.
    fn patterns_apply(&self, client: &Client<'_>) -> bool {
        let wild = |text: &str| text.contains(['+', '#']);
        !self.patterns.is_empty() && !wild(client.client_id) && !client.username.is_some_and(wild)
    }
}

/// The first word of `line` and the rest, trimmed.
fn split_word(line: &str) -> (&str, &str) {
    match line.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim()),
        None => (line, ""),
    }
}

/// The access and topic of a `topic` or `pattern` line.
fn rule<'a>(keyword: &str, rest: &'a str) -> Result<(Grant, &'a str), String> {
    if rest.is_empty() {
        return Err(format!("{keyword}: missing topic"));
    }
    let (first, topic) = split_word(rest);
    let (grant, topic) = if topic.is_empty() {
        // One word: the topic, read and write.
        (
            Grant {
                read: true,
                write: true,
            },
            first,
        )
    } else {
        let grant = match first {
            "read" => Grant {
                read: true,
                write: false,
            },
            "write" => Grant {
                read: false,
                write: true,
            },
            "readwrite" => Grant {
                read: true,
                write: true,
            },
            "deny" => Grant::DENY,
            other => {
                return Err(format!(
                    "{keyword}: invalid access '{other}' (expected read, write, readwrite or deny)"
                ))
            }
        };
        (grant, topic)
    };
    if let Err(e) = TopicFilter::try_from(topic) {
        return Err(format!("{keyword}: invalid topic '{topic}': {e}"));
    }
    Ok((grant, topic))
}

/// The levels of a pattern, and a warning when it substitutes nothing or has
/// `%c` / `%u` inside a level (left as written: they stand only for whole levels).
fn pattern_levels(topic: &str) -> (Vec<Level>, Option<String>) {
    let mut inside = false;
    let levels: Vec<Level> = topic
        .split('/')
        .map(|level| match level {
            "%c" => Level::ClientId,
            "%u" => Level::Username,
            text => {
                inside |= text.contains("%c") || text.contains("%u");
                Level::Literal(text.to_string())
            }
        })
        .collect();
    let substitutes = levels.iter().any(|l| !matches!(l, Level::Literal(_)));
    let warning = if inside {
        Some(format!(
            "pattern '{topic}': %c and %u are replaced only as a whole level; here they are kept as written"
        ))
    } else if !substitutes {
        Some(format!("pattern '{topic}' does not contain %c or %u"))
    } else {
        None
    };
    (levels, warning)
}

/// [`matches`] for a filter given as levels.
fn level_matches<'a>(mut filter: impl Iterator<Item = &'a str>, name: &str) -> bool {
    let mut filter = filter.by_ref().peekable();
    if name.starts_with('$') && filter.peek().is_some_and(|f| is_wildcard(f)) {
        return false;
    }
    let mut name_levels = name.split('/');
    loop {
        match (filter.next(), name_levels.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(wanted), Some(level)) if wanted == level => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

fn is_wildcard(level: &str) -> bool {
    level == "+" || level == "#"
}

/// Whether the first levels rule out `$` topics for one filter but not the
/// other: then they have no topic in common [MQTT-4.7.2-1].
fn dollar_apart(a: &[&str], b: &[&str]) -> bool {
    let dollar = |levels: &[&str]| levels.first().is_some_and(|l| l.starts_with('$'));
    let wild = |levels: &[&str]| levels.first().is_some_and(|l| is_wildcard(l));
    (dollar(a) && wild(b)) || (dollar(b) && wild(a))
}

/// Whether every topic `inner` matches is matched by `outer`.
fn covers(outer: &[&str], inner: &[&str]) -> bool {
    if dollar_apart(outer, inner) {
        return false;
    }
    let mut i = 0;
    loop {
        match (outer.get(i), inner.get(i)) {
            (Some(&"#"), _) => return true,
            (None, None) => return true,
            (Some(&"+"), Some(&level)) if level != "#" => {}
            (Some(&a), Some(&b)) if a == b && !is_wildcard(a) => {}
            _ => return false,
        }
        i += 1;
    }
}

/// Whether some topic is matched by both filters.
fn overlaps(a: &[&str], b: &[&str]) -> bool {
    if dollar_apart(a, b) {
        return false;
    }
    let mut i = 0;
    loop {
        match (a.get(i), b.get(i)) {
            (Some(&"#"), _) | (_, Some(&"#")) => return true,
            (None, None) => return true,
            (Some(&x), Some(&y)) if x == "+" || y == "+" || x == y => {}
            _ => return false,
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Acl {
        match Acl::parse(text) {
            Ok((acl, _)) => acl,
            Err(errors) => panic!("{errors:#?}"),
        }
    }

    fn anon(id: &str) -> Client<'_> {
        Client {
            client_id: id,
            username: None,
        }
    }

    fn user<'a>(id: &'a str, name: &'a str) -> Client<'a> {
        Client {
            client_id: id,
            username: Some(name),
        }
    }

    fn can(acl: &Acl, client: Client<'_>, topic: &str, access: Access) -> bool {
        acl.check(&client, &TopicName::try_from(topic).unwrap(), access)
    }

    fn can_read(acl: &Acl, client: Client<'_>, topic: &str) -> bool {
        can(acl, client, topic, Access::Read)
    }

    fn can_write(acl: &Acl, client: Client<'_>, topic: &str) -> bool {
        can(acl, client, topic, Access::Write)
    }

    fn can_subscribe(acl: &Acl, client: Client<'_>, filter: &str) -> bool {
        acl.check_subscribe(&client, &TopicFilter::try_from(filter).unwrap())
    }

    #[test]
    fn access_words_and_the_default_readwrite() {
        // mosquitto.conf(5) acl_file: "topic [read|write|readwrite|deny] <topic>
        // ... if not given then the access is read/write".
        let acl = parse_ok("topic read r\ntopic write w\ntopic readwrite rw\ntopic both\n");
        let c = anon("c");
        assert!(can_read(&acl, c, "r") && !can_write(&acl, c, "r"));
        assert!(!can_read(&acl, c, "w") && can_write(&acl, c, "w"));
        assert!(can_read(&acl, c, "rw") && can_write(&acl, c, "rw"));
        assert!(can_read(&acl, c, "both") && can_write(&acl, c, "both"));
        assert!(!can_read(&acl, c, "other") && !can_write(&acl, c, "other"));
    }

    #[test]
    fn topics_may_hold_spaces_after_an_access_word() {
        // mosquitto.conf(5): the access word is "optional (unless <topic>
        // includes a space character)".
        let acl = parse_ok("topic read a topic with spaces/+\n");
        assert!(can_read(&acl, anon("c"), "a topic with spaces/x"));
        let errors = Acl::parse("topic a topic with spaces\n").unwrap_err();
        assert_eq!(errors[0].line, 1);
        assert!(
            errors[0].reason.contains("invalid access 'a'"),
            "{errors:?}"
        );
    }

    #[test]
    fn wildcards_in_rules_match_as_in_subscriptions() {
        // mosquitto.conf(5): "<topic> can contain the + or # wildcards as in subscriptions".
        let acl = parse_ok("topic read sensors/+/temp\ntopic read logs/#\n");
        let c = anon("c");
        assert!(can_read(&acl, c, "sensors/kitchen/temp"));
        assert!(!can_read(&acl, c, "sensors/kitchen/humidity"));
        assert!(can_read(&acl, c, "logs"));
        assert!(can_read(&acl, c, "logs/a/b"));
    }

    #[test]
    fn deny_is_checked_before_grants_whatever_the_order() {
        // mosquitto.conf(5): "Any "deny" topics are handled before topics that
        // grant read/write access."
        for text in [
            "topic readwrite a/#\ntopic deny a/secret\n",
            "topic deny a/secret\ntopic readwrite a/#\n",
        ] {
            let acl = parse_ok(text);
            let c = anon("c");
            assert!(can_read(&acl, c, "a/open"), "{text}");
            assert!(!can_read(&acl, c, "a/secret"), "{text}");
            assert!(!can_write(&acl, c, "a/secret"), "{text}");
        }
    }

    #[test]
    fn a_rule_that_matches_without_granting_lets_the_search_go_on() {
        let acl = parse_ok("topic read a/#\ntopic write a/b\n");
        assert!(can_write(&acl, anon("c"), "a/b"));
        assert!(!can_write(&acl, anon("c"), "a/c"));
    }

    #[test]
    fn the_first_section_is_for_anonymous_clients_only() {
        // mosquitto.conf(5): "The first set of topics are applied to anonymous
        // clients ... User specific topic ACLs are added after a user line".
        let acl = parse_ok("topic read public/#\nuser alice\ntopic readwrite alice/#\n");
        assert!(can_read(&acl, anon("c"), "public/x"));
        assert!(!can_read(&acl, anon("c"), "alice/x"));
        assert!(can_write(&acl, user("c", "alice"), "alice/x"));
        assert!(
            !can_read(&acl, user("c", "alice"), "public/x"),
            "anonymous rules do not apply to users"
        );
        assert!(
            !can_read(&acl, user("c", "bob"), "public/x"),
            "nor to users without a section"
        );
    }

    #[test]
    fn user_sections_are_by_user_name_and_add_up() {
        // mosquitto.conf(5): "The username referred to here is the same as in
        // password_file. It is not the clientid."
        let acl = parse_ok(
            "user alice\ntopic read a\nuser bob\ntopic read b\nuser alice\ntopic read c\n",
        );
        assert!(can_read(&acl, user("bob", "alice"), "a"));
        assert!(can_read(&acl, user("bob", "alice"), "c"));
        assert!(!can_read(&acl, user("alice", "bob"), "a"));
        assert!(can_read(&acl, user("x", "bob"), "b"));
        let acl = parse_ok("user jane doe\ntopic read j\n");
        assert!(can_read(&acl, user("x", "jane doe"), "j"));
    }

    #[test]
    fn patterns_substitute_client_id_and_user_name_as_whole_levels() {
        // mosquitto.conf(5): "%c to match the client id of the client, %u to
        // match the username ... The substitution pattern must be the only text
        // for that level of hierarchy. Pattern ACLs apply to all users even if
        // the "user" keyword has previously been given."
        let acl = parse_ok("user alice\ntopic read x\npattern readwrite devices/%c/#\npattern read users/%u/inbox\n");
        assert!(can_write(&acl, user("dev1", "alice"), "devices/dev1/state"));
        assert!(can_write(&acl, anon("dev2"), "devices/dev2"));
        assert!(!can_write(&acl, anon("dev2"), "devices/dev1/state"));
        assert!(can_read(&acl, user("c", "bob"), "users/bob/inbox"));
        assert!(!can_read(&acl, user("c", "bob"), "users/alice/inbox"));
        assert!(
            !can_read(&acl, anon("c"), "users//inbox"),
            "a %u pattern never applies to an anonymous client"
        );
        // Inside a level they are not substituted, and a warning says so.
        let (acl, warnings) = Acl::parse("pattern read a/x%c\npattern read plain\n").unwrap();
        assert!(!can_read(&acl, anon("y"), "a/xy"));
        assert!(can_read(&acl, anon("y"), "a/x%c"));
        let lines: Vec<usize> = warnings.iter().map(|w| w.line).collect();
        assert_eq!(lines, [1, 2], "{warnings:#?}");
    }

    #[test]
    fn a_substituted_id_may_span_levels() {
        let acl = parse_ok("pattern read devices/%c/#\n");
        assert!(can_read(&acl, anon("a/b"), "devices/a/b/x"));
        assert!(!can_read(&acl, anon("a/b"), "devices/a/c"));
    }

    #[test]
    fn wildcards_in_ids_turn_patterns_off() {
        // CVE-2017-7650: a client id or user name holding + or # would match
        // other clients' levels once substituted.
        let acl = parse_ok("pattern readwrite devices/%c/#\npattern read users/%u\n");
        assert!(!can_read(&acl, anon("+"), "devices/other/x"));
        assert!(!can_read(&acl, anon("#"), "devices/x"));
        assert!(!can_read(&acl, user("ok", "a+b"), "devices/ok/x"));
        assert!(can_read(&acl, user("ok", "ab"), "devices/ok/x"));
    }

    #[test]
    fn a_user_grant_wins_over_a_pattern_deny() {
        // Mosquitto checks the client's section completely before the patterns.
        let acl = parse_ok("user alice\ntopic read a/#\npattern deny a/%u\n");
        assert!(can_read(&acl, user("c", "alice"), "a/alice"));
        assert!(!can_read(&acl, user("c", "bob"), "a/bob"));
        let acl = parse_ok("user alice\ntopic deny a/alice\npattern read a/%u\n");
        assert!(!can_read(&acl, user("c", "alice"), "a/alice"));
    }

    #[test]
    fn sys_needs_a_rule_of_its_own() {
        // [MQTT-4.7.2-1]: # and + at the start do not match topics starting with
        // $; mosquitto.conf(5) gives `pattern write $SYS/broker/connection/%c/state`.
        let acl = parse_ok("topic readwrite #\ntopic read +/uptime\n");
        assert!(can_read(&acl, anon("c"), "a/b"));
        assert!(!can_read(&acl, anon("c"), "$SYS/broker/uptime"));
        assert!(!can_read(&acl, anon("c"), "$SYS/uptime"));
        let acl = parse_ok("topic read $SYS/#\npattern write $SYS/broker/connection/%c/state\n");
        assert!(can_read(&acl, anon("c"), "$SYS/broker/uptime"));
        assert!(can_write(
            &acl,
            anon("br"),
            "$SYS/broker/connection/br/state"
        ));
    }

    #[test]
    fn an_empty_file_denies_everything() {
        let acl = parse_ok("# nothing\n\n");
        assert!(!can_read(&acl, anon("c"), "a"));
        assert!(!can_write(&acl, user("c", "u"), "a"));
        assert!(!can_subscribe(&acl, anon("c"), "#"));
    }

    #[test]
    fn subscriptions_are_checked_against_the_rules_filters() {
        let acl = parse_ok(
            "topic read a/#\ntopic deny a/secret/#\ntopic write w/#\ntopic read $SYS/broker/+\n",
        );
        let c = anon("c");
        assert!(can_subscribe(&acl, c, "a/#"), "exactly a rule");
        assert!(can_subscribe(&acl, c, "a/+/x"), "inside a rule");
        assert!(
            can_subscribe(&acl, c, "#"),
            "wider than a rule: deliveries filter"
        );
        assert!(can_subscribe(&acl, c, "+/x"), "overlaps a/x");
        assert!(!can_subscribe(&acl, c, "b/#"), "nothing readable");
        assert!(!can_subscribe(&acl, c, "w/#"), "writable only");
        assert!(!can_subscribe(&acl, c, "a/secret"), "covered by a deny");
        assert!(!can_subscribe(&acl, c, "a/secret/+/x"), "covered by a deny");
        assert!(
            can_subscribe(&acl, c, "a/+"),
            "a deny of part of it does not refuse it"
        );
        assert!(can_subscribe(&acl, c, "$SYS/broker/uptime"));
        assert!(can_subscribe(&acl, c, "$SYS/#"));
        let sys_only = parse_ok("topic read $SYS/#\n");
        assert!(
            !can_subscribe(&sys_only, c, "+/broker/uptime"),
            "no $ topic through a wildcard"
        );
        assert!(
            !can_subscribe(&sys_only, c, "#"),
            "no $ topic through a wildcard"
        );
        assert!(
            can_subscribe(&acl, c, "$share/g/a/x"),
            "the inner filter is checked"
        );
        assert!(!can_subscribe(&acl, c, "$share/g/b/x"));
        let acl = parse_ok("pattern read devices/%c/#\n");
        assert!(can_subscribe(&acl, anon("dev1"), "devices/dev1/#"));
        assert!(!can_subscribe(&acl, anon("dev1"), "devices/dev2/#"));
        assert!(can_subscribe(&acl, anon("dev1"), "devices/+/cmd"));
    }

    #[test]
    fn filter_relations() {
        let f = |s: &'static str| s.split('/').collect::<Vec<_>>();
        assert!(covers(&f("a/#"), &f("a")));
        assert!(covers(&f("a/#"), &f("a/+/#")));
        assert!(covers(&f("+/b"), &f("x/b")));
        assert!(!covers(&f("+/b"), &f("#")));
        assert!(!covers(&f("a/+"), &f("a/#")));
        assert!(!covers(&f("#"), &f("$SYS/x")));
        assert!(covers(&f("#"), &f("+/x")));
        assert!(overlaps(&f("a/+"), &f("+/b")));
        assert!(overlaps(&f("#"), &f("a")));
        assert!(!overlaps(&f("#"), &f("$SYS/#")));
        assert!(!overlaps(&f("a/b"), &f("a/c")));
        assert!(!overlaps(&f("a/+"), &f("a")));
        assert!(overlaps(&f("a/#"), &f("a")));
    }

    #[test]
    fn every_error_is_reported_with_its_line() {
        let errors = Acl::parse(
            "topic read ok\nuser\ntopic\ntopic sometimes a/b\ntopic read a/#/b\nfrobnicate x\n  # not a comment\npattern write +a\n",
        )
        .unwrap_err();
        let found: Vec<(usize, &str)> =
            errors.iter().map(|e| (e.line, e.reason.as_str())).collect();
        let expected_starts = [
            (2, "user: missing user name"),
            (3, "topic: missing topic"),
            (4, "topic: invalid access 'sometimes'"),
            (5, "topic: invalid topic 'a/#/b'"),
            (6, "unknown keyword 'frobnicate'"),
            (7, "unknown keyword '#'"),
            (8, "pattern: invalid topic '+a'"),
        ];
        assert_eq!(found.len(), expected_starts.len(), "{found:#?}");
        for ((line, reason), (want_line, want)) in found.iter().zip(expected_starts) {
            assert_eq!(*line, want_line, "{reason}");
            assert!(
                reason.starts_with(want),
                "'{reason}' should start with '{want}'"
            );
        }
    }

    #[test]
    fn tabs_and_crlf_are_blanks() {
        let acl = parse_ok("topic\tread\ta/b\r\nuser alice \r\ntopic write b\r\n");
        assert!(can_read(&acl, anon("c"), "a/b"));
        assert!(can_write(&acl, user("c", "alice"), "b"));
    }
}
