//! The `moat` command: the gateway server and the CLI that manages it, in one binary.

#![allow(clippy::print_stdout, reason = "a CLI's output goes to stdout")]

mod admin_client;
mod budgets_cli;
mod credentials;
mod logging;
mod login;
mod report_cli;
mod secrets_cli;
mod serve;
mod setup;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc rather than the system allocator: requests allocate and free on every worker
/// thread, and glibc's malloc spends that time on its arena locks (measured in `bench/`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The enterprise gateway for open-weight AI.
#[derive(Debug, Parser)]
#[command(name = "moat", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// Configuration file (TOML). Without one, moat starts with defaults on ./moat-data.
        #[arg(long, short, env = "MOAT_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Apply the store's pending schema migrations (forward only), for `store.migrate = "check"`.
    Migrate {
        /// Configuration file (TOML), for the store's URL.
        #[arg(long, short, env = "MOAT_CONFIG")]
        config: Option<PathBuf>,
    },
    /// The master key for encryption at rest: make one, or rotate to a new one.
    Secrets {
        #[command(subcommand)]
        command: secrets_cli::SecretsCommand,
    },
    /// Work with configuration files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Create, list and revoke virtual keys (through the admin API).
    Keys {
        #[command(flatten)]
        server: admin_client::ServerArgs,
        #[command(subcommand)]
        command: admin_client::KeysCommand,
    },
    /// Set, read, reset and delete spend budgets, and see spend against them (through the
    /// admin API).
    Budgets {
        #[command(flatten)]
        server: admin_client::ServerArgs,
        #[command(subcommand)]
        command: budgets_cli::BudgetsCommand,
    },
    /// Set, read, reset and delete rate and concurrency limits (through the admin API).
    Limits {
        #[command(flatten)]
        server: admin_client::ServerArgs,
        #[command(subcommand)]
        command: budgets_cli::LimitsCommand,
    },
    /// Spend, tokens, savings and latency by team, user, key, model, deployment or day, from
    /// the hourly rollups (through the admin API).
    Report {
        #[command(flatten)]
        server: admin_client::ServerArgs,
        #[command(flatten)]
        args: report_cli::ReportArgs,
    },
    /// The monthly chargeback CSV: one row per team with requests, tokens, cost and savings.
    Chargeback {
        #[command(flatten)]
        server: admin_client::ServerArgs,
        /// The month, `2026-11`; default: last month.
        #[arg(long)]
        month: Option<String>,
        /// The IANA time zone the month is in, e.g. `America/New_York` (default UTC).
        #[arg(long)]
        tz: Option<String>,
    },
    /// Show usage records (through the admin API).
    Usage {
        #[command(flatten)]
        server: admin_client::ServerArgs,
        #[command(flatten)]
        args: admin_client::UsageArgs,
    },
    /// Sign in through the browser and receive a personal key (the OAuth device flow).
    Login(login::LoginArgs),
    /// Point a coding agent (Claude Code, Codex, OpenCode, aider, Continue) or the shell at
    /// moat, with your key.
    Setup(setup::SetupArgs),
    /// Read and verify the audit log (through the admin API).
    Audit {
        #[command(flatten)]
        server: admin_client::ServerArgs,
        #[command(subcommand)]
        command: admin_client::AuditCommand,
    },
    /// Show each deployment's health, requests in flight and time to first token.
    Deployments {
        #[command(flatten)]
        server: admin_client::ServerArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a configuration file without serving; reports every problem at once.
    Check {
        /// The file to check.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve { config } => serve::run(config.as_deref()).await,
            Command::Migrate { config } => serve::migrate(config.as_deref()).await,
            Command::Config { command: ConfigCommand::Check { file } } => serve::check(&file),
            Command::Secrets { command } => secrets_cli::run(command).await,
            Command::Keys { server, command } => admin_client::keys(&server, command).await,
            Command::Budgets { server, command } => budgets_cli::budgets(&server, command).await,
            Command::Report { server, args } => report_cli::report(&server, args).await,
            Command::Chargeback { server, month, tz } => report_cli::chargeback(&server, month, tz).await,
            Command::Limits { server, command } => budgets_cli::limits(&server, command).await,
            Command::Usage { server, args } => admin_client::usage(&server, args).await,
            Command::Deployments { server, json } => admin_client::deployments(&server, json).await,
            Command::Audit { server, command } => admin_client::audit(&server, command).await,
            Command::Setup(args) => setup::run(args).await,
            Command::Login(args) => login::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
