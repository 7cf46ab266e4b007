//! The command line. Every command that polls goes through the same
//! [`Pipeline::run_once`] as the timer invocation.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config::{read_settings_file, ConfigError, Settings};
use crate::notify;
use crate::pipeline::Pipeline;

/// Alerts your sales team about Microsoft commercial marketplace leads, by
/// email and Microsoft Teams, exactly once per lead and channel.
#[derive(Debug, Parser)]
#[command(name = "lead-notifier", version, about, long_about = None)]
pub struct Cli {
    /// Read settings from a local.settings.json file's `Values`. Variables
    /// already set in the environment win over the file.
    #[arg(long, global = true, value_name = "FILE")]
    pub settings: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run as an Azure Functions custom handler (what host.json starts). The
    /// default when FUNCTIONS_CUSTOMHANDLER_PORT is set.
    Serve {
        /// Port to listen on, on 127.0.0.1.
        #[arg(long, env = "FUNCTIONS_CUSTOMHANDLER_PORT")]
        port: u16,
    },
    /// Poll once: alert new leads, print the run summary. Exits 1 when an
    /// owed alert was not delivered.
    Poll {
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Poll in a loop, for a container or VM without the Functions host.
    Watch {
        /// Time between polls, e.g. `60s`, `5m`.
        #[arg(long, default_value = "60s", value_parser = crate::config::bounded_duration)]
        every: Duration,
    },
    /// Validate settings and reach storage, email (SMTP or Microsoft Graph, getting
    /// a token where one is needed) and Teams without sending.
    Check,
    /// Send a clearly marked sample lead through every configured channel.
    TestAlert,
    /// Leads of a period per offer and action: alerted, skipped, distinct
    /// customers, customers who moved on. Reads only; prints no personal data.
    Report {
        /// How far back to look, e.g. `30d`, `12h`.
        #[arg(long, default_value = "30d", value_parser = crate::config::bounded_duration)]
        since: Duration,
        #[arg(long, value_enum, default_value_t = crate::report::Format::Table)]
        format: crate::report::Format,
        /// Write the report to this file instead of printing it.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Write realistic sample leads into the lead table (for Azurite).
    Seed {
        /// How many leads to write.
        #[arg(long, default_value_t = 10)]
        count: usize,
        /// Write the fake leads even though the account is not the storage
        /// emulator: every run then alerts sales about them.
        #[arg(long)]
        into_real_account: bool,
    },
}

/// Entry point of the `lead-notifier` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Long-running modes log like a service; one-shot commands keep stdout
    // for their own output (`poll --json` must print only JSON).
    let service = matches!(
        cli.command,
        None | Some(Command::Serve { .. } | Command::Watch { .. })
    );
    init_logging(service);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lead-notifier: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lead-notifier: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Settings problems exit with 2, failed runs with 1.
const EXIT_SETTINGS: u8 = 2;

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let command = match cli.command {
        Some(command) => command,
        None => match std::env::var("FUNCTIONS_CUSTOMHANDLER_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
        {
            Some(port) => Command::Serve { port },
            None => {
                use clap::CommandFactory;
                Cli::command().print_help()?;
                return Ok(ExitCode::from(EXIT_SETTINGS));
            }
        },
    };
    let settings = load_settings(cli.settings.as_deref());
    if let Command::Serve { port } = command {
        crate::host::serve(port, settings).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let settings = match settings {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("lead-notifier: {e}");
            return Ok(ExitCode::from(EXIT_SETTINGS));
        }
    };
    match command {
        Command::Serve { .. } => unreachable!("handled above"),
        Command::Poll { json } => poll(&pipeline(&settings)?, json).await,
        Command::Watch { every } => watch(&pipeline(&settings)?, every).await,
        Command::Check => check(&settings).await,
        Command::TestAlert => test_alert(&settings).await,
        Command::Report {
            since,
            format,
            output,
        } => {
            let storage =
                crate::storage::Storage::new(&settings.storage, crate::tls::http_client());
            let now = crate::clock::now();
            let report = crate::report::build(&settings, &storage, since, now).await?;
            let text = report.render(format);
            match output {
                None => print!("{text}"),
                Some(path) => std::fs::write(&path, text).map_err(|e| {
                    anyhow::anyhow!("could not write the report to {}: {e}", path.display())
                })?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Seed {
            count,
            into_real_account,
        } => {
            if !into_real_account && !settings.storage.is_local_emulator() {
                eprintln!(
                    "seed writes fake customers into lead table {} of account {}, which is not \
                     the storage emulator (Azurite): every run would alert sales about them. \
                     Run it against Azurite, or add --into-real-account if this account is only \
                     for testing.",
                    settings.leads_table,
                    settings.storage.account()
                );
                return Ok(ExitCode::from(2));
            }
            let written = crate::seed::seed(&settings, count).await?;
            println!(
                "wrote {written} sample leads into table {} of account {}",
                settings.leads_table,
                settings.storage.account()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The environment, filled in from `--settings FILE` where unset.
fn load_settings(file: Option<&std::path::Path>) -> Result<Settings, ConfigError> {
    let mut vars: HashMap<String, String> = std::env::vars().collect();
    if let Some(path) = file {
        for (name, value) in read_settings_file(path)? {
            vars.entry(name).or_insert(value);
        }
    }
    Settings::from_map(&vars)
}

fn pipeline(settings: &Arc<Settings>) -> anyhow::Result<Pipeline> {
    let notifiers = notify::from_settings(settings, crate::tls::http_client())?;
    Ok(Pipeline::new(settings.clone(), notifiers))
}

async fn poll(pipeline: &Pipeline, json: bool) -> anyhow::Result<ExitCode> {
    let summary = pipeline.run_once().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        for line in summary.log_lines() {
            println!("{line}");
        }
    }
    if summary.all_delivered() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "lead-notifier: {} alert(s) owed were not delivered: {}",
            summary.pending + summary.failed,
            summary.problems.join("; ")
        );
        Ok(ExitCode::FAILURE)
    }
}

async fn watch(pipeline: &Pipeline, every: Duration) -> anyhow::Result<ExitCode> {
    let stop = crate::host::shutdown_signal();
    tokio::pin!(stop);
    loop {
        // A failed run is logged and retried on the next tick: a watcher that
        // exits on the first storage hiccup would need its own supervisor.
        match pipeline.run_once().await {
            Ok(summary) => {
                for line in summary.log_lines() {
                    tracing::info!("{line}");
                }
                if !summary.all_delivered() {
                    tracing::error!(problems = ?summary.problems, "owed alerts not delivered");
                }
            }
            Err(e) => tracing::error!("run failed: {e}"),
        }
        tokio::select! {
            _ = &mut stop => return Ok(ExitCode::SUCCESS),
            _ = tokio::time::sleep(every) => {}
        }
    }
}

async fn check(settings: &Arc<Settings>) -> anyhow::Result<ExitCode> {
    println!("settings are valid:");
    for line in settings.summary_lines() {
        println!("  {line}");
    }
    let notifiers = notify::from_settings(settings, crate::tls::http_client())?;
    let pipeline = Pipeline::new(settings.clone(), notifiers.clone());
    let mut ok = true;
    if let Some(credential) = settings.storage.credential() {
        match crate::identity::check(credential, crate::identity::STORAGE_SCOPE).await {
            Ok(line) => println!("{line}"),
            Err(e) => {
                ok = false;
                println!("identity: FAILED: {}", e.reason);
            }
        }
    }
    match pipeline.storage_check().await {
        Ok(()) => println!(
            "storage: reached, lead table {} found",
            settings.leads_table
        ),
        Err(e) => {
            ok = false;
            println!("storage: FAILED: {e}");
        }
    }
    if ok && settings.summary.silence_after.is_some() {
        let storage = pipeline.storage();
        if let Ok(flow) = crate::summary::Flow::read(settings, &storage, crate::clock::now()).await
        {
            match (flow.problem(&settings.leads_table), flow.last_lead) {
                (Some(problem), _) => println!("warning: {problem}"),
                (None, Some(last)) => println!(
                    "lead flow: last lead written {}",
                    crate::text::format_time(last)
                ),
                (None, None) => {}
            }
        }
    }
    for notifier in notifiers {
        match notifier.check().await {
            Ok(()) => match notifier.credential() {
                Some(how) => println!("{}: reached; {how}: token obtained", notifier.channel()),
                None => println!("{}: reached", notifier.channel()),
            },
            Err(e) => {
                ok = false;
                println!("{}: FAILED: {}", notifier.channel(), e.reason());
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn test_alert(settings: &Arc<Settings>) -> anyhow::Result<ExitCode> {
    let notifiers = notify::from_settings(settings, crate::tls::http_client())?;
    let mut ok = true;
    for (channel, result) in notify::test_alert(&notifiers).await {
        match result {
            Ok(()) => println!("{channel}: sample lead sent"),
            Err(e) => {
                ok = false;
                println!("{channel}: FAILED: {}", e.reason());
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// As a service, info goes to stdout and warnings and errors to stderr: the
/// Functions host logs stdout as Information and stderr as Error. Otherwise
/// all logs go to stderr. `RUST_LOG` overrides the level; customer details
/// are only ever logged at debug.
fn init_logging(service: bool) {
    use tracing_subscriber::fmt::writer::MakeWriterExt;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,azure_core=warn,azure_storage=warn,hyper=warn"));
    let max_on_stderr = if service {
        tracing::Level::WARN
    } else {
        tracing::Level::TRACE
    };
    let writer = std::io::stderr
        .with_max_level(max_on_stderr)
        .or_else(std::io::stdout);
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false)
        // The Functions host and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
