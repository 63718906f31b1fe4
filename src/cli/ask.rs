//! `loupe ask "question"`: posts a plain-English question to a running server's
//! `POST /api/v1/ask` and prints the answer as text (or its JSON with `--json`).

use anyhow::Context;

/// Who asks, where and when.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    /// The asker's IANA zone (the server reads UTC when `None`).
    pub time_zone: Option<&'a str>,
    /// The asker (a verdict's author).
    pub by: &'a str,
    /// The time the question is read at, unix nanoseconds (the server's now when `None`).
    pub now: Option<u64>,
}

/// Asks `question` of the server at `server` (e.g. `http://127.0.0.1:8080`) and prints the
/// answer.
///
/// # Errors
/// When the server cannot be reached or refuses the request; the message carries the
/// server's.
pub async fn run(
    server: &str,
    question: &str,
    asked: &Asked<'_>,
    json: bool,
) -> anyhow::Result<()> {
    let base = server.trim_end_matches('/');
    let mut body = serde_json::json!({ "question": question, "by": asked.by });
    if let Some(z) = asked.time_zone {
        body["time_zone"] = z.into();
    }
    if let Some(now) = asked.now {
        body["now"] = now.into();
    }
    let (_, bytes) =
        crate::cli::query::post_api(base, "/api/v1/ask", &body, "application/json").await?;
    if json {
        println!("{}", String::from_utf8_lossy(&bytes));
        return Ok(());
    }
    let answer: serde_json::Value =
        serde_json::from_slice(&bytes).context("the server's answer is not JSON")?;
    print!("{}", loupe_api::ask::render_text(&answer, base));
    Ok(())
}

/// `loupe ask` arguments.
#[derive(clap::Args)]
pub struct AskArgs {
    /// The question.
    pub question: String,
    /// The server's REST API.
    #[arg(long, env = "LOUPE_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Your IANA time zone, for the times you type and read (default: UTC).
    #[arg(long, env = "LOUPE_TIME_ZONE")]
    pub time_zone: Option<String>,
    /// Who asks (the author of a verdict) [default: $USER].
    #[arg(long)]
    pub by: Option<String>,
    /// Read the question as if asked at this time (RFC 3339 or unix nanoseconds; for
    /// replayed data) [default: the server's now].
    #[arg(long)]
    pub now: Option<String>,
    /// Print the JSON answer instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `loupe ask`: asks, as `--by` (else `$USER`), at `--now` when given, and prints the answer.
///
/// # Errors
/// A bad `--now`, or the server unreachable or refusing.
pub async fn execute(args: AskArgs) -> anyhow::Result<()> {
    let AskArgs {
        question,
        server,
        time_zone,
        by,
        now,
        json,
    } = args;
    let by = by
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "loupe ask".into());
    let now = now
        .map(|t| crate::cli::values::time_arg("now", &t))
        .transpose()?;
    let asked = Asked {
        time_zone: time_zone.as_deref(),
        by: &by,
        now,
    };
    run(&server, &question, &asked, json).await?;
    Ok(())
}
