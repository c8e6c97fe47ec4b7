//! The `sigmaai` command line (`src/main.rs` only calls [`main`]): here, inside the library,
//! so it reaches the `pub(crate)` code it starts.

use std::sync::Arc;

use crate::{
    clock::SystemClock, config::Config, crypto::Keyring, db, redis::Redis, shutdown::Shutdown,
};
use anyhow::Context;
use clap::{Args, Parser, Subcommand};

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
    /// Create the application role and apply database migrations (main database and key store).
    Migrate,
    /// Create the demo tenant (development only) and print how to log in.
    Demo,
    /// Key management: rotation, retirement, status.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// After restoring the database or the key store from a backup: destroy again every key
    /// the deletion ledger lists. Run it before the restored system serves traffic.
    RestoreReplay,
    /// Measure the offline knowledge answerer on a labelled set (e.g. eval/kb/set.json):
    /// answered-correct, wrong-answer and escalation rates per knowledge-base size.
    KbEval {
        /// The labelled set (JSON).
        file: std::path::PathBuf,
        /// Only the cases of this split ("dev" or "held-out").
        #[arg(long)]
        split: Option<String>,
        /// Also list every case that was not right.
        #[arg(long)]
        failures: bool,
        /// Print rates for a grid of decision constants instead (tune on "dev" only).
        #[arg(long)]
        sweep: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Re-wrap keys under a new key, without re-encrypting any data.
    Rotate(RotateArgs),
    /// Delete a tenant's older key versions that no longer wrap any key.
    Retire {
        #[arg(long, value_name = "SLUG")]
        tenant: String,
    },
    /// Show which master keys wrap how many tenant keys.
    Status,
    /// Print a new random master key for SIGMAAI_MASTER_KEY (needs no configuration).
    GenerateMasterKey,
}

#[derive(Args)]
#[group(required = true, multiple = false)]
struct RotateArgs {
    /// Re-wrap every tenant key under the current master key (SIGMAAI_MASTER_KEY); the old
    /// one must be listed in SIGMAAI_MASTER_KEY_PREVIOUS until this reports none left.
    #[arg(long)]
    master: bool,
    /// Add a tenant-key version and re-wrap that tenant's data keys under it.
    #[arg(long, value_name = "SLUG")]
    tenant: Option<String>,
}

/// Parses the command line, runs the command, and says how it ended.
pub fn main() -> std::process::ExitCode {
    // Before the runtime's threads exist.
    crate::disable_transparent_huge_pages();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(async_main()),
        Err(e) => {
            eprintln!("could not start the async runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn async_main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Command::Keys {
        command: KeysCommand::GenerateMasterKey,
    } = cli.command
    {
        println!("{}", crate::crypto::master::generate_master_key());
        return std::process::ExitCode::SUCCESS;
    }
    // Needs no configuration, database or network.
    if let Command::KbEval {
        file,
        split,
        failures,
        sweep,
    } = &cli.command
    {
        let set = match std::fs::read_to_string(file)
            .map_err(|e| e.to_string())
            .and_then(|s| crate::ai::kbeval::parse(&s))
        {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                return std::process::ExitCode::from(2);
            }
        };
        if *sweep {
            print!("{}", crate::ai::kbeval::sweep(&set, split.as_deref()));
            return std::process::ExitCode::SUCCESS;
        }
        let report = crate::ai::kbeval::run(&set, split.as_deref());
        print!("{}", crate::ai::kbeval::render(&report, *failures));
        return std::process::ExitCode::SUCCESS;
    }
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let _guard = match crate::telemetry::init(config.log_dir.as_deref()) {
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
            crate::db::migrate(&config).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Demo => {
            let state = crate::connect_system(config).await?;
            crate::demo::seed(&state).await?;
            println!(
                "Demo workspace: {}/t/{}  login: {}  password: {}",
                state.config.public_url.as_str().trim_end_matches('/'),
                crate::demo::DEMO_SLUG,
                crate::demo::DEMO_EMAIL,
                crate::demo::DEMO_PASSWORD
            );
            Ok(())
        }
        Command::Keys { command } => keys_command(command, &config).await,
        Command::RestoreReplay => {
            let keys = operator_keyring(&config).await?;
            let report = keys.replay_ledger().await?;
            println!(
                "{} ledger entries replayed from {}; {} key rows destroyed again",
                report.entries,
                keys.ledger().path().display(),
                report.keys_destroyed_again
            );
            for problem in &report.chain_problems {
                eprintln!("ledger: {problem}");
            }
            anyhow::ensure!(
                report.chain_problems.is_empty(),
                "the deletion ledger's hash chain is broken (every readable entry was still applied): investigate before serving"
            );
            Ok(())
        }
        Command::KbEval { .. } => Ok(()), // handled before configuration
        Command::Serve => {
            let state = crate::connect_system(config).await?;
            let shutdown = Shutdown::from_os_signals();
            crate::metrics::spawn_if_configured(&state, shutdown.clone()).await?;
            crate::serve(state, shutdown).await
        }
        Command::Worker { concurrency, once } => {
            let state = crate::connect_system(config).await?;
            if once {
                let n = crate::jobs::run_due(&state).await?;
                tracing::info!(jobs = n, "ran due jobs");
                return Ok(());
            }
            let shutdown = Shutdown::from_os_signals();
            crate::metrics::spawn_if_configured(&state, shutdown.clone()).await?;
            crate::jobs::run_worker(state, concurrency, shutdown).await;
            Ok(())
        }
        Command::All { concurrency } => {
            // The port first: a busy one ends us at once, before any worker starts.
            let listener = crate::bind(&config).await?;
            let state = crate::connect_system(config).await?;
            let shutdown = Shutdown::from_os_signals();
            crate::metrics::spawn_if_configured(&state, shutdown.clone()).await?;
            let worker = tokio::spawn(crate::jobs::run_worker(
                state.clone(),
                concurrency,
                shutdown.clone(),
            ));
            let served = crate::serve_on(listener, crate::wiring::App::new(state), shutdown).await;
            // Only a clean shutdown waits for the worker to finish its jobs; a server error
            // ends the process with that error (the worker's jobs are durable and retried).
            if served.is_ok() {
                let _ = worker.await;
            }
            served
        }
    }
}

