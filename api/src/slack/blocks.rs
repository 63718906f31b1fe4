//! An [`Answer`] as a Slack message in Block Kit (docs.slack.dev/reference/block-kit): a header
//! with the headline, how the question was read, the facts, the suggested commands as code, one
//! row of Accept / Reject buttons per ranked cause of an incident, and links to the web UI.
//! Texts are cut to Block Kit's limits (header 150 characters, section 3000, button 75, value
//! 2000, 50 blocks) and `&`, `<`, `>` escaped as `mrkdwn` asks.

use serde_json::{json, Value};

use crate::ask::Answer;

/// `action_id` of the Accept buttons; their `value` is `{incident}|{cause id}`.
pub const ACCEPT: &str = "loupe.verdict.accept";
/// `action_id` of the Reject buttons.
pub const REJECT: &str = "loupe.verdict.reject";

const SECTION_CHARS: usize = 2900;
const MAX_BLOCKS: usize = 50;

/// `&`, `<` and `>` as Slack's `mrkdwn` needs them.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `s` cut to `max` characters, with an ellipsis when cut.
pub fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn mrkdwn(text: &str) -> Value {
    json!({"type": "mrkdwn", "text": cut(text, SECTION_CHARS)})
}

fn section(text: &str) -> Value {
    json!({"type": "section", "text": mrkdwn(text)})
}

/// The `block_id` of cause `rank`'s buttons in incident `incident`'s message.
pub fn verdict_block_id(incident: u64, rank: usize) -> String {
    format!("loupe.incident.{incident}.cause.{rank}")
}

/// The message for `answer`: `{"text": fallback, "blocks": […]}`; links are absolute on
/// `base` (`https://loupe.example.com`).
pub fn message(answer: &Answer, base: &str) -> Value {
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": cut(&answer.headline, 150), "emoji": false}}),
        json!({"type": "context", "elements": [mrkdwn(&escape(&answer.interpretation))]}),
    ];
    // The facts, in sections of at most ~3000 characters.
    let mut chunk = String::new();
    for fact in &answer.facts {
        let line = escape(fact);
        if !chunk.is_empty() && chunk.len() + line.len() + 1 > SECTION_CHARS {
            blocks.push(section(&chunk));
            chunk.clear();
        }
        if !chunk.is_empty() {
            chunk.push('\n');
        }
        // Cause lines (`#1 service:payment (83%)`) in bold; their details indented.
        if line.starts_with('#') {
            chunk.push_str(&format!("*{}*", line.trim()));
        } else {
            chunk.push_str(&line);
        }
    }
    if !chunk.is_empty() {
        blocks.push(section(&chunk));
    }
    if !answer.options.is_empty() {
        blocks.push(section(&format!(
            "*Did you mean:* {}",
            escape(&answer.options.join(", "))
        )));
    }
    if !answer.commands.is_empty() {
        blocks.push(section(&format!(
            "*Suggested remediation* (loupe never runs it):\n```{}```",
            escape(&answer.commands.join("\n"))
        )));
    }
    if let Some(incident) = answer.incident {
        for cause in &answer.causes {
            let value = cut(&format!("{incident}|{}", cause.id), 2000);
            let name = format!("#{} {}", cause.rank, cause.id);
            blocks.push(json!({
                "type": "actions",
                "block_id": verdict_block_id(incident, cause.rank),
                "elements": [
                    {"type": "button", "action_id": ACCEPT, "style": "primary", "value": value,
                     "text": {"type": "plain_text", "text": cut(&format!("Accept {name}"), 75)}},
                    {"type": "button", "action_id": REJECT, "style": "danger", "value": value,
                     "text": {"type": "plain_text", "text": cut(&format!("Reject {name}"), 75)},
                     "confirm": {
                        "title": {"type": "plain_text", "text": "Reject this cause?"},
                        "text": {"type": "mrkdwn", "text": cut(&format!(
                            "{} drops from incident #{incident}, and later analyses weigh causes like it lower.",
                            escape(&cause.id)), 300)},
                        "confirm": {"type": "plain_text", "text": "Reject"},
                        "deny": {"type": "plain_text", "text": "Keep it"},
                        "style": "danger"
                     }}
                ]
            }));
        }
    }
    if !answer.links.is_empty() {
        let base = base.trim_end_matches('/');
        let links: Vec<String> = answer
            .links
            .iter()
            .take(10)
            .map(|l| format!("<{base}{}|{}>", l.path, escape(&l.title)))
            .collect();
        blocks.push(json!({"type": "context", "elements": [mrkdwn(&links.join("  ·  "))]}));
    }
    blocks.truncate(MAX_BLOCKS);
    json!({
        "text": cut(&escape(&format!("{}: {}", answer.question, answer.headline)), 3000),
        "blocks": blocks,
    })
}

