//! The settings Mosquitto's `per_listener_settings` scopes: `allow_anonymous`,
//! `allow_zero_length_clientid`, `auto_id_prefix`, `password_file` and
//! `acl_file`. Both file syntaxes hand each setting to a [`Collector`] with the
//! listener it was written under, and [`Collector::finish`] decides where it
//! applies once the whole file is read:
//!
//! - `per_listener_settings false` (the default): every setting is the
//!   broker's, wherever it is written; the last one wins;
//! - `per_listener_settings true`: a setting after a `listener` line is that
//!   listener's; one before the first `listener` line is the broker's, which
//!   the default listener (`port`, `bind_address`, or the local-only one)
//!   uses. A listener's `allow_anonymous` is false unless it says otherwise.
//!
//! Mosquitto 2 reads the file in one pass, so there `per_listener_settings`
//! changes only what follows it; here it may be written anywhere (it is
//! documented at the top of the file in both syntaxes).
//!
//! `allow_anonymous` defaults to true only in local-only mode (no listener,
//! `port` nor `bind_address`), as in Mosquitto 2.0.11, where a `password_file`
//! alone does not turn anonymous access off either.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{Config, Security};

/// One security setting as written.
#[derive(Debug, Clone)]
pub(super) enum Setting {
    AllowAnonymous(bool),
    AllowZeroLengthClientid(bool),
    AutoIdPrefix(String),
    PasswordFile(PathBuf),
    AclFile(PathBuf),
    PskFile(PathBuf),
}

/// The directives that are security settings (and `per_listener_settings`).
pub(super) const DIRECTIVES: &[&str] = &[
    "allow_anonymous",
    "allow_zero_length_clientid",
    "auto_id_prefix",
    "password_file",
    "acl_file",
    "psk_file",
    "per_listener_settings",
];

impl Setting {
    /// Reads `directive value`; `base` is the directory relative paths are
    /// resolved against (the file's own, as for `include_dir`).
    pub(super) fn parse(directive: &str, value: &str, base: &Path) -> Result<Setting, String> {
        let boolean = || match value {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(format!(
                "'{other}' is not a boolean (expected true or false)"
            )),
        };
        let path = || {
            if value.is_empty() {
                Err("missing value".to_string())
            } else {
                Ok(base.join(value))
            }
        };
        match directive {
            "allow_anonymous" => boolean().map(Setting::AllowAnonymous),
            "allow_zero_length_clientid" => boolean().map(Setting::AllowZeroLengthClientid),
            "auto_id_prefix" => {
                if value.contains(['+', '#', '/']) || value.contains('\0') {
                    Err(format!(
                        "'{value}' would make client identifiers with '+', '#' or '/'"
                    ))
                } else {
                    Ok(Setting::AutoIdPrefix(value.to_string()))
                }
            }
            "password_file" => path().map(Setting::PasswordFile),
            "acl_file" => path().map(Setting::AclFile),
            "psk_file" => path().map(Setting::PskFile),
            other => Err(format!("'{other}' is not a security setting")),
        }
    }

    fn apply(&self, security: &mut Security, anonymous_given: &mut bool) {
        match self {
            Setting::AllowAnonymous(v) => {
                security.allow_anonymous = *v;
                *anonymous_given = true;
            }
            Setting::AllowZeroLengthClientid(v) => security.allow_zero_length_clientid = *v,
            Setting::AutoIdPrefix(v) => security.auto_id_prefix.clone_from(v),
            Setting::PasswordFile(v) => security.password_file = Some(v.clone()),
            Setting::AclFile(v) => security.acl_file = Some(v.clone()),
            Setting::PskFile(v) => security.psk_file = Some(v.clone()),
        }
    }
}

/// Security settings in file order, each with the listener it follows.
#[derive(Debug, Default)]
pub(super) struct Collector {
    per_listener_settings: bool,
    /// `(listener, setting)`: the index in `Config::listeners` of the first
    /// socket of the listener the setting follows, `None` before any.
    settings: Vec<(Option<usize>, Setting)>,
}

/// A listener's sockets in `Config::listeners`: its first index, how many, and
/// whether it is the default listener of `port` / `bind_address`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Group {
    pub(super) first: usize,
    pub(super) len: usize,
    pub(super) default_listener: bool,
}

impl Collector {
    pub(super) fn set_per_listener_settings(&mut self, value: bool) {
        self.per_listener_settings = value;
    }

    pub(super) fn per_listener_settings(&self) -> bool {
        self.per_listener_settings
    }

    pub(super) fn add(&mut self, listener: Option<usize>, setting: Setting) {
        self.settings.push((listener, setting));
    }

