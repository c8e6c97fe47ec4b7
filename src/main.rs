//! The `sigmaai` command.

use clap::{Parser, Subcommand};
use sigmaai::{config::Config, shutdown::Shutdown};

#[derive(Parser)]
#[command(
    name = "sigmaai",
    version,
    about = "SigmaAI: WhatsApp AI automation for businesses and clinics"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the portal and webhooks.
    Serve,
    /// Run background jobs.
    Worker {
        /// Concurrent jobs.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Run what is due now, then exit.
        #[arg(long)]
        once: bool,
    },
    /// Serve and run jobs in one process (local use).
    All {
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
    /// Create the application role and apply database migrations.
    Migrate,
    /// Create the demo tenant (development only) and print how to log in.
    Demo,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let _guard = match sigmaai::telemetry::init(config.log_dir.as_deref()) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("could not start logging: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(cli.command, config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "fatal");
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Migrate => {
            sigmaai::db::migrate(&config).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Demo => {
            let state = sigmaai::connect_system(config).await?;
            sigmaai::demo::seed(&state).await?;
            println!(
                "Demo workspace: {}/t/{}  login: {}  password: {}",
                state.config.public_url.as_str().trim_end_matches('/'),
                sigmaai::demo::DEMO_SLUG,
                sigmaai::demo::DEMO_EMAIL,
                sigmaai::demo::DEMO_PASSWORD
            );
            Ok(())
        }
        Command::Serve => {
            let state = sigmaai::connect_system(config).await?;
            sigmaai::serve(state, Shutdown::from_os_signals()).await
        }
        Command::Worker { concurrency, once } => {
            let state = sigmaai::connect_system(config).await?;
            if once {
                let n = sigmaai::jobs::run_due(&state).await?;
                tracing::info!(jobs = n, "ran due jobs");
                return Ok(());
            }
            sigmaai::jobs::run_worker(state, concurrency, Shutdown::from_os_signals()).await;
            Ok(())
        }
        Command::All { concurrency } => {
            let state = sigmaai::connect_system(config).await?;
            let shutdown = Shutdown::from_os_signals();
            let worker = tokio::spawn(sigmaai::jobs::run_worker(
                state.clone(),
                concurrency,
                shutdown.clone(),
            ));
            let served = sigmaai::serve(state, shutdown).await;
            let _ = worker.await;
            served
        }
    }
}
