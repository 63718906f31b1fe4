//! Correlation rules as data: each rule is a condition over one candidate's evidence that, when
//! it holds, yields a hypothesis with a weight and a sentence for people. Rules come from TOML
//! (the defaults shipped in `analysis/rules.toml`, then a user's file that adds rules or
//! replaces a default of the same name); conditions are MiniJinja expressions and sentences
//! MiniJinja templates. The summed weight of a candidate's hypotheses is one input of the
//! ranker ([`crate::ranker`]); the sentences are the explanation shown with the cause.
//!
//! ```toml
//! [[rule]]
//! name = "deployment_then_errors"
//! when = "changed and change_kind == 'deployment' and error_spans >= 3"
//! weight = 1.0
//! says = "{{ change_summary }} ({{ change_when }}), then: {{ evidence.error_spans }}"
//! ```
//!
//! Variables, the same for conditions and sentences:
//!
//! | name | type | meaning |
//! |---|---|---|
//! | `entity`, `kind` | string | the candidate (`kind`: `service`, `database`, `node`, `edge`) |
//! | `self_time`, `call_gap`, `error_spans`, `error_logs`, `log_deficit`, `cpu`, `memory`, `log_paths` | number | the feature's score (robust z among the analysis's candidates, ≥ 0, after propagation) |
//! | `explained` | bool | a deeper candidate accounts for some of its evidence |
//! | `changed` | bool | a change to it lies shortly before or in the window |
//! | `change_weight` | number | that change's proximity weight, 0–1 (0 when none) |
//! | `change_kind`, `change_summary`, `change_when`, `change_source`, `version_from`, `version_to` | string | that change ("" when none) |
//! | `evidence` | map | evidence feature name → its sentence, "" when the candidate has none: `self_time_p50`, `call_gap_p50`, `error_spans`, `failed_calls_into`, `error_log_records`, `log_records_per_request`, `cpu_utilization`, `memory_utilization`, `change_proximity`, `query_duration_p50`, `failed_queries`, `node_cpu_utilization`, `node_self_time_p50`, `failed_calls_on_path`, `log_path_shift`, `call_path_shift` |
//!
//! Every condition is checked when the file is loaded against facts with every variable set;
//! an unknown variable, a syntax error or a condition that is not a yes/no question rejects the
//! file with the rule's line and the reason.

use std::collections::BTreeMap;
use std::path::Path;

use minijinja::{Environment, UndefinedBehavior, Value};
use serde::{Deserialize, Serialize};

/// The rules shipped with loupe.
pub const DEFAULT_RULES: &str = include_str!("../rules.toml");

/// Names of the per-feature scores a rule can test, in the ranker's feature order.
pub const SCORE_VARIABLES: [&str; 9] = [
    "self_time",
    "call_gap",
    "error_spans",
    "error_logs",
    "log_deficit",
    "cpu",
    "memory",
    "log_paths",
    "trace_spectrum",
];

/// Evidence features a sentence can quote through `evidence.<name>`.
const EVIDENCE_FEATURES: [&str; 17] = [
    "self_time_p50",
    "call_gap_p50",
    "error_spans",
    "failed_calls_into",
    "error_log_records",
    "log_records_per_request",
    "cpu_utilization",
    "memory_utilization",
    "change_proximity",
    "query_duration_p50",
    "failed_queries",
    "node_cpu_utilization",
    "node_self_time_p50",
    "failed_calls_on_path",
    "log_path_shift",
    "call_path_shift",
    "trace_spectrum",
];

/// A rules file that cannot be used: where and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{origin}:{line}: {reason}")]
pub struct RulesError {
    /// The file (or `defaults`).
    pub origin: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    rule: Vec<toml::Spanned<RuleSpec>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    name: String,
    when: String,
    weight: f64,
    says: String,
}

