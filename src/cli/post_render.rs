//! `kyvtel post-render`: Helm's post-renderer for the local provider's Telepresence install. Reads
//! the rendered manifests on stdin, writes them on stdout with every webhook pointed at loopback and
//! the injector's Secret holding the run's certificate (see [`crate::provider::local::postrender`]).

use std::io::{Read as _, Write as _};
use std::path::PathBuf;

use crate::provider::local::postrender::{self, Rewrite};
use crate::{Error, Exit, Result};

/// The most Helm may hand over (a chart renders a few hundred KiB).
const MAX_INPUT: u64 = 16 * 1024 * 1024;

/// Arguments of `kyvtel post-render`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The injector's loopback port.
    #[arg(long)]
    pub port: u16,
    /// The run's CA certificate (PEM).
    #[arg(long)]
    pub ca: PathBuf,
    /// The injector's certificate (PEM).
    #[arg(long)]
    pub cert: PathBuf,
    /// Its key (PEM).
    #[arg(long)]
    pub key: PathBuf,
    /// The Secret holding the injector's certificate.
    #[arg(long, default_value = "mutator-webhook-tls")]
    pub secret: String,
}

/// Runs `kyvtel post-render`.
pub fn run(args: &Args) -> Result<Exit> {
    let read = |p: &PathBuf| std::fs::read_to_string(p).map_err(|e| Error::input(p, None, e.to_string()));
    let r = Rewrite {
        port: args.port,
        ca: read(&args.ca)?,
        cert: read(&args.cert)?,
        key: read(&args.key)?,
        secret: args.secret.clone(),
    };
    let mut input = String::new();
    std::io::stdin()
        .take(MAX_INPUT + 1)
        .read_to_string(&mut input)
        .map_err(|e| Error::infra("read the rendered manifests", e))?;
    if input.len() as u64 > MAX_INPUT {
        return Err(Error::Usage(format!("the rendered manifests exceed {MAX_INPUT} bytes")));
    }
    let (out, changed) = postrender::rewrite(&input, &r).map_err(Error::Usage)?;
    for c in changed {
        crate::console_eprintln!("kyvtel post-render: {c}");
    }
    std::io::stdout().write_all(out.as_bytes()).map_err(|e| Error::infra("write the manifests", e))?;
    Ok(Exit::Success)
}
