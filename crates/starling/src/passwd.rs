//! `starling passwd`: manages password files, flag for flag, message for
//! message and exit code for exit code with Mosquitto's `mosquitto_passwd`.
//!
//! ```text
//! starling passwd [-H hash] [-I iterations] [-c | -D] passwordfile username
//! starling passwd [-H hash] [-I iterations] [-c] -b passwordfile username password
//! starling passwd [-H hash] -U passwordfile
//! ```
//!
//! It writes what Debian's `mosquitto_passwd` 2.0.11 writes by default:
//! `$7$101$<12-byte salt>$<hash>` (PBKDF2-SHA512, 101 iterations), which
//! Mosquitto 2.0 and 2.1 read; `-H sha512` writes the `$6$` of Mosquitto 1.x,
//! `-H argon2id` the PHC string of Mosquitto 2.1 (which 2.0 cannot read).
//!
//! Where it departs from `mosquitto_passwd`, on purpose:
//! - the file is replaced atomically (a temporary file in the same directory,
//!   with the old file's permissions and, when allowed, owner; then a rename),
//!   where Mosquitto rewrites it in place from a backup copy;
//! - comment and blank lines are kept (Mosquitto calls them corrupt);
//! - a user appended to a file whose last line has no newline gets one first.
//!
//! As `mosquitto_passwd`: the prompts `Password: ` and `Reenter password: `
//! go to standard output and the password is read from standard input, with
//! echo off when it is a terminal, so a script can pipe both lines in.

use std::ffi::OsString;
use std::fs::{self, OpenOptions, Permissions};
use std::io::{self, BufRead, IsTerminal, Write};
use std::num::NonZeroU32;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use rand::RngCore;
use starling_broker::auth::password::{
    split_line, PasswordHash, MOSQUITTO_2_0_ITERATIONS, MOSQUITTO_2_0_SALT_LEN,
    MOSQUITTO_2_1_SALT_LEN,
};

/// Longest user name and password Mosquitto accepts.
const MAX_LEN: usize = 65_535;

/// `starling passwd`: the arguments as `mosquitto_passwd` reads them (by hand:
/// options stop at the first word that is not one, and `-h` is a file name).
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub(crate) struct PasswdArgs {
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        num_args = 0..,
        value_name = "ARGS"
    )]
    args: Vec<OsString>,
}

/// How passwords are hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hash {
    Sha512,
    Pbkdf2,
    Argon2id,
}

/// What to do.
#[derive(Debug, PartialEq, Eq)]
enum Action {
    Create {
        user: String,
        password: Option<String>,
    },
    Update {
        user: String,
        password: Option<String>,
    },
    Delete {
        user: String,
    },
    Upgrade,
}

/// A finished run's exit code and what it says on standard error.
#[derive(Debug, PartialEq, Eq)]
struct Fail {
    code: u8,
    message: String,
}

fn fail(message: impl Into<String>) -> Fail {
    Fail {
        code: 1,
        message: message.into(),
    }
}

/// The command line, understood.
#[derive(Debug, PartialEq, Eq)]
struct Command {
    hash: Hash,
    iterations: NonZeroU32,
    file: PathBuf,
    action: Action,
}

pub(crate) fn main(args: PasswdArgs) -> ExitCode {
    let args: Vec<String> = args
        .args
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let command = match parse(&args) {
        Ok(Some(command)) => command,
        Ok(None) => {
            let _ = io::stdout().write_all(usage().as_bytes());
            return ExitCode::from(1);
        }
        Err(f) => return report(f),
    };
    match run(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => report(f),
    }
}

fn report(f: Fail) -> ExitCode {
    if !f.message.is_empty() {
        eprintln!("{}", f.message);
    }
    ExitCode::from(f.code)
}

fn usage() -> String {
    "starling passwd is a tool for managing password files for Starling and mosquitto.\n\n\
     Usage: starling passwd [-H sha512 | -H sha512-pbkdf2 | -H argon2id] [-I iterations] [-c | -D] passwordfile username\n       \
     starling passwd [-H sha512 | -H sha512-pbkdf2 | -H argon2id] [-I iterations] [-c] -b passwordfile username password\n       \
     starling passwd [-H sha512 | -H sha512-pbkdf2 | -H argon2id] -U passwordfile\n \
     -b : run in batch mode to allow passing passwords on the command line.\n \
     -c : create a new password file. This will overwrite existing files.\n \
     -D : delete the username rather than adding/updating its password.\n \
     -H : specify the hashing algorithm. Defaults to sha512-pbkdf2, which is recommended.\n      \
     Mosquitto 1.6 and earlier defaulted to sha512; argon2id needs Mosquitto 2.1 or Starling.\n \
     -I : sha512-pbkdf2 iterations (default 101, as mosquitto_passwd 2.0).\n \
     -U : update a plain text password file to use hashed passwords.\n\n\
     See https://mosquitto.org/ for more information.\n\n"
        .to_string()
}