async fn operator_keyring(config: &Config) -> anyhow::Result<Keyring> {
    let redis = Redis::new(
        config
            .redis_url
            .as_ref()
            .map(secrecy::ExposeSecret::expose_secret),
        &config.redis_prefix,
    )?;
    Keyring::connect(config, redis, Arc::new(SystemClock)).await
}

async fn tenant_by_slug(config: &Config, slug: &str) -> anyhow::Result<uuid::Uuid> {
    let main_db = db::connect_owner(config).await?;
    let id = db::keystore::tenant_id_by_slug(&main_db, slug).await?;
    main_db.close().await;
    id.with_context(|| format!("there is no tenant with slug {slug:?}"))
}

async fn keys_command(command: KeysCommand, config: &Config) -> anyhow::Result<()> {
    let keys = operator_keyring(config).await?;
    match command {
        KeysCommand::Rotate(RotateArgs { master: true, .. }) => {
            let r = keys.rotate_master().await?;
            println!(
                "{} tenant keys re-wrapped under master key {}",
                r.rewrapped, r.current_master_key_id
            );
            print_master_usage(&r.per_master_key, &r.current_master_key_id);
        }
        KeysCommand::Rotate(RotateArgs {
            tenant: Some(slug), ..
        }) => {
            let tenant = tenant_by_slug(config, &slug).await?;
            let r = keys.rotate_tenant(tenant).await?;
            println!(
                "tenant {slug}: key version {} added; {} data keys re-wrapped (run `sigmaai keys retire --tenant {slug}` to delete older versions)",
                r.new_version, r.rewrapped_data_keys
            );
        }
        KeysCommand::Rotate(_) => anyhow::bail!("say --master or --tenant SLUG"),
        KeysCommand::Retire { tenant: slug } => {
            let tenant = tenant_by_slug(config, &slug).await?;
            let n = keys.retire_tenant_versions(tenant).await?;
            println!("tenant {slug}: {n} older key versions deleted");
        }
        KeysCommand::Status => {
            let usage = keys.master_key_usage().await?;
            print_master_usage(&usage, keys.master().current_key_id());
            println!(
                "configured master keys: {}",
                keys.master().key_ids().join(", ")
            );
        }
        KeysCommand::GenerateMasterKey => {
            println!("{}", crate::crypto::master::generate_master_key())
        }
    }
    Ok(())
}

fn print_master_usage(usage: &[(String, i64)], current: &str) {
    for (id, n) in usage {
        let note = if id == current {
            "current"
        } else {
            "old: keep it in SIGMAAI_MASTER_KEY_PREVIOUS until rotated"
        };
        println!("  {id}: {n} tenant keys ({note})");
    }
}
