//! `homeostat completions SHELL` and `homeostat man [--out DIR]`: shell completions and
//! man pages generated from the clap definitions themselves (`clap_complete`,
//! `clap_mangen`), so they cannot disagree with the flags the binary takes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, CommandFactory};

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write `homeostat.1` and one page per subcommand (`homeostat-run.1`, ...) into DIR
    /// instead of printing `homeostat.1` to standard output.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// Print the completion script for a shell (e.g. `homeostat completions bash >
/// /etc/bash_completion.d/homeostat`).
pub fn completions(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut cmd = super::Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut cmd, "homeostat", &mut out);
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Print the top-level page, or write every page into a directory.
pub fn man(args: ManArgs) -> anyhow::Result<ExitCode> {
    let cmd = super::Cli::command();
    match args.out {
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(cmd).render(&mut out)?;
            out.flush()?;
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
            let written = write_pages(&cmd, &dir, "homeostat")?;
            eprintln_in_order!("wrote {written} man pages into {}", dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `NAME.1` for `cmd`, then its subcommands' pages (`NAME-SUB.1`); returns how many.
fn write_pages(cmd: &clap::Command, dir: &Path, name: &str) -> anyhow::Result<usize> {
    // clap names a command with a `&'static str` (or a feature this crate does not turn
    // on): leaking one short name per page is what a one-shot command can afford.
    let cmd = cmd.clone().name(&*String::leak(name.to_string()));
    let path = dir.join(format!("{name}.1"));
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    std::fs::write(&path, page).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut written = 1;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        written += write_pages(sub, dir, &format!("{name}-{}", sub.get_name()))?;
    }
    Ok(written)
}