/// Reads the arguments as `mosquitto_passwd`'s `main` does, with its messages.
/// `Ok(None)`: print the usage and exit with 1.
fn parse(args: &[String]) -> Result<Option<Command>, Fail> {
    if args.is_empty() {
        return Ok(None);
    }
    let (mut batch, mut create, mut delete, mut upgrade) = (false, false, false, false);
    let mut hash = Hash::Pbkdf2;
    let mut iterations = NonZeroU32::new(MOSQUITTO_2_0_ITERATIONS).expect("not zero");
    let mut idx = 0;
    while idx < args.len() {
        match args[idx].as_str() {
            "-H" => {
                let Some(name) = args.get(idx + 1) else {
                    return Err(fail(
                        "Error: -H argument given but not enough other arguments.",
                    ));
                };
                hash = match name.as_str() {
                    "sha512" => Hash::Sha512,
                    "sha512-pbkdf2" => Hash::Pbkdf2,
                    "argon2id" => Hash::Argon2id,
                    other => return Err(fail(format!("Error: Unknown hash type '{other}'"))),
                };
                idx += 1;
            }
            "-b" => batch = true,
            "-c" => create = true,
            "-D" => delete = true,
            "-I" => {
                let Some(text) = args.get(idx + 1) else {
                    return Err(fail(
                        "Error: -I argument given but not enough other arguments.",
                    ));
                };
                iterations = NonZeroU32::new(atoi(text).max(0) as u32)
                    .ok_or_else(|| fail("Error: Number of iterations must be > 0."))?;
                idx += 1;
            }
            "-U" => upgrade = true,
            _ => break,
        }
        idx += 1;
    }
    for (a, b, message) in [
        (create, delete, "Error: -c and -D cannot be used together."),
        (create, upgrade, "Error: -c and -U cannot be used together."),
        (delete, upgrade, "Error: -D and -U cannot be used together."),
        (delete, batch, "Error: -b and -D cannot be used together."),
    ] {
        if a && b {
            return Err(fail(message));
        }
    }
    let rest = &args[idx..];
    let owned = |i: usize| rest[i].clone();
    let (file, action) = if create {
        if batch {
            if rest.len() < 3 {
                return Err(fail(
                    "Error: -c argument given but password file, username, or password missing.",
                ));
            }
            let action = Action::Create {
                user: owned(1),
                password: Some(owned(2)),
            };
            (owned(0), action)
        } else {
            if rest.len() < 2 {
                return Err(fail(
                    "Error: -c argument given but password file or username missing.",
                ));
            }
            let action = Action::Create {
                user: owned(1),
                password: None,
            };
            (owned(0), action)
        }
    } else if delete {
        if rest.len() < 2 {
            return Err(fail(
                "Error: -D argument given but password file or username missing.",
            ));
        }
        (owned(0), Action::Delete { user: owned(1) })
    } else if upgrade {
        if rest.len() != 1 {
            return Err(fail("Error: -U argument given but password file missing."));
        }
        (owned(0), Action::Upgrade)
    } else if batch && rest.len() == 3 {
        let action = Action::Update {
            user: owned(1),
            password: Some(owned(2)),
        };
        (owned(0), action)
    } else if !batch && rest.len() == 2 {
        let action = Action::Update {
            user: owned(1),
            password: None,
        };
        (owned(0), action)
    } else {
        return Ok(None);
    };
    if let Action::Create { user, password } | Action::Update { user, password } = &action {
        check_username(user)?;
        if password.as_ref().is_some_and(|p| p.len() > MAX_LEN) {
            return Err(fail(
                "Error: Password must be less than 65536 characters long.",
            ));
        }
    }
    if let Action::Delete { user } = &action {
        check_username(user)?;
    }
    Ok(Some(Command {
        hash,
        iterations,
        file: PathBuf::from(file),
        action,
    }))
}

