//! Project automation. `cargo xtask config-docs` regenerates `docs/config.md` from the config
//! structs' doc comments; `cargo xtask bench` runs the benchmarks in [`bench`]; the tidy checks in [`tidy`] run under `cargo test` and fail when the
//! generated docs are stale or a project rule is broken.

#![allow(clippy::print_stdout, reason = "a command-line tool reports on stdout")]

mod bench;
mod config_docs;
#[cfg(test)]
mod tidy;

use std::path::PathBuf;
use std::process::ExitCode;

/// The repository root.
fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(PathBuf::from).unwrap_or_default()
}

fn main() -> ExitCode {
    let task = std::env::args().nth(1);
    match task.as_deref() {
        Some("config-docs") => {
            let path = project_root().join("docs/config.md");
            match std::fs::write(&path, config_docs::render()) {
                Ok(()) => {
                    println!("wrote {}", path.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("cannot write {}: {e}", path.display());
                    ExitCode::FAILURE
                }
            }
        }
        Some("bench") => {
            let args: Vec<String> = std::env::args().skip(2).collect();
            match bench::Plan::from_args(&args).and_then(|plan| bench::run(&plan)) {
                Ok(report) => {
                    println!("wrote {}", report.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("bench: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some("bench-idle-client") => {
            // The benchmark's own helper: holds many streams open (see `bench::measure`).
            let args: Vec<String> = std::env::args().skip(2).collect();
            match bench::idle_client(&args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    println!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!(
                "usage: cargo xtask config-docs | cargo xtask bench [--duration SECONDS] [--connections 1,64,512] \
                 [--ttft N] [--idle-streams N] [--soak SECONDS] [--smoke]"
            );
            ExitCode::FAILURE
        }
    }
}
