use clap::Parser;
use tollgate::cli::{Cli, Command};

/// mimalloc: a request allocates on its worker and hands its event and spend row to other threads,
/// which glibc's allocator pays for dearly; mimalloc cut 13% of a request's instructions. Built with
/// lazily committed arenas (`.cargo/config.toml`) to keep idle memory low. See docs/BENCHMARKS.md,
/// "Allocator, spend writer, one JSON parse less".
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    // One TLS provider for every outbound connection.
    let _ = rustls::crypto::ring::default_provider().install_default();

    if let Some(Command::MockProvider(args)) = cli.command {
        tollgate::logging::init(false, false, false);
        // The mock serves benchmarks with thousands of open streams.
        tollgate::fd_limit::raise_and_log();
        if let Err(e) = tollgate_mock::run(args) {
            eprintln!("error: mock provider: {e}");
            std::process::exit(1);
        }
        return;
    }
    if let Some(Command::Migrate) = cli.command {
        tollgate::logging::init(cli.debug, cli.detailed_debug, false);
        std::process::exit(tollgate::server::migrate_command(&cli));
    }
    if let Some(Command::ImportLitellm(args)) = &cli.command {
        tollgate::logging::init(cli.debug, cli.detailed_debug, false);
        let opts = tollgate::import_litellm::Options {
            from: args.from.clone(),
            dry_run: args.dry_run,
            spend_logs: args.spend_logs,
        };
        std::process::exit(tollgate::import_litellm::command(&cli, &opts));
    }
    if let Some(Command::ConfigKeys(args)) = &cli.command {
        std::process::exit(tollgate::config_keys::command(args));
    }
    if let Some(Command::Logs(args)) = &cli.command {
        std::process::exit(tollgate::cli::run_logs_command(args));
    }
    if cli.skip_server_startup {
        tollgate::logging::init(cli.debug, cli.detailed_debug, false);
        std::process::exit(tollgate::server::migrate_command(&cli));
    }
    if cli.test || cli.health {
        std::process::exit(tollgate::cli::run_client_command(&cli));
    }

    let config = match tollgate::server::load_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    if cli.validate_config {
        for warning in config.warnings.iter().chain(&cli.litellm_only.warnings()) {
            println!("warning: {warning}");
        }
        let builtin = tollgate::http::is_builtin_path;
        if let Err(e) = tollgate::passthrough::endpoints::Endpoints::from_config(&config, &builtin)
        {
            eprintln!("error: pass-through endpoints: {e}");
            std::process::exit(1);
        }
        println!("config OK: {} model deployment(s)", config.model_list.len());
        std::process::exit(0);
    }
    tollgate::logging::init(
        cli.debug || tollgate::logging::set_verbose(&config),
        cli.detailed_debug,
        config.json_logs(),
    );
    if let Err(e) = tollgate::server::serve(cli, config) {
        tracing::error!("{e}");
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