/// C's `atoi`: leading blanks, a sign, digits; anything else ends the number.
fn atoi(text: &str) -> i64 {
    let text = text.trim_start();
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
    };
    let digits: String = digits.chars().take_while(char::is_ascii_digit).collect();
    digits
        .parse::<i64>()
        .map_or(0, |n| sign * n.min(i64::from(i32::MAX)))
}

fn check_username(user: &str) -> Result<(), Fail> {
    if user.len() > MAX_LEN {
        return Err(fail(
            "Error: Username must be less than 65536 characters long.",
        ));
    }
    if user.chars().any(char::is_control) {
        return Err(fail("Error: Username must not contain control characters."));
    }
    if user.contains(':') {
        return Err(fail("Error: Username must not contain the ':' character."));
    }
    Ok(())
}

fn run(command: Command) -> Result<(), Fail> {
    // As mosquitto_passwd's realpath(): write through a symbolic link to the
    // file it names; a file that does not exist yet is used as given.
    let file = match fs::canonicalize(&command.file) {
        Ok(real) => real,
        Err(e) if e.kind() == io::ErrorKind::NotFound => command.file.clone(),
        Err(e) => {
            return Err(fail(format!(
                "Error reading password file: {}",
                strerror(&e)
            )))
        }
    };
    let line = |user: &str, password: &str| -> String {
        format!(
            "{user}:{}\n",
            hash_password(command.hash, command.iterations, password)
        )
    };
    match &command.action {
        Action::Create { user, password } => {
            let password = match password {
                Some(password) => password.clone(),
                None => prompt()?,
            };
            write_atomically(&file, line(user, &password).as_bytes()).map_err(|e| {
                fail(format!(
                    "Error: Unable to open file {} for writing. {}.",
                    file.display(),
                    strerror(&e)
                ))
            })
        }
        action => {
            let text = fs::read(&file).map_err(|e| {
                fail(format!(
                    "Error: Unable to open password file {}. {}.",
                    file.display(),
                    strerror(&e)
                ))
            })?;
            let text = String::from_utf8_lossy(&text).into_owned();
            let updated = match action {
                Action::Delete { user } => delete_user(&text, user)?,
                Action::Upgrade => upgrade(&text, |user, password| line(user, password))?,
                Action::Update { user, password } => {
                    let password = match password {
                        Some(password) => password.clone(),
                        None => prompt()?,
                    };
                    update_user(&text, user, &line(user, &password))?
                }
                Action::Create { .. } => unreachable!("handled above"),
            };
            write_atomically(&file, updated.as_bytes()).map_err(|e| {
                fail(format!(
                    "Error occurred updating password file {}: {}.",
                    file.display(),
                    strerror(&e)
                ))
            })
        }
    }
}

/// The hash of `password` as the file stores it, with a fresh random salt.
fn hash_password(hash: Hash, iterations: NonZeroU32, password: &str) -> PasswordHash {
    let mut salt = vec![
        0;
        match hash {
            Hash::Argon2id => MOSQUITTO_2_1_SALT_LEN,
            _ => MOSQUITTO_2_0_SALT_LEN,
        }
    ];
    rand::rng().fill_bytes(&mut salt);
    match hash {
        Hash::Sha512 => PasswordHash::sha512(password.as_bytes(), &salt),
        Hash::Pbkdf2 => PasswordHash::pbkdf2_sha512(password.as_bytes(), &salt, iterations),
        Hash::Argon2id => PasswordHash::argon2id(password.as_bytes(), &salt),
    }
}

/// The lines of a password file with their line endings; comments and blank
/// lines are `None` (kept as they are).
fn entries(text: &str) -> impl Iterator<Item = (usize, &str, Option<(&str, &str)>)> {
    text.split_inclusive('\n').enumerate().map(|(i, raw)| {
        let line = raw.trim_end_matches(['\n', '\r']);
        let entry = if line.trim().is_empty() || line.starts_with('#') {
            None
        } else {
            Some(split_line(line).unwrap_or(("", "")))
        };
        (i + 1, raw, entry)
    })
}

fn corrupt(line: usize) -> Fail {
    fail(format!("Error: Corrupt password file at line {line}."))
}