/// One correlation rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    /// Unique name, `snake_case` by convention.
    pub name: String,
    /// Condition (a MiniJinja expression over the variables above).
    pub when: String,
    /// Weight of the hypothesis it yields (negative counts against the candidate).
    pub weight: f64,
    /// Sentence template (MiniJinja).
    pub says: String,
    /// Where it was defined: `file:line`.
    pub origin: String,
}

/// A rule that held for a candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hypothesis {
    /// The rule's name.
    pub rule: String,
    /// The rule's weight.
    pub weight: f64,
    /// The rule's sentence, filled in.
    pub sentence: String,
}

/// What a rule can see of one candidate.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Candidate name.
    pub entity: String,
    /// Candidate kind (`service`…).
    pub kind: String,
    /// Feature scores, in [`SCORE_VARIABLES`] order.
    pub scores: [f64; 9],
    /// Whether propagation damped any of its evidence.
    pub explained: bool,
    /// Its nearby change, if any: kind, summary, when (words), source, version from, version
    /// to, proximity weight.
    pub change: Option<ChangeFacts>,
    /// Evidence sentences by feature name.
    pub evidence: BTreeMap<String, String>,
}

/// The change a rule can see.
#[derive(Debug, Clone, Default)]
pub struct ChangeFacts {
    /// `deployment`, `config_change`, `feature_flag`…
    pub kind: String,
    /// A sentence.
    pub summary: String,
    /// When, in words (`during the window`, `120 s before the window`).
    pub when: String,
    /// Where it came from (`argocd`, `inferred`…).
    pub source: String,
    /// Version before ("" when unknown).
    pub version_from: String,
    /// Version after ("" when unknown).
    pub version_to: String,
    /// Proximity weight, 0–1.
    pub weight: f64,
}

impl Facts {
    fn value(&self) -> Value {
        let mut m: BTreeMap<&str, Value> = BTreeMap::new();
        m.insert("entity", Value::from(self.entity.clone()));
        m.insert("kind", Value::from(self.kind.clone()));
        for (name, score) in SCORE_VARIABLES.iter().zip(self.scores) {
            m.insert(name, Value::from(score));
        }
        m.insert("explained", Value::from(self.explained));
        m.insert("changed", Value::from(self.change.is_some()));
        let c = self.change.clone().unwrap_or_default();
        m.insert("change_weight", Value::from(c.weight));
        m.insert("change_kind", Value::from(c.kind));
        m.insert("change_summary", Value::from(c.summary));
        m.insert("change_when", Value::from(c.when));
        m.insert("change_source", Value::from(c.source));
        m.insert("version_from", Value::from(c.version_from));
        m.insert("version_to", Value::from(c.version_to));
        // Every known evidence name is defined ("" when the candidate has none of it), so a
        // sentence can quote one without guarding it.
        let mut evidence: BTreeMap<String, Value> = EVIDENCE_FEATURES
            .iter()
            .map(|f| (f.to_string(), Value::from("")))
            .collect();
        for (k, v) in &self.evidence {
            evidence.insert(k.clone(), Value::from(v.clone()));
        }
        m.insert("evidence", Value::from(evidence));
        Value::from(m)
    }

    /// Facts with every variable set, for checking rules at load.
    fn sample() -> Self {
        Self {
            entity: "checkout".into(),
            kind: "service".into(),
            scores: [1.0; 9],
            explained: false,
            change: Some(ChangeFacts {
                kind: "deployment".into(),
                summary: "checkout v2 deployed".into(),
                when: "during the window".into(),
                source: "api".into(),
                version_from: "v1".into(),
                version_to: "v2".into(),
                weight: 1.0,
            }),
            evidence: EVIDENCE_FEATURES
                .iter()
                .map(|f| (f.to_string(), format!("{f} changed")))
                .collect(),
        }
    }
}

/// A loaded, checked set of rules.
#[derive(Debug, Clone)]
pub struct Rules {
    rules: Vec<Rule>,
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env
}

/// 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

