//! The broker as a Unix process, as Mosquitto 2.0 runs it: the user it runs
//! as (`user`), the file holding its pid (`pid_file`), and the local time of
//! `log_timestamp_format` (C's `strftime`, so every format Mosquitto takes
//! writes the same text).
//!
//! These are libc calls, the only `unsafe` code of the binary; each says why
//! it is sound.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use starling_broker::config::{Config, ProcessSettings};
use tracing::{info, warn};

/// A user's name and ids, from the system's user database.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub(crate) name: String,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// Looks `name` up (`getpwnam_r`: /etc/passwd, or whatever NSS says).
fn lookup(name: &str) -> io::Result<Option<Account>> {
    let c_name = CString::new(name).map_err(|_| io::Error::other("a user name holds a NUL"))?;
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: `passwd` is plain data that getpwnam_r fills; `buf` outlives
        // the call and its length is passed; `result` is written by the call.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = unsafe {
            libc::getpwnam_r(
                c_name.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        if result.is_null() {
            return Ok(None);
        }
        return Ok(Some(Account {
            name: name.to_string(),
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
        }));
    }
}

/// The effective user id.
pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() }
}

/// What [`drop_privileges`] did.
#[derive(Debug)]
pub(crate) enum Privileges {
    /// Not started as root: `user` has no effect, as in Mosquitto.
    NotRoot,
    /// Started as root and still root (`user root`).
    Root,
    /// Now runs as this user, with its primary group and its other groups.
    Dropped(Account),
}

/// Mosquitto 2.0's `drop_privileges`: started as root, become `user` (by
/// default `mosquitto`) and its primary group. A `user` that does not exist
/// stops the start, but for `mosquitto`, for which Mosquitto tries `nobody`
/// instead (with a warning). `root` keeps root, with Mosquitto's warning.
/// Every thread of the process changes (glibc's setuid and setgid apply to
/// all of them).
pub(crate) fn drop_privileges(settings: &ProcessSettings) -> anyhow::Result<Privileges> {
    if euid() != 0 {
        return Ok(Privileges::NotRoot);
    }
    let name = settings
        .user
        .as_deref()
        .unwrap_or(ProcessSettings::DEFAULT_USER);
    if name == "root" {
        warn!("Warning: Starling should not be run as root/administrator.");
        return Ok(Privileges::Root);
    }
    let account = account_for(name, |name| {
        lookup(name).with_context(|| format!("cannot look up the user '{name}' (user)"))
    })?;
    let c_name = CString::new(account.name.as_str()).context("a user name holds a NUL")?;
    // SAFETY: `c_name` is a NUL-terminated string that outlives the call.
    if unsafe { libc::initgroups(c_name.as_ptr(), account.gid) } == -1 {
        let e = io::Error::last_os_error();
        bail!("cannot set the groups of '{name}' while dropping privileges: {e}.");
    }
    // SAFETY: setgid and setuid take plain ids and touch no memory of ours.
    if unsafe { libc::setgid(account.gid) } == -1 {
        let e = io::Error::last_os_error();
        bail!("cannot set the group id of '{name}' while dropping privileges: {e}.");
    }
    if unsafe { libc::setuid(account.uid) } == -1 {
        let e = io::Error::last_os_error();
        bail!("cannot set the user id of '{name}' while dropping privileges: {e}.");
    }
    info!(
        "Running as user {} (uid {}, gid {}).",
        account.name, account.uid, account.gid
    );
    Ok(Privileges::Dropped(account))
}

/// After a drop to `account`: a warning for each file that a reload reads
/// again (the configuration, password, ACL and PSK files, the TLS listeners'
/// files) and that `account` may not read. The broker read them as root at
/// the start; Mosquitto, which reads them after its drop, would not start.
pub(crate) fn warn_unreadable(config: &Config, config_file: Option<&Path>, account: &Account) {
    let mut named: Vec<&Option<PathBuf>> =
        vec![&config.password_file, &config.acl_file, &config.psk_file];
    for listener in &config.listeners {
        if let Some(security) = &listener.security {
            named.extend([
                &security.password_file,
                &security.acl_file,
                &security.psk_file,
            ]);
        }
        if let Some(tls) = &listener.settings.tls {
            named.extend([
                &tls.certfile,
                &tls.keyfile,
                &tls.cafile,
                &tls.capath,
                &tls.crlfile,
                &tls.dhparamfile,
            ]);
        }
    }
    let mut files: Vec<&Path> = config_file.into_iter().collect();
    files.extend(named.into_iter().filter_map(|path| path.as_deref()));
    files.sort();
    files.dedup();
    for path in files {
        let readable = if path.is_dir() {
            fs::read_dir(path).map(drop)
        } else {
            fs::File::open(path).map(drop)
        };
        if let Err(e) = readable {
            if e.kind() == io::ErrorKind::PermissionDenied {
                warn!(
                    "Warning: user '{}' cannot read {} ({e}): a reload (SIGHUP) will keep what \
                     was read at the start. Make it readable by that user, or set `user root`.",
                    account.name,
                    path.display()
                );
            }
        }
    }
}