    /// Writes the settings into `config`. `local_only`: no listener, `port`
    /// nor `bind_address` was given.
    pub(super) fn finish(self, config: &mut Config, local_only: bool, groups: &[Group]) {
        config.per_listener_settings = self.per_listener_settings;
        let mut global = config.security();
        let mut global_anonymous = false;
        let mut own: HashMap<usize, (Security, bool)> = HashMap::new();
        for (listener, setting) in &self.settings {
            match listener {
                Some(first) if self.per_listener_settings => {
                    let (security, given) = own.entry(*first).or_insert_with(|| {
                        (
                            Security {
                                allow_anonymous: false,
                                ..config.security()
                            },
                            false,
                        )
                    });
                    setting.apply(security, given);
                }
                _ => setting.apply(&mut global, &mut global_anonymous),
            }
        }
        if !global_anonymous {
            // Mosquitto 2: a broker reachable from the network needs an
            // explicit `allow_anonymous true` to let anonymous clients in.
            global.allow_anonymous = local_only;
        }
        config.allow_anonymous = global.allow_anonymous;
        config.allow_zero_length_clientid = global.allow_zero_length_clientid;
        config.auto_id_prefix = global.auto_id_prefix;
        config.password_file = global.password_file;
        config.acl_file = global.acl_file;
        config.psk_file = global.psk_file;
        if !self.per_listener_settings {
            return;
        }
        for group in groups.iter().filter(|g| !g.default_listener) {
            let security = own.get(&group.first).map_or_else(
                || Security {
                    allow_anonymous: false,
                    ..Security::default()
                },
                |(security, _)| security.clone(),
            );
            let end = (group.first + group.len).min(config.listeners.len());
            for listener in config
                .listeners
                .get_mut(group.first..end)
                .unwrap_or_default()
            {
                listener.security = Some(security.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::mosquitto::parse_mosquitto;
    use super::super::tests::Scratch;
    use super::*;

    fn parse(text: &str) -> (Config, PathBuf) {
        let scratch = Scratch::new("security");
        let path = scratch.write("mosquitto.conf", text);
        let dir = scratch.dir().to_path_buf();
        match parse_mosquitto(&path) {
            Ok((config, _)) => (config, dir),
            Err(report) => panic!("{:#?}", report.errors),
        }
    }

    #[test]
    fn without_per_listener_settings_everything_is_global() {
        // mosquitto.conf(5) per_listener_settings: "The default behaviour is
        // for this to be set to false"; the options then apply to all listeners.
        let (config, dir) = parse(
            "listener 1883 127.0.0.1\npassword_file pw\nlistener 1884 127.0.0.1\nacl_file /etc/acl\n\
             allow_anonymous true\nauto_id_prefix dev-\nallow_zero_length_clientid false\n",
        );
        assert!(!config.per_listener_settings);
        assert_eq!(
            config.password_file,
            Some(dir.join("pw")),
            "relative to the file"
        );
        assert_eq!(config.acl_file, Some(PathBuf::from("/etc/acl")));
        assert!(config.allow_anonymous);
        assert!(!config.allow_zero_length_clientid);
        assert_eq!(config.auto_id_prefix, "dev-");
        assert!(config.listeners.iter().all(|l| l.security.is_none()));
    }

    #[test]
    fn with_per_listener_settings_each_listener_has_its_own() {
        // mosquitto.conf(5) per_listener_settings: "If true, then
        // authentication and access control settings will be controlled on a
        // per-listener basis" (password_file, acl_file, allow_anonymous,
        // allow_zero_length_clientid, auto_id_prefix).
        let (config, _) = parse(
            "per_listener_settings true\npassword_file /global\n\
             listener 1883 127.0.0.1\npassword_file /a\nallow_anonymous true\n\
             listener 1884\nacl_file /b\nauto_id_prefix b-\n\
             listener 1885 127.0.0.1\n",
        );
        assert!(config.per_listener_settings);
        assert_eq!(config.password_file, Some(PathBuf::from("/global")));
        let own: Vec<&Security> = config
            .listeners
            .iter()
            .map(|l| l.security.as_ref().expect("per listener"))
            .collect();
        assert_eq!(own.len(), 4, "1883, 1884 on two addresses, 1885");
        assert_eq!(own[0].password_file, Some(PathBuf::from("/a")));
        assert!(own[0].allow_anonymous);
        assert_eq!(
            own[1], own[2],
            "one listener line, two sockets, one setting"
        );
        assert_eq!(own[1].acl_file, Some(PathBuf::from("/b")));
        assert_eq!(own[1].password_file, None, "nothing inherited");
        assert_eq!(own[1].auto_id_prefix, "b-");
        assert!(
            !own[1].allow_anonymous,
            "false unless the listener allows it"
        );
        assert_eq!(
            *own[3],
            Security {
                allow_anonymous: false,
                ..Security::default()
            }
        );
    }

    #[test]
    fn the_default_listener_uses_the_settings_before_any_listener() {
        let (config, _) = parse(
            "per_listener_settings true\nport 1883\nacl_file /default\nallow_anonymous true\n\
             listener 1884 127.0.0.1\nacl_file /own\n",
        );
        assert_eq!(config.acl_file, Some(PathBuf::from("/default")));
        assert!(config.allow_anonymous);
        let by_port: Vec<(u16, Option<PathBuf>)> = config
            .listeners
            .iter()
            .map(|l| {
                (
                    l.bind.port(),
                    l.security.as_ref().and_then(|s| s.acl_file.clone()),
                )
            })
            .collect();
        assert_eq!(
            by_port,
            [
                (1884, Some(PathBuf::from("/own"))),
                (1883, None),
                (1883, None)
            ]
        );
    }

    #[test]
    fn allow_anonymous_defaults_as_in_mosquitto_2() {
        // mosquitto.conf(5) allow_anonymous: "Defaults to false, unless no
        // listeners are defined in the configuration file, in which case it set
        // to true"; a password_file alone keeps local-only mode (2.0.11).
        assert!(parse("password_file /pw\n").0.allow_anonymous);
        assert!(!parse("listener 1883\n").0.allow_anonymous);
        assert!(
            parse("listener 1883\nallow_anonymous true\n")
                .0
                .allow_anonymous
        );
    }

    #[test]
    fn bad_values_are_errors() {
        let scratch = Scratch::new("security-errors");
        let path = scratch.write(
            "mosquitto.conf",
            "auto_id_prefix a/b\npassword_file\nacl_file\nper_listener_settings yes\n",
        );
        let report = parse_mosquitto(&path).expect_err("errors");
        let lines: Vec<usize> = report.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [1, 2, 3, 4], "{:#?}", report.errors);
    }
}