impl Rules {
    /// The shipped rules ([`DEFAULT_RULES`]).
    pub fn defaults() -> Self {
        Self::parse(DEFAULT_RULES, "rules.toml (shipped)")
            .expect("the shipped rules are valid (checked by a test)")
    }

    /// Rules from TOML `text`, each checked; `origin` names the file in errors.
    ///
    /// # Errors
    /// [`RulesError`] with the line and reason: TOML syntax, an unknown key, a duplicate name,
    /// a weight that is not finite, a condition or sentence that does not compile or refers to
    /// an unknown variable, a condition that does not answer yes or no.
    pub fn parse(text: &str, origin: &str) -> Result<Self, RulesError> {
        let error = |line: usize, reason: String| RulesError {
            origin: origin.to_owned(),
            line,
            reason,
        };
        let file: RulesFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |s| line_of(text, s.start));
            error(line, e.message().to_owned())
        })?;
        let env = environment();
        let sample = Facts::sample().value();
        let quiet = Facts {
            scores: [0.0; 9],
            change: None,
            ..Facts::sample()
        }
        .value();
        let mut rules: Vec<Rule> = Vec::new();
        for spanned in file.rule {
            let line = line_of(text, spanned.span().start);
            let spec = spanned.into_inner();
            let at = |reason: String| error(line, format!("rule {:?}: {reason}", spec.name));
            if spec.name.trim().is_empty() {
                return Err(error(line, "a rule needs a name".into()));
            }
            if rules.iter().any(|r| r.name == spec.name) {
                return Err(at("a rule of that name is already defined".into()));
            }
            if !spec.weight.is_finite() {
                return Err(at(format!("weight {} is not a finite number", spec.weight)));
            }
            let expr = env
                .compile_expression(&spec.when)
                .map_err(|e| at(format!("condition {:?}: {e}", spec.when)))?;
            for facts in [&sample, &quiet] {
                let v = expr
                    .eval(facts.clone())
                    .map_err(|e| at(format!("condition {:?}: {e}", spec.when)))?;
                if v.as_str().is_some() || v.as_object().is_some() {
                    return Err(at(format!(
                        "condition {:?} gives {v:?}, not yes or no",
                        spec.when
                    )));
                }
            }
            env.render_str(&spec.says, sample.clone())
                .map_err(|e| at(format!("sentence {:?}: {e}", spec.says)))?;
            rules.push(Rule {
                name: spec.name,
                when: spec.when,
                weight: spec.weight,
                says: spec.says,
                origin: format!("{origin}:{line}"),
            });
        }
        Ok(Self { rules })
    }

    /// The defaults with the rules of the file at `path` added (a rule of a default's name
    /// replaces it).
    ///
    /// # Errors
    /// [`RulesError`] when the file cannot be read (line 0) or is not valid.
    pub fn load(path: &Path) -> Result<Self, RulesError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| RulesError {
            origin: origin.clone(),
            line: 0,
            reason: e.to_string(),
        })?;
        Ok(Self::defaults().extended(Self::parse(&text, &origin)?))
    }

    /// These rules with `other`'s added, `other`'s winning on a name both define.
    pub fn extended(mut self, other: Rules) -> Self {
        for rule in other.rules {
            match self.rules.iter_mut().find(|r| r.name == rule.name) {
                Some(existing) => *existing = rule,
                None => self.rules.push(rule),
            }
        }
        self
    }

    /// The rules, in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The hypotheses each candidate's facts support, in rule order. A condition that fails to
    /// evaluate on some candidate (the load-time check makes this rare: a type mismatch on
    /// unusual values) does not hold; a sentence that fails to render says so.
    pub fn apply(&self, candidates: &[Facts]) -> Vec<Vec<Hypothesis>> {
        let env = environment();
        let compiled: Vec<_> = self
            .rules
            .iter()
            .map(|r| env.compile_expression(&r.when).ok())
            .collect();
        candidates
            .iter()
            .map(|facts| {
                let value = facts.value();
                self.rules
                    .iter()
                    .zip(&compiled)
                    .filter(|(_, expr)| {
                        expr.as_ref()
                            .and_then(|e| e.eval(value.clone()).ok())
                            .is_some_and(|v| v.is_true())
                    })
                    .map(|(rule, _)| Hypothesis {
                        rule: rule.name.clone(),
                        weight: rule.weight,
                        sentence: env
                            .render_str(&rule.says, value.clone())
                            .unwrap_or_else(|e| {
                                format!("rule {} held (its sentence failed: {e})", rule.name)
                            }),
                    })
                    .collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_rules_load() {
        assert!(Rules::defaults().rules().len() >= 8);
    }

    /// Bad files, one line per case: the line reported and a word of the reason.
    #[test]
    fn a_bad_rules_file_is_rejected_with_its_line_and_reason() {
        let rule = |when: &str, says: &str| {
            format!("# mine\n\n[[rule]]\nname = \"r\"\nwhen = \"{when}\"\nweight = 1.0\nsays = \"{says}\"\n")
        };
        let cases: Vec<(String, usize, &str)> = vec![
            (
                "[[rule]]\nname = \"r\"\nwhen = \"cpu >\n".into(),
                3,
                "string",
            ),
            (rule("cpu > 3 and", "hot"), 3, "condition"),
            (rule("cpuu > 3", "hot"), 3, "undefined"),
            (rule("cpu > 3", "{{ entty }} hot"), 3, "sentence"),
            (rule("entity", "hot"), 3, "not yes or no"),
            (rule("cpu > 3", "{{ evidence.no_such }}"), 3, "sentence"),
            (
                "[[rule]]\nname = \"r\"\nwhen = \"true\"\nsays = \"x\"\n".into(),
                1,
                "weight",
            ),
            (
                "[[rule]]\nname = \"r\"\nwhen = \"true\"\nweight = 1.0\nsays = \"x\"\nif = 1\n"
                    .into(),
                6,
                "unknown field",
            ),
            (
                format!(
                    "{}{}",
                    rule("cpu > 3", "a"),
                    rule("cpu > 4", "b").replace("# mine\n\n", "")
                ),
                8,
                "already defined",
            ),
            (
                "[[rule]]\nname = \"r\"\nwhen = \"true\"\nweight = nan\nsays = \"x\"\n".into(),
                1,
                "finite",
            ),
        ];
        for (text, line, reason) in cases {
            let e = Rules::parse(&text, "mine.toml").expect_err(&text);
            assert_eq!(e.line, line, "{e} for\n{text}");
            assert!(e.reason.contains(reason), "{e} for\n{text}");
            assert!(
                e.to_string().starts_with(&format!("mine.toml:{line}: ")),
                "{e}"
            );
        }
    }

    #[test]
    fn user_rules_add_to_and_replace_the_defaults() {
        let first = Rules::defaults().rules()[0].name.clone();
        let mine = Rules::parse(
            &format!(
                "[[rule]]\nname = \"{first}\"\nwhen = \"false\"\nweight = 0\nsays = \"off\"\n\n\
                 [[rule]]\nname = \"mine\"\nwhen = \"kind == 'node' and cpu >= 2\"\nweight = 2\n\
                 says = \"{{{{ entity }}}} is hot\"\n"
            ),
            "mine.toml",
        )
        .unwrap();
        let rules = Rules::defaults().extended(mine);
        assert_eq!(rules.rules().len(), Rules::defaults().rules().len() + 1);
        assert_eq!(rules.rules()[0].origin, "mine.toml:1");
        let node = Facts {
            entity: "node-a".into(),
            kind: "node".into(),
            scores: [0.0, 0.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0],
            ..Facts::default()
        };
        let fired = rules.apply(&[node]);
        let mine: Vec<_> = fired[0].iter().filter(|h| h.rule == "mine").collect();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].sentence, "node-a is hot");
        assert!(fired[0].iter().all(|h| h.rule != first));
    }
}