/// The account `name` names, as Mosquitto picks it: a `mosquitto` that
/// does not exist falls back to `nobody` (with a warning); any other missing
/// user is an error.
fn account_for(
    name: &str,
    lookup: impl Fn(&str) -> anyhow::Result<Option<Account>>,
) -> anyhow::Result<Account> {
    match lookup(name)? {
        Some(account) => Ok(account),
        None if name == ProcessSettings::DEFAULT_USER => {
            warn!(
                "Warning: Unable to drop privileges to '{name}' because this user does not \
                 exist. Trying 'nobody' instead."
            );
            match lookup("nobody")? {
                Some(account) => Ok(account),
                None => bail!("Unable to drop privileges to 'nobody'."),
            }
        }
        None => {
            bail!("Unable to drop privileges to '{name}' because this user does not exist (user).")
        }
    }
}

/// The pid file: holds the broker's pid (as Mosquitto writes it: the number,
/// no newline) from when it runs, removed when this is dropped (a clean
/// exit, or a start that fails after it was written).
#[derive(Debug)]
pub(crate) struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Writes `path`, as the user the broker now runs as (`who` names it in
    /// the error: Mosquitto too writes it after dropping privileges).
    pub(crate) fn write(path: &Path, who: &Privileges) -> anyhow::Result<PidFile> {
        fs::write(path, std::process::id().to_string()).with_context(|| match who {
            Privileges::Dropped(account) => format!(
                "cannot write the pid file {} as user '{}' (pid_file; the broker writes it \
                 after dropping privileges, so its directory must be writable by that user)",
                path.display(),
                account.name
            ),
            _ => format!("cannot write the pid file {} (pid_file)", path.display()),
        })?;
        Ok(PidFile {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // As Mosquitto: a pid file that cannot be removed is left behind silently.
        let _ = fs::remove_file(&self.path);
    }
}

/// `secs` (Unix time) in local time, formatted by C's `strftime`; "Time
/// error" if the result is empty or longer than Mosquitto's 1,000-byte line.
pub(crate) fn strftime(format: &CStr, secs: u64) -> String {
    let time = libc::time_t::try_from(secs).unwrap_or(libc::time_t::MAX);
    let mut buf = [0u8; 1000];
    // SAFETY: `tm` is plain data that localtime_r fills from `time`; strftime
    // writes at most `buf.len()` bytes into `buf` and reads the NUL-terminated
    // `format` and the filled `tm`.
    let written = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&time, &mut tm).is_null() {
            0
        } else {
            libc::strftime(buf.as_mut_ptr().cast(), buf.len(), format.as_ptr(), &tm)
        }
    };
    if written == 0 {
        return "Time error".to_string();
    }
    String::from_utf8_lossy(&buf[..written]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strftime_formats_local_time_as_c_does() {
        let format = CString::new("%Y-%m-%dT%H:%M:%S").unwrap();
        let text = strftime(&format, 1_700_000_000);
        assert_eq!(text.len(), "2023-11-14T22:13:20".len(), "{text}");
        assert!(text.starts_with("2023-11-1"), "{text}");
        let literal = CString::new("[%%]").unwrap();
        assert_eq!(strftime(&literal, 0), "[%]");
        // An empty result is Mosquitto's "Time error".
        let empty = CString::new("").unwrap();
        assert_eq!(strftime(&empty, 0), "Time error");
    }

    /// Mosquitto's `drop_privileges`: only `mosquitto` falls back to `nobody`.
    #[test]
    fn a_missing_mosquitto_user_falls_back_to_nobody_and_no_other() {
        let only_nobody = |name: &str| {
            Ok((name == "nobody").then(|| Account {
                name: name.to_string(),
                uid: 65534,
                gid: 65534,
            }))
        };
        let account = account_for("mosquitto", only_nobody).unwrap();
        assert_eq!((account.name.as_str(), account.uid), ("nobody", 65534));
        let error = account_for("broker", only_nobody).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Unable to drop privileges to 'broker' because this user does not exist (user)."
        );
        let no_one = |_: &str| Ok(None);
        let error = account_for("mosquitto", no_one).unwrap_err();
        assert_eq!(error.to_string(), "Unable to drop privileges to 'nobody'.");
        let present = account_for("broker", |name: &str| {
            Ok(Some(Account {
                name: name.to_string(),
                uid: 7,
                gid: 8,
            }))
        })
        .unwrap();
        assert_eq!((present.uid, present.gid), (7, 8));
    }

    #[test]
    fn users_are_looked_up() {
        let root = lookup("root").unwrap().expect("root exists");
        assert_eq!((root.uid, root.gid), (0, 0));
        assert!(lookup("no-such-user-starling").unwrap().is_none());
    }
}
