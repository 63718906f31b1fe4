//! `loupe token create`: makes a bearer token for a server beyond loopback, appends its
//! digest to the tokens file and prints the token once.

use std::path::PathBuf;

/// What `loupe token` does.
#[derive(clap::Subcommand)]
pub enum TokenAction {
    /// Make a token, append its SHA-256 digest to the tokens file (created, mode 0600, when
    /// missing) and print the token once: it is kept nowhere else.
    Create {
        /// The token's name, recorded with what it does (one word, unique in the file).
        #[arg(long)]
        name: String,
        /// Its scopes, comma-separated: ingest (OTLP, changes), read (API, SQL, UI, MCP),
        /// admin (verdicts, manual incidents; includes read).
        #[arg(long, value_parser = parse_scope_list)]
        scope: ScopeList,
        /// The tokens file the server reads (`--auth-tokens-file`).
        #[arg(long, env = "LOUPE_AUTH_TOKENS_FILE")]
        tokens_file: PathBuf,
    },
}

/// Scopes, as `--scope` lists them.
#[derive(Clone)]
pub struct ScopeList(Vec<loupe_api::auth::Scope>);

fn parse_scope_list(s: &str) -> Result<ScopeList, String> {
    loupe_api::auth::parse_scopes(s).map(ScopeList)
}

/// `loupe token`.
///
/// # Errors
/// The tokens file unwritable, or the name taken.
pub fn execute(action: TokenAction) -> anyhow::Result<()> {
    let TokenAction::Create {
        name,
        scope,
        tokens_file,
    } = action;
    let token = loupe_api::auth::create_token(&tokens_file, &name, &scope.0)?;
    let scopes: Vec<&str> = scope.0.iter().map(|s| s.as_str()).collect();
    eprintln!(
        "token {name:?} ({}) added to {}; it is shown once, here:",
        scopes.join(","),
        tokens_file.display()
    );
    println!("{token}");
    eprintln!(
        "send it as `Authorization: Bearer <token>`: OTEL_EXPORTER_OTLP_HEADERS=\"Authorization=Bearer%20<token>\" for exporters, LOUPE_TOKEN=<token> for loupe ask/query/mcp; a running server reads the file again within a second"
    );
    Ok(())
}