fn delete_user(text: &str, user: &str) -> Result<String, Fail> {
    let mut out = String::with_capacity(text.len());
    let mut found = false;
    for (number, raw, entry) in entries(text) {
        match entry {
            Some(("", _) | (_, "")) => return Err(corrupt(number)),
            Some((name, _)) if name == user => found = true,
            _ => out.push_str(raw),
        }
    }
    if !found {
        return Err(fail(format!(
            "Warning: User {user} not found in password file."
        )));
    }
    Ok(out)
}

fn update_user(text: &str, user: &str, new_line: &str) -> Result<String, Fail> {
    let mut out = String::with_capacity(text.len() + new_line.len());
    let mut found = false;
    for (number, raw, entry) in entries(text) {
        match entry {
            Some(("", _) | (_, "")) => return Err(corrupt(number)),
            Some((name, _)) if name == user => {
                found = true;
                out.push_str(new_line);
            }
            _ => out.push_str(raw),
        }
    }
    if !found {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(new_line);
    }
    Ok(out)
}

/// `-U`: every password field is taken as plain text and hashed.
fn upgrade(text: &str, line: impl Fn(&str, &str) -> String) -> Result<String, Fail> {
    let mut out = String::with_capacity(text.len() * 2);
    for (number, raw, entry) in entries(text) {
        match entry {
            Some(("", _) | (_, "")) => return Err(corrupt(number)),
            Some((user, password)) => out.push_str(&line(user, password)),
            None => out.push_str(raw),
        }
    }
    Ok(out)
}

/// Asks for the password twice, as `mosquitto_passwd`'s `get_password`.
fn prompt() -> Result<String, Fail> {
    let first = read_password("Password: ")?;
    let second = read_password("Reenter password: ")?;
    if first != second {
        return Err(Fail {
            code: 2,
            message: "Error: Passwords do not match.".into(),
        });
    }
    Ok(first)
}

fn read_password(prompt: &str) -> Result<String, Fail> {
    let empty = || fail("Error: Empty password.");
    let mut out = io::stdout();
    let _ = out.write_all(prompt.as_bytes());
    let _ = out.flush();
    let stdin = io::stdin();
    let password = if stdin.is_terminal() {
        // Echo off; the terminal echoes the newline itself.
        rpassword::read_password().map_err(|_| empty())?
    } else {
        let mut line = String::new();
        match stdin.lock().read_line(&mut line) {
            Ok(0) | Err(_) => return Err(empty()),
            Ok(_) => {}
        }
        let password = line.trim_end_matches(['\n', '\r']).to_string();
        if !password.is_empty() {
            // mosquitto_passwd ends the prompt's line once it has a password.
            let _ = out.write_all(b"\n");
        }
        password
    };
    if password.is_empty() {
        return Err(empty());
    }
    if password.len() > MAX_LEN {
        return Err(fail(
            "Error: Password must be less than 65536 characters long.",
        ));
    }
    Ok(password)
}

