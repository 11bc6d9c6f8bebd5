//! The service's configuration: one typed struct, read from a TOML file, then overridden by
//! `LLP_…` environment variables (env wins). Unknown keys are errors, as in deployments.

use crate::records::Token;
use crate::records::directus::DirectusConfig;
use llp_spec::{LimitsTable, RenderConfig};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Everything `llp-k8s serve` needs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the service listens on.
    pub listen: SocketAddr,
    /// Limits on connections and log streams.
    pub server: ServerLimits,
    /// Browser origins allowed to call the service (the LLP frontend's, as in Directus's
    /// `CORS_ORIGIN`); empty: no CORS headers.
    pub cors_origins: Vec<String>,
    /// Where users and deployment records come from.
    pub records: RecordsConfig,
    /// How deployments become Kubernetes objects (namespace, prefix, storage class, node
    /// selector, pull policy, ingress domain/class/annotations/TLS).
    pub cluster: RenderConfig,
    /// Defaults and maxima for everyone, and larger maxima per group.
    pub limits: LimitsTable,
    /// GPU reservations (SPEC section 10).
    pub reservations: crate::reservations::ReservationSettings,
    /// Deployments whose record is gone: found, listed, removed after a grace period.
    pub orphans: crate::orphans::OrphanSettings,
    /// GPU usage's energy: the lab's Prometheus with the DCGM exporter's power per pod.
    pub usage: crate::usage::energy::EnergySettings,
    /// How long the Kubernetes API may take to begin answering one request before the route
    /// answers 504 naming the cluster.
    pub cluster_request_seconds: u64,
    /// How long the watch caches may fail to follow the cluster before `/readyz` fails (status
    /// answers say they are stale from the first failure).
    pub cluster_stale_seconds: u64,
}

impl Config {
    /// [`Config::cluster_request_seconds`] as a duration.
    pub fn cluster_deadline(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.cluster_request_seconds.max(1))
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            server: ServerLimits::default(),
            cors_origins: Vec::new(),
            records: RecordsConfig::default(),
            cluster: RenderConfig::default(),
            limits: LimitsTable::default(),
            reservations: crate::reservations::ReservationSettings::default(),
            orphans: crate::orphans::OrphanSettings::default(),
            usage: crate::usage::energy::EnergySettings::default(),
            cluster_request_seconds: crate::cluster::calls::REQUEST_DEADLINE.as_secs(),
            cluster_stale_seconds: crate::cluster::STALE_AFTER.as_secs(),
        }
    }
}

/// Which record source, and its settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordsConfig {
    /// `embedded` (a SQLite file) or `directus` (the real LLP API).
    pub source: SourceKind,
    /// The embedded source's SQLite file.
    pub database: PathBuf,
    /// The `directus` source.
    pub directus: DirectusConfig,
}

impl Default for RecordsConfig {
    fn default() -> Self {
        Self {
            source: SourceKind::Embedded,
            database: PathBuf::from("llp-k8s.sqlite"),
            directus: DirectusConfig::default(),
        }
    }
}

/// The record sources of SPEC section 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Users and records in a SQLite file, served under `/items/deployments`.
    Embedded,
    /// The LLP API (Directus), read with each caller's token.
    Directus,
}

/// The configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is missing or unreadable.
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The file is not valid configuration.
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    /// An environment variable has an unusable value.
    #[error("{name}: {message}")]
    Env { name: &'static str, message: String },
    /// A setting the service cannot honour.
    #[error("[cluster] {0}")]
    Cluster(String),
    /// A limit that would not do what it says.
    #[error("{0}")]
    Limits(String),
}

impl Config {
    /// Reads `file` (if given), then applies the environment `env` (a lookup, so tests need
    /// not touch the process environment).
    pub fn load(file: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.into(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: path.into(),
                    source: Box::new(source),
                })?
            }
            None => Config::default(),
        };
        config.apply_env(env)?;
        config.cluster.check().map_err(ConfigError::Cluster)?;
        if let Some(lowered) = config.limits.lowered_by_groups().into_iter().next() {
            return Err(ConfigError::Limits(lowered));
        }
        Ok(config)
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(listen) = env("LLP_LISTEN") {
            self.listen = listen.parse().map_err(|e| ConfigError::Env {
                name: "LLP_LISTEN",
                message: format!("`{listen}`: {e}"),
            })?;
        }
        if let Some(seconds) = env("LLP_CLUSTER_REQUEST_SECONDS") {
            self.cluster_request_seconds = seconds
                .parse()
                .ok()
                .filter(|s| *s > 0)
                .ok_or_else(|| ConfigError::Env {
                    name: "LLP_CLUSTER_REQUEST_SECONDS",
                    message: format!("`{seconds}` is not a whole number of seconds above 0"),
                })?;
        }
        let text = |name: &str, target: &mut String| {
            if let Some(value) = env(name) {
                *target = value;
            }
        };
        text("LLP_NAMESPACE", &mut self.cluster.namespace);
        text("LLP_NAME_PREFIX", &mut self.cluster.name_prefix);
        text("LLP_IMAGE_PULL_POLICY", &mut self.cluster.image_pull_policy);
        text("LLP_INGRESS_DOMAIN", &mut self.cluster.ingress.domain);
        text("LLP_PROMETHEUS_URL", &mut self.usage.prometheus_url);
        if let Some(class) = env("LLP_STORAGE_CLASS") {
            self.cluster.storage_class = Some(class).filter(|c| !c.is_empty());
        }
        if let Some(class) = env("LLP_INGRESS_CLASS") {
            self.cluster.ingress.class = Some(class).filter(|c| !c.is_empty());
        }
        if let Some(origins) = env("LLP_CORS_ORIGINS") {
            self.cors_origins = origins
                .split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(database) = env("LLP_DATABASE") {
            self.records.database = PathBuf::from(database);
        }
        if let Some(source) = env("LLP_RECORD_SOURCE") {
            self.records.source = match source.as_str() {
                "embedded" => SourceKind::Embedded,
                "directus" => SourceKind::Directus,
                _ => {
                    return Err(ConfigError::Env {
                        name: "LLP_RECORD_SOURCE",
                        message: format!("`{source}` is neither `embedded` nor `directus`"),
                    });
                }
            };
        }
        text("LLP_URL", &mut self.records.directus.url);
        if let Some(token) = env("LLP_IDENTITY_TOKEN") {
            self.records.directus.identity_token = Some(token).filter(|t| !t.is_empty()).map(Token::new);
        }
        if let Some(token) = env("LLP_SERVICE_TOKEN") {
            self.records.directus.service_token = Some(token).filter(|t| !t.is_empty()).map(Token::new);
        }
        Ok(())
    }
}

