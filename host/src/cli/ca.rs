//! `homeostat ca`: make a cluster's certificates (see [`crate::tls::ca`]).
//!
//! - `ca init [--name NAME]`: a new CA in `--dir` (default `<state dir>/ca`);
//! - `ca issue HOSTNAME [--ip IP]... [--dns NAME]... [--days N] [--out DIR]`: a host
//!   certificate, written with the CA certificate into `--out` (default
//!   `<ca dir>/hosts/HOSTNAME/`) as that host's `tls/` directory: `ca.crt`, `host.crt`,
//!   `host.key` (0600);
//! - `ca show`: every certificate of the CA directory, with its names and expiry.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use time::OffsetDateTime;

use super::world::state_dir;
use crate::tls::ca::{self, Ca};
use crate::tls::{CertInfo, date};

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Make the cluster's certificate authority (once; it is never replaced).
    Init(InitArgs),
    /// Make a host's certificate and key, signed by the CA.
    Issue(IssueArgs),
    /// List the CA's certificates: subjects, names and expiry.
    Show(ShowArgs),
}

/// Where the CA is.
#[derive(Debug, Args)]
pub struct Dir {
    /// The CA directory (default: ca/ in the state directory).
    #[arg(long, value_name = "DIR", env = "HOMEOSTAT_CA_DIR")]
    dir: Option<PathBuf>,
}

impl Dir {
    fn path(&self) -> anyhow::Result<PathBuf> {
        match &self.dir {
            Some(d) => Ok(d.clone()),
            None => {
                let prefix = std::env::var_os("HOMEOSTAT_PREFIX").map(PathBuf::from);
                Ok(state_dir(prefix.as_deref())?.join(ca::CA_DIR))
            }
        }
    }
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    dir: Dir,
    /// The CA's name (its certificate's common name).
    #[arg(long, value_name = "NAME", default_value = "homeostat cluster CA")]
    name: String,
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// The host's name (`--hostname` of its `homeostat run`; the certificate's common name).
    #[arg(value_name = "HOSTNAME")]
    host: String,
    /// An address the host serves or connects from (repeat; loopback is always in).
    #[arg(long = "ip", value_name = "IP")]
    ips: Vec<IpAddr>,
    /// A DNS name the host is reached by (repeat; the hostname is always in).
    #[arg(long = "dns", value_name = "NAME")]
    dns: Vec<String>,
    /// Days the certificate is valid.
    #[arg(long, value_name = "N", default_value_t = 365,
          value_parser = super::load::whole(1, 3650))]
    days: u64,
    /// Where to write ca.crt, host.crt and host.key (default: hosts/HOSTNAME/ in the CA
    /// directory); give the host this directory as its state directory's `tls/`.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    #[command(flatten)]
    dir: Dir,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    dir: Dir,
}

pub fn ca(cmd: CaCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        CaCommand::Init(args) => {
            let dir = args.dir.path()?;
            let ca = Ca::init(&dir, &args.name)?;
            println!(
                "made the CA `{}` in {} (valid until {}); its key {} never leaves this \
                 machine. Next: `homeostat ca issue HOSTNAME` for each host.",
                ca.info().name,
                dir.display(),
                date(ca.info().not_after),
                dir.join(ca::CA_KEY).display()
            );
        }
        CaCommand::Issue(args) => {
            let dir = args.dir.path()?;
            let ca = Ca::open(&dir)?;
            let valid = Duration::from_secs(args.days * 86_400);
            let issued = ca.issue(&args.host, &args.ips, &args.dns, valid)?;
            let out = args
                .out
                .unwrap_or_else(|| dir.join(ca::HOSTS).join(&args.host));
            let files = issued.write(ca.cert_pem(), &out)?;
            println!("{}", describe(&files.cert, &issued.info, now()));
            println!(
                "copy {}/ to host `{}` as tls/ in its state directory (keep host.key 0600), \
                 or pass --ca {} --cert {} --key {}",
                out.display(),
                args.host,
                files.ca.display(),
                files.cert.display(),
                files.key.display()
            );
        }
        CaCommand::Show(args) => {
            let dir = args.dir.path()?;
            for (path, info) in ca::list(&dir)? {
                println!("{}", describe(&path, &info, now()));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// A certificate in a few lines: its file, subject, issuer, names and validity.
fn describe(path: &std::path::Path, info: &CertInfo, now: OffsetDateTime) -> String {
    let kind = if info.is_ca { "CA" } else { "host" };
    let mut names: Vec<String> = info.dns.clone();
    names.extend(info.ips.iter().map(IpAddr::to_string));
    let state = match info.invalid_at(now) {
        Some(_) if now > info.not_after => "EXPIRED".to_owned(),
        Some(_) => "not yet valid".to_owned(),
        None => {
            let days = (info.not_after - now).whole_days();
            format!("valid, {days} days left")
        }
    };
    let mut out = format!(
        "{}\n  {kind} `{}`, issued by `{}`\n  until {} ({state})",
        path.display(),
        info.name,
        info.issuer,
        date(info.not_after)
    );
    if !names.is_empty() {
        out.push_str(&format!("\n  for {}", names.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_is_described_with_its_names_and_days_left() {
        let tmp = tempfile::tempdir().unwrap();
        let ca = Ca::init(tmp.path(), "c").unwrap();
        let issued = ca
            .issue(
                "web1",
                &["10.0.0.5".parse().unwrap()],
                &[],
                Duration::from_secs(10 * 86_400),
            )
            .unwrap();
        let text = describe(&tmp.path().join("host.crt"), &issued.info, now());
        assert!(text.contains("host `web1`, issued by `c`"), "{text}");
        assert!(
            text.contains("for web1, 127.0.0.1, ::1, 10.0.0.5"),
            "{text}"
        );
        assert!(
            text.contains("9 days left") || text.contains("10 days left"),
            "{text}"
        );
        let later = now() + time::Duration::days(11);
        assert!(describe(tmp.path(), &issued.info, later).contains("EXPIRED"));
    }
}
