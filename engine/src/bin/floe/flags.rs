//! etcd's command line, read the way Go's `flag` package reads it (store/README.md §12.4):
//! `--name x`, `--name=x`, `-name x`, `-name=x`; a repeated flag's last value wins; every flag
//! also comes from `ETCD_<NAME>` in the environment (the command line wins).

use std::collections::BTreeMap;

/// Flags that take no value (`--enable-v2` alone means true).
const BOOL_FLAGS: &[&str] = &[
    "enable-v2",
    "force-new-cluster",
    "strict-reconfig-check",
    "enable-pprof",
    "debug",
    "help",
    "version",
    "pre-vote",
    "check-quorum",
    "legacy",
    "client-cert-auth",
    "peer-client-cert-auth",
];

/// Flags Floe reads; others are accepted (so etcd command lines work) and ignored with a warning.
pub const KNOWN_FLAGS: &[&str] = &[
    "name",
    "data-dir",
    "listen-client-urls",
    "advertise-client-urls",
    "listen-peer-urls",
    "initial-advertise-peer-urls",
    "initial-cluster",
    "initial-cluster-state",
    "initial-cluster-token",
    "heartbeat-interval",
    "election-timeout",
    "snapshot-count",
    "enable-v2",
    "pre-vote",
    "check-quorum",
    "legacy",
    "expiration-suffix",
    "cert-file",
    "key-file",
    "trusted-ca-file",
    "client-cert-auth",
    "peer-cert-file",
    "peer-key-file",
    "peer-trusted-ca-file",
    "peer-client-cert-auth",
    "help",
    "version",
    "unsafe-disk-faults",
];

/// The parsed command line: flag name to its last value, plus the ignored flags.
#[derive(Debug, Default)]
pub struct Flags {
    values: BTreeMap<String, String>,
    /// Flags given but not used by Floe.
    pub ignored: Vec<String>,
}

impl Flags {
    /// Parses `args` (without the program name) over `env` (`ETCD_*` variables).
    pub fn parse(
        args: &[String],
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<Flags, String> {
        let mut flags = Flags::default();
        for (key, value) in env {
            if let Some(name) = key.strip_prefix("ETCD_") {
                let name = name.to_ascii_lowercase().replace('_', "-");
                if KNOWN_FLAGS.contains(&name.as_str()) {
                    flags.values.insert(name, value);
                }
            }
        }
        let mut i = 0;
        while i < args.len() {
            let arg = &args[i];
            i += 1;
            let Some(body) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
                return Err(format!(
                    "unexpected argument {arg:?}: flags start with - or --"
                ));
            };
            if body.is_empty() {
                break;
            }
            let (name, value) = match body.split_once('=') {
                Some((name, value)) => (name.to_string(), value.to_string()),
                None if body == "h" => ("help".to_string(), "true".to_string()),
                None if BOOL_FLAGS.contains(&body) => (body.to_string(), "true".to_string()),
                None => {
                    let Some(value) = args.get(i) else {
                        return Err(format!("flag needs an argument: -{body}"));
                    };
                    i += 1;
                    (body.to_string(), value.clone())
                }
            };
            if !KNOWN_FLAGS.contains(&name.as_str()) {
                flags.ignored.push(name.clone());
            }
            flags.values.insert(name, value);
        }
        Ok(flags)
    }

    /// The value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// A boolean flag (Go's `strconv.ParseBool` spellings).
    pub fn bool(&self, name: &str, default: bool) -> Result<bool, String> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => engine::store::command::parse_go_bool(v)
                .ok_or_else(|| format!("invalid boolean value {v:?} for -{name}")),
        }
    }

    /// A whole-number flag.
    pub fn uint(&self, name: &str, default: u64) -> Result<u64, String> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("invalid value {v:?} for -{name}: want a whole number")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Flags {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Flags::parse(&args, std::iter::empty()).unwrap()
    }

    #[test]
    fn go_spellings_and_last_wins() {
        let f = parse(&[
            "-data-dir",
            "/tmp/a",
            "--name=n1",
            "-initial-cluster",
            "x=http://a:1",
            "-initial-cluster=y=http://b:2",
            "--enable-v2",
        ]);
        assert_eq!(f.get("data-dir"), Some("/tmp/a"));
        assert_eq!(f.get("name"), Some("n1"));
        assert_eq!(f.get("initial-cluster"), Some("y=http://b:2"));
        assert!(f.bool("enable-v2", false).unwrap());
    }

    #[test]
    fn env_then_command_line() {
        let env = vec![
            ("ETCD_NAME".to_string(), "env".to_string()),
            ("ETCD_DATA_DIR".to_string(), "/d".to_string()),
        ];
        let f = Flags::parse(&["--name".to_string(), "cli".to_string()], env.into_iter()).unwrap();
        assert_eq!(f.get("name"), Some("cli"));
        assert_eq!(f.get("data-dir"), Some("/d"));
    }

    #[test]
    fn tls_flags_and_their_variables() {
        let env = vec![
            ("ETCD_PEER_CERT_FILE".to_string(), "/p.pem".to_string()),
            ("ETCD_PEER_CLIENT_CERT_AUTH".to_string(), "true".to_string()),
            (
                "ETCD_TRUSTED_CA_FILE".to_string(),
                "/env-ca.pem".to_string(),
            ),
        ];
        let args: Vec<String> = [
            "--cert-file",
            "/c.pem",
            "--client-cert-auth",
            "--trusted-ca-file=/ca.pem",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let f = Flags::parse(&args, env.into_iter()).unwrap();
        assert!(f.ignored.is_empty(), "{:?}", f.ignored);
        assert_eq!(f.get("cert-file"), Some("/c.pem"));
        assert_eq!(f.get("peer-cert-file"), Some("/p.pem"));
        assert_eq!(f.get("trusted-ca-file"), Some("/ca.pem"));
        assert!(f.bool("client-cert-auth", false).unwrap());
        assert!(f.bool("peer-client-cert-auth", false).unwrap());
    }

    #[test]
    fn unknown_flags_are_kept_aside() {
        let f = parse(&["-max-wals=9", "--name", "a"]);
        assert_eq!(f.ignored, vec!["max-wals".to_string()]);
        assert!(Flags::parse(&["--name".to_string()], std::iter::empty()).is_err());
    }
}