/// Limits on the service's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerLimits {
    /// Seconds a connection has to send a request's headers (and an idle kept-alive
    /// connection to send its next request) before it is closed.
    pub header_read_seconds: u64,
    /// Connections open at once.
    pub max_connections: usize,
    /// Connections open at once from one client address (behind an ingress controller, its
    /// pods are the clients: keep this above what they open).
    pub connections_per_address: usize,
    /// Requests in progress at once with one token: more are answered 429 at once.
    pub requests_per_token: usize,
    /// Seconds a request has to send its whole body, from its headers on (408 after).
    pub body_read_seconds: u64,
    /// Log streams (`logs?follow=true`) one user may have open at once.
    pub follows_per_user: usize,
    /// Status streams (`/stream`) one user may have open at once.
    pub status_streams_per_user: usize,
    /// Terminals (`/exec`) one user may have open at once.
    pub terminals_per_user: usize,
    /// Seconds a terminal may go without input or output before it is closed.
    pub terminal_idle_seconds: u64,
    /// Seconds a replica told to stop goes on serving, `/readyz` failing, so that load
    /// balancers take it out before it closes its listener.
    pub drain_seconds: u64,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_read_seconds: 10,
            max_connections: 4096,
            connections_per_address: 1024,
            requests_per_token: 64,
            body_read_seconds: 30,
            follows_per_user: 8,
            status_streams_per_user: 16,
            terminals_per_user: 4,
            terminal_idle_seconds: 900,
            drain_seconds: 5,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_documented_example_parses() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../config.example.toml"));
        let config = Config::load(Some(path), no_env).expect("the example is valid");
        assert_eq!(config.cluster.namespace, "services");
        assert_eq!(config.limits.for_groups(&["management"]).max_cpu, 256);
        assert_eq!(config.limits.default.gpus, llp_spec::GpuSet::ALL);
    }

    #[test]
    fn a_configured_token_never_shows_in_a_printed_configuration() {
        let env = |name: &str| {
            ["LLP_IDENTITY_TOKEN", "LLP_SERVICE_TOKEN"]
                .contains(&name)
                .then(|| "s3cret-token".to_owned())
        };
        let config = Config::load(None, env).unwrap();
        assert!(config.records.directus.identity_token.is_some());
        assert!(config.records.directus.service_token.is_some());
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn the_example_file_states_the_defaults() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../config.example.toml"));
        let config = Config::load(Some(path), no_env).expect("the example is valid");
        assert_eq!(config, Config::default());
    }

    #[test]
    fn the_environment_wins_over_the_file() {
        let dir = std::env::temp_dir().join(format!("llp-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\n[cluster]\nnamespace = \"from-file\"\n",
        )
        .unwrap();
        let env = |name: &str| (name == "LLP_NAMESPACE").then(|| "from-env".to_owned());
        let config = Config::load(Some(&file), env).unwrap();
        assert_eq!(config.cluster.namespace, "from-env");
        assert_eq!(config.listen.port(), 9000);
    }

    #[test]
    fn a_group_limit_below_the_default_stops_the_start_naming_it() {
        let dir = std::env::temp_dir().join(format!("llp-config-lower-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "[limits.groups.guests.quota]\ncpu = 8\n").unwrap();
        let error = Config::load(Some(&file), no_env).unwrap_err().to_string();
        assert!(
            error.starts_with("limits.groups.guests.quota.cpu = 8 is below limits.default.quota.cpu = 128"),
            "{error}"
        );
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_it() {
        let dir = std::env::temp_dir().join(format!("llp-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "[cluster]\nnamespce = \"x\"\n").unwrap();
        let error = Config::load(Some(&file), no_env).unwrap_err().to_string();
        assert!(error.contains("namespce"), "{error}");
        let bad_listen = |name: &str| (name == "LLP_LISTEN").then(|| "nowhere".to_owned());
        assert!(
            Config::load(None, bad_listen)
                .unwrap_err()
                .to_string()
                .starts_with("LLP_LISTEN")
        );
    }
}