/// The blocks of `message` with the actions block `block_id` replaced by a line saying what
/// was decided (the buttons go; the rest of the message stays).
pub fn mark_decided(blocks: &[Value], block_id: &str, line: &str) -> Vec<Value> {
    blocks
        .iter()
        .map(|b| {
            if b["block_id"].as_str() == Some(block_id) && b["type"] == "actions" {
                json!({"type": "context", "block_id": block_id, "elements": [mrkdwn(line)]})
            } else {
                b.clone()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ask::{CauseRef, Link};

    fn answer() -> Answer {
        Answer {
            question: "why is <checkout> slow & failing?".into(),
            understood: true,
            interpretation: "I read this as: what is wrong with service checkout".into(),
            reading: None,
            headline: "x".repeat(400),
            facts: vec![
                "#1 service:payment (83%) after deploy payment v2".into(),
                "   evidence: error ratio 12% > 0.1% baseline".into(),
            ],
            commands: vec!["kubectl rollout undo deployment/payment -n shop".into()],
            links: vec![Link {
                title: "incident #3".into(),
                path: "/incidents/3".into(),
            }],
            options: vec![],
            incident: Some(3),
            causes: vec![
                CauseRef {
                    rank: 1,
                    id: "service:payment".into(),
                    probability: 0.83,
                },
                CauseRef {
                    rank: 2,
                    id: "service:cart".into(),
                    probability: 0.1,
                },
            ],
            data: Value::Null,
        }
    }

    /// Walks a message and checks Block Kit's limits: at most 50 blocks, header ≤ 150,
    /// section text ≤ 3000, button text ≤ 75 and value ≤ 2000, action ids unique in a block.
    fn check_limits(message: &Value) {
        let blocks = message["blocks"].as_array().unwrap();
        assert!(blocks.len() <= 50);
        for b in blocks {
            match b["type"].as_str().unwrap() {
                "header" => assert!(b["text"]["text"].as_str().unwrap().chars().count() <= 150),
                "section" => assert!(b["text"]["text"].as_str().unwrap().chars().count() <= 3000),
                "actions" => {
                    let mut ids = std::collections::HashSet::new();
                    for e in b["elements"].as_array().unwrap() {
                        assert!(ids.insert(e["action_id"].as_str().unwrap().to_owned()));
                        assert!(e["text"]["text"].as_str().unwrap().chars().count() <= 75);
                        assert!(e["value"].as_str().unwrap().len() <= 2000);
                    }
                }
                "context" => {}
                other => panic!("unexpected block {other}"),
            }
        }
    }

    #[test]
    fn an_incident_answer_has_buttons_per_cause_within_limits() {
        let m = message(&answer(), "https://loupe.example.com/");
        check_limits(&m);
        let blocks = m["blocks"].as_array().unwrap();
        let actions: Vec<&Value> = blocks.iter().filter(|b| b["type"] == "actions").collect();
        assert_eq!(actions.len(), 2);
        assert_eq!(actions[0]["block_id"], "loupe.incident.3.cause.1");
        assert_eq!(actions[0]["elements"][0]["action_id"], ACCEPT);
        assert_eq!(actions[0]["elements"][1]["action_id"], REJECT);
        assert_eq!(actions[0]["elements"][1]["value"], "3|service:payment");
        assert!(actions[0]["elements"][1]["confirm"].is_object());
        let text = m.to_string();
        assert!(text.contains("<https://loupe.example.com/incidents/3|incident #3>"));
        assert!(text.contains("&lt;checkout&gt; slow &amp; failing"));
        assert!(text.contains("kubectl rollout undo deployment/payment -n shop"));
        assert!(m["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .ends_with('…'));
    }

    #[test]
    fn without_an_incident_there_are_no_buttons_and_huge_facts_are_split() {
        let mut a = answer();
        a.incident = None;
        a.facts = (0..400)
            .map(|i| format!("fact {i} {}", "y".repeat(60)))
            .collect();
        let m = message(&a, "http://x");
        check_limits(&m);
        assert!(!m.to_string().contains("\"actions\""));
    }

    #[test]
    fn a_decision_replaces_only_its_buttons() {
        let m = message(&answer(), "http://x");
        let blocks = m["blocks"].as_array().unwrap();
        let after = mark_decided(blocks, &verdict_block_id(3, 1), "accepted by <@U1>");
        assert_eq!(after.len(), blocks.len());
        assert_eq!(after.iter().filter(|b| b["type"] == "actions").count(), 1);
        assert!(serde_json::to_string(&after)
            .unwrap()
            .contains("accepted by <@U1>"));
    }
}
