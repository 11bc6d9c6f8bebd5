//! Energy, where the lab has it: the power NVIDIA's DCGM exporter reports per pod
//! (`DCGM_FI_DEV_POWER_USAGE`, watts, labelled with the pod and its namespace), read from
//! Prometheus's HTTP API as one range query per report, joined to the holds by pod name.

use jiff::{SignedDuration, Timestamp};
use llp_spec::usage::Power;
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;

/// How long Prometheus may take to answer.
const DEADLINE: Duration = Duration::from_secs(15);

/// Prometheus keeps at most 11,000 points per series in an answer.
const MAX_POINTS: i64 = 10_000;

/// Where the power comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnergySettings {
    /// Prometheus's base URL; empty: no energy in the reports.
    pub prometheus_url: String,
    /// The power metric (watts per GPU).
    pub power_metric: String,
    /// Its label naming the pod (`exported_pod` when Prometheus renamed it on scraping).
    pub pod_label: String,
    /// Its label naming the pod's namespace.
    pub namespace_label: String,
}

impl Default for EnergySettings {
    fn default() -> Self {
        Self {
            prometheus_url: String::new(),
            power_metric: "DCGM_FI_DEV_POWER_USAGE".into(),
            pod_label: "pod".into(),
            namespace_label: "namespace".into(),
        }
    }
}

/// A Prometheus to ask.
pub struct Prometheus {
    http: reqwest::Client,
    settings: EnergySettings,
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    data: Option<Matrix>,
}

#[derive(Deserialize)]
struct Matrix {
    #[serde(default)]
    result: Vec<Series>,
}

#[derive(Deserialize)]
struct Series {
    metric: HashMap<String, String>,
    values: Vec<(f64, String)>,
}

impl Prometheus {
    /// A client of the Prometheus in `settings`, if one is configured.
    pub fn new(settings: EnergySettings) -> Option<Self> {
        if settings.prometheus_url.is_empty() {
            return None;
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder().timeout(DEADLINE).build().ok()?;
        Some(Self { http, settings })
    }

    /// The power pods of `namespace` drew within `window`, or what went wrong (naming Prometheus).
    pub async fn power(&self, namespace: &str, (from, to): (Timestamp, Timestamp)) -> Result<Power, String> {
        let s = &self.settings;
        let seconds = (to - from).get_seconds().max(1);
        let step = SignedDuration::from_secs((seconds / MAX_POINTS).max(30));
        let query = format!(
            "sum by ({pod}) ({metric}{{{ns}=\"{namespace}\"}})",
            pod = s.pod_label,
            metric = s.power_metric,
            ns = s.namespace_label
        );
        let named = |problem: String| format!("Prometheus at {}: {problem}", s.prometheus_url);
        let mut url = reqwest::Url::parse(&format!(
            "{}/api/v1/query_range",
            s.prometheus_url.trim_end_matches('/')
        ))
        .map_err(|e| named(format!("not a URL ({e})")))?;
        url.query_pairs_mut()
            .append_pair("query", &query)
            .append_pair("start", &from.as_second().to_string())
            .append_pair("end", &to.as_second().to_string())
            .append_pair("step", &format!("{}s", step.as_secs()));
        let response = self.http.get(url).send().await.map_err(|e| {
            named(if e.is_timeout() {
                "did not answer in time".into()
            } else {
                format!("unreachable ({e})")
            })
        })?;
        let status = response.status();
        let answer: Answer = response
            .json()
            .await
            .map_err(|e| named(format!("answered {status} without Prometheus's JSON ({e})")))?;
        if answer.status != "success" {
            return Err(named(answer.error.unwrap_or_else(|| format!("answered {status}"))));
        }
        let mut by_pod = HashMap::new();
        for series in answer.data.map(|d| d.result).unwrap_or_default() {
            let Some(pod) = series.metric.get(&s.pod_label) else {
                continue;
            };
            let samples: Vec<(Timestamp, f64)> = series
                .values
                .iter()
                .filter_map(|(at, watts)| {
                    let at = Timestamp::from_millisecond((at * 1000.0).round() as i64).ok()?;
                    Some((at, watts.parse::<f64>().ok().filter(|w| w.is_finite())?))
                })
                .collect();
            by_pod.insert(pod.clone(), samples);
        }
        Ok(Power { step, by_pod })
    }
}
