//! The ablation of `loupe eval --ablation`: the same cases scored with one telemetry signal at
//! a time (traces only, metrics only, logs only) beside all of them, to show what each signal
//! carries. Change events (webhooks, the changes endpoint) are not telemetry and stay in every
//! arm.

use std::collections::BTreeMap;

use loupe_analysis::eval::Accuracy;
use loupe_ingest::{ExportRequest, Signal};
use serde::Serialize;

/// The telemetry signals an evaluation feeds its engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SignalSet {
    /// Traces, metrics and logs.
    #[default]
    All,
    /// Spans only.
    Traces,
    /// Metric points only.
    Metrics,
    /// Log records only.
    Logs,
}

impl SignalSet {
    /// The arms of the ablation, in the order printed.
    pub const ARMS: [SignalSet; 4] = [Self::All, Self::Traces, Self::Metrics, Self::Logs];

    /// Whether a request of `signal` is fed.
    pub fn keeps(self, signal: Signal) -> bool {
        match self {
            Self::All => true,
            Self::Traces => signal == Signal::Traces,
            Self::Metrics => signal == Signal::Metrics,
            Self::Logs => signal == Signal::Logs,
        }
    }

    /// The requests of `requests` this set feeds.
    pub fn filter(self, requests: Vec<ExportRequest>) -> Vec<ExportRequest> {
        requests
            .into_iter()
            .filter(|r| self.keeps(r.signal()))
            .collect()
    }

    /// Name as printed: `all`, `traces only`, ...
    pub fn label(self) -> &'static str {
        match self {
            Self::All => "all signals",
            Self::Traces => "traces only",
            Self::Metrics => "metrics only",
            Self::Logs => "logs only",
        }
    }
}

/// One arm of the ablation: accuracy over all cases and per system.
#[derive(Debug, Clone, Serialize)]
pub struct AblationArm {
    /// The signals fed.
    pub signals: SignalSet,
    /// Over all cases.
    pub summary: Accuracy,
    /// Per system.
    pub per_system: BTreeMap<String, Accuracy>,
}

/// The ablation as a table: a row per system (and all cases) and arm.
pub fn render(arms: &[AblationArm]) -> String {
    let mut out = String::from(
        "\nablation (the same cases, one signal at a time; change events in every arm):\n",
    );
    out.push_str(&format!(
        "{:<28} {:<13} {:>5} {:>6} {:>6} {:>6} {:>6}\n",
        "system", "signals", "cases", "AC@1", "AC@3", "Avg@5", "MRR"
    ));
    let mut systems: Vec<&str> = arms
        .iter()
        .flat_map(|a| a.per_system.keys().map(String::as_str))
        .collect();
    systems.sort_unstable();
    systems.dedup();
    let row = |out: &mut String, system: &str, arm: &AblationArm, a: &Accuracy| {
        out.push_str(&format!(
            "{:<28} {:<13} {:>5} {:>6.3} {:>6.3} {:>6.3} {:>6.3}\n",
            system,
            arm.signals.label(),
            a.cases,
            a.ac_at_1,
            a.ac_at_3,
            a.avg_at_5,
            a.mrr
        ));
    };
    for system in systems {
        for arm in arms {
            if let Some(a) = arm.per_system.get(system) {
                row(&mut out, system, arm, a);
            }
        }
    }
    for arm in arms {
        row(&mut out, "all cases", arm, &arm.summary);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_arm_keeps_its_signal_only() {
        let signals = [Signal::Traces, Signal::Metrics, Signal::Logs];
        let kept = |set: SignalSet| -> Vec<Signal> {
            signals.iter().copied().filter(|s| set.keeps(*s)).collect()
        };
        assert_eq!(kept(SignalSet::All), signals.to_vec());
        assert_eq!(kept(SignalSet::Traces), vec![Signal::Traces]);
        assert_eq!(kept(SignalSet::Metrics), vec![Signal::Metrics]);
        assert_eq!(kept(SignalSet::Logs), vec![Signal::Logs]);
    }

    #[test]
    fn the_table_has_a_row_per_system_and_arm() {
        let acc = |cases, ac1| Accuracy {
            cases,
            ac_at_1: ac1,
            ac_at_3: ac1,
            ac_at_5: ac1,
            avg_at_5: ac1,
            mrr: ac1,
        };
        let arm = |signals, a: f64, b: f64| AblationArm {
            signals,
            summary: acc(3, (a + 2.0 * b) / 3.0),
            per_system: [("ob".to_owned(), acc(1, a)), ("tt".to_owned(), acc(2, b))].into(),
        };
        let text = render(&[
            arm(SignalSet::All, 1.0, 0.5),
            arm(SignalSet::Metrics, 0.0, 0.25),
        ]);
        let lines: Vec<&str> = text.trim_start().lines().collect();
        assert_eq!(lines.len(), 2 + 2 * 2 + 2, "{text}");
        assert!(lines[2].starts_with("ob") && lines[2].contains("all signals"));
        assert!(lines[3].contains("metrics only") && lines[3].contains("0.000"));
        assert!(lines[5].contains("metrics only") && lines[5].contains("0.250"));
        assert!(lines[7].starts_with("all cases") && lines[7].contains("0.167"));
    }
}