/// Replaces `path` with `contents` in one rename: a reader sees the old file
/// or the new one, never a part. The new file keeps the old one's permissions
/// (and owner, where allowed); a new file gets `0666` less the umask, as
/// `mosquitto_passwd` gives it.
fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let old = fs::metadata(path).ok();
    let mut suffix = [0u8; 6];
    rand::rng().fill_bytes(&mut suffix);
    let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    let temp = dir.join(format!(".{}.{suffix}.tmp", name.to_string_lossy()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o666)
            .open(&temp)?;
        if let Some(old) = &old {
            fs::set_permissions(&temp, Permissions::from_mode(old.mode() & 0o7777))?;
            // Only root may give a file away; others keep their own.
            let _ = std::os::unix::fs::chown(&temp, Some(old.uid()), Some(old.gid()));
        }
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, path)?;
        // The rename itself must reach the disk too.
        if let Ok(dir) = fs::File::open(&dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// The error text of `strerror`, without Rust's " (os error N)".
fn strerror(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(String::from).collect()
    }

    fn message(text: &str) -> String {
        match parse(&args(text)) {
            Err(f) => f.message,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn options_and_positionals_as_mosquitto_passwd_reads_them() {
        // mosquitto_passwd(1) SYNOPSIS.
        let c = parse(&args("-c -b f alice pw")).unwrap().unwrap();
        assert_eq!(c.hash, Hash::Pbkdf2);
        assert_eq!(c.iterations.get(), 101);
        assert_eq!(c.file, PathBuf::from("f"));
        assert_eq!(
            c.action,
            Action::Create {
                user: "alice".into(),
                password: Some("pw".into())
            }
        );
        let c = parse(&args("-H sha512 -I 7 f bob")).unwrap().unwrap();
        assert_eq!((c.hash, c.iterations.get()), (Hash::Sha512, 7));
        assert_eq!(
            c.action,
            Action::Update {
                user: "bob".into(),
                password: None
            }
        );
        let c = parse(&args("-H argon2id -U f")).unwrap().unwrap();
        assert_eq!((c.hash, c.action), (Hash::Argon2id, Action::Upgrade));
        let c = parse(&args("-D f bob")).unwrap().unwrap();
        assert_eq!(c.action, Action::Delete { user: "bob".into() });
        // Options stop at the first other word.
        assert!(parse(&args("f -c bob")).unwrap().is_none());
        assert!(parse(&[]).unwrap().is_none());
        assert!(parse(&args("f")).unwrap().is_none());
        assert!(parse(&args("-b f bob")).unwrap().is_none());
    }

    #[test]
    fn errors_say_what_mosquitto_passwd_says() {
        let cases = [
            (
                "-H",
                "Error: -H argument given but not enough other arguments.",
            ),
            ("-H md5 f u", "Error: Unknown hash type 'md5'"),
            (
                "-I",
                "Error: -I argument given but not enough other arguments.",
            ),
            ("-I 0 f u", "Error: Number of iterations must be > 0."),
            ("-I x f u", "Error: Number of iterations must be > 0."),
            ("-c -D f u", "Error: -c and -D cannot be used together."),
            ("-c -U f", "Error: -c and -U cannot be used together."),
            ("-D -U f", "Error: -D and -U cannot be used together."),
            ("-D -b f u", "Error: -b and -D cannot be used together."),
            (
                "-c -b f u",
                "Error: -c argument given but password file, username, or password missing.",
            ),
            (
                "-c f",
                "Error: -c argument given but password file or username missing.",
            ),
            (
                "-D f",
                "Error: -D argument given but password file or username missing.",
            ),
            ("-U", "Error: -U argument given but password file missing."),
            (
                "-U f g",
                "Error: -U argument given but password file missing.",
            ),
            (
                "-b f a:b pw",
                "Error: Username must not contain the ':' character.",
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(message(line), expected, "{line}");
        }
        let control = vec!["f".to_string(), "a\tb".to_string()];
        assert_eq!(
            parse(&control).unwrap_err().message,
            "Error: Username must not contain control characters."
        );
    }

    #[test]
    fn atoi_reads_like_c() {
        assert_eq!(atoi("101"), 101);
        assert_eq!(atoi("  12abc"), 12);
        assert_eq!(atoi("-3"), -3);
        assert_eq!(atoi("abc"), 0);
    }

    #[test]
    fn update_replaces_every_entry_of_the_user_or_appends() {
        let text = "# users\nalice:old\n\nbob:x\nalice:older";
        let out = update_user(text, "alice", "alice:new\n").unwrap();
        assert_eq!(out, "# users\nalice:new\n\nbob:x\nalice:new\n");
        let out = update_user("bob:x", "carol", "carol:new\n").unwrap();
        assert_eq!(
            out, "bob:x\ncarol:new\n",
            "a newline before the appended line"
        );
        assert_eq!(
            update_user("bob:x\nbroken\n", "carol", "carol:y\n").unwrap_err(),
            corrupt(2)
        );
    }

    #[test]
    fn delete_keeps_the_others_or_warns() {
        assert_eq!(delete_user("a:1\nb:2\n", "a").unwrap(), "b:2\n");
        let f = delete_user("a:1\n", "z").unwrap_err();
        assert_eq!(
            (f.code, f.message.as_str()),
            (1, "Warning: User z not found in password file.")
        );
    }

    #[test]
    fn upgrade_hashes_plain_passwords() {
        let out = upgrade("# c\nalice: secret \n", |u, p| format!("{u}:<{p}>\n")).unwrap();
        assert_eq!(out, "# c\nalice:<secret>\n");
    }

    #[test]
    fn atomic_write_keeps_permissions() {
        let dir = std::env::temp_dir().join(format!("starling-passwd-unit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pw");
        fs::write(&path, "old\n").unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o640)).unwrap();
        write_atomically(&path, b"new\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new\n");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o640);
        let leftovers: Vec<_> = fs::read_dir(&dir).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left");
        fs::remove_dir_all(&dir).unwrap();
    }
}
