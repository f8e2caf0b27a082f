//! The `haraka-rs` binary: Haraka's command line over the haraka-rs libraries.

mod app;
mod cli;
mod queue_cli;
mod registry;
mod run;
mod settings;
mod skeleton;

use std::process::ExitCode;

use cli::Command;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match cli::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    match dispatch(command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Version => {
            println!(
                "haraka-rs {} (Haraka 3.0.0 compatible)",
                env!("CARGO_PKG_VERSION")
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Help => {
            print!("{}", cli::USAGE);
            Ok(ExitCode::SUCCESS)
        }
        Command::List { root } => {
            run::init_logging(None);
            for (name, _, what) in registry::BUILTINS {
                println!("{name:<24} *builtin  {what}");
            }
            if let Some(root) = root {
                for (name, path) in local_libraries(&root) {
                    println!("{name:<24} *local    {}", path.display());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Install { root } => {
            skeleton::install(&root)?;
            println!("created a haraka-rs root in {}", root.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { root } => Ok(run::check(&root)),
        Command::Order { root } => run::order(&root),
        Command::Run { root } => run::serve(&root),
        Command::QList { root } => queue_cli::list(&root),
        Command::QStat { root } => queue_cli::stat(&root),
        Command::QEmpty { root } => queue_cli::empty(&root),
        Command::QRetry { root } => queue_cli::retry(&root),
        Command::QShow { root, id } => queue_cli::show(&root, &id),
    }
}

/// Shared libraries in `ROOT/plugins/` that could be listed in `config/plugins`.
fn local_libraries(root: &std::path::Path) -> Vec<(String, std::path::PathBuf)> {
    let mut found: Vec<(String, std::path::PathBuf)> = std::fs::read_dir(root.join("plugins"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter_map(|p| {
            let file = p.file_name()?.to_str()?;
            let stem = file.strip_prefix("lib")?.strip_suffix(".so")?;
            Some((stem.to_owned(), p.clone()))
        })
        .collect();
    found.sort();
    found
}
