//! `builder`: brand manifest in, branded Windows installers and a Linux gateway
//! bundle out. See `builder --help`.

use anyhow::Context;
use builder::certs::issue::KeyType;
use builder::check::BrandRef;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// One brand manifest in, branded Windows installers and a matching Linux gateway bundle out.
#[derive(Parser, Debug)]
#[command(name = "builder", version, about)]
struct Cli {
    /// Print a machine-readable JSON summary on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Make a new brand folder (manifest, string-table patches, artwork, CA and gateway certificate).
    New {
        /// AppId: 1 to 8 ASCII letters or digits.
        #[arg(long)]
        app_id: String,
        /// Folder to create [default: brands/<app id in lower case>].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// System name shown in the apps.
        #[arg(long)]
        system_name: Option<String>,
        /// Gateway URL, https://HOST[:PORT]/thingate/.
        #[arg(long)]
        gateway_url: Option<String>,
        /// Local RPC port of the server app (1024-65535, not 3389 nor 3459).
        #[arg(long)]
        rpc_port: Option<i64>,
        /// Also make a self-signed code-signing identity (for testing --sign).
        #[arg(long)]
        self_signed_codesign: bool,
        /// Key type of the CA and gateway certificate: ECDSA P-256 or RSA 3072.
        #[arg(long, value_enum, default_value_t)]
        key_type: KeyType,
    },
    /// Make a brand folder from an original IPA-DNP-ThinApps-Private source tree.
    ///
    /// Reads Vars/Vars.h, Vars.cs, Vars.props, bin/hamcore/strtable_*.patch.stb and
    /// *.bmp, bin/EntryPoint.dat, bin/ThinGate.cer and .key; lists what it could
    /// not carry over; writes nothing unless the brand passes `builder check`.
    Import {
        /// The original source tree (the folder holding src/Vars and src/bin, or src itself).
        from: PathBuf,
        /// Brand folder to create [default: brands/<app id in lower case>].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Make a new CA and gateway certificate instead of carrying the original's.
        #[arg(long)]
        new_ca: bool,
        /// Key type of the new CA and gateway certificate (with --new-ca).
        #[arg(long, value_enum, default_value_t, requires = "new_ca")]
        key_type: KeyType,
    },
    /// Validate a brand and print every problem at once.
    Check {
        /// Brand folder [default: the only brand under brands/, else the embedded default brand].
        #[arg(long)]
        brand: Option<PathBuf>,
    },
    /// Certificates of a brand.
    Ca {
        #[command(subcommand)]
        cmd: CaCmd,
    },
    /// Pipelines that build a brand in CI.
    Ci {
        #[command(subcommand)]
        cmd: CiCmd,
    },
    /// Build installers and gateway bundles.
    Build(builder::build::BuildArgs),
    /// List every prerequisite as present or missing, with the command that installs it.
    Doctor,
    /// Install the missing prerequisites (apt-get and rustup; run as root).
    Setup,
}

#[derive(Subcommand, Debug)]
enum CiCmd {
    /// Write ci/build-brand.sh and a GitHub or GitLab pipeline around it into the brand repository.
    Init {
        /// GitHub Actions (.github/workflows/brand.yml).
        #[arg(long, required_unless_present = "gitlab", conflicts_with = "gitlab")]
        github: bool,
        /// GitLab CI (.gitlab-ci.yml).
        #[arg(long)]
        gitlab: bool,
        /// Brand folder [default: the only brand under brands/].
        #[arg(long)]
        brand: Option<PathBuf>,
        /// Root of the brand repository.
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// Git URL of the builder's source [default: this builder's repository].
        #[arg(long)]
        source_url: Option<String>,
        /// Commit of the builder's source [default: the commit this builder was built from].
        #[arg(long)]
        source_ref: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum CaCmd {
    /// Make a new CA and gateway key pair; the old ones are kept in a dated backup folder.
    Regen {
        /// Brand folder [default: the only brand under brands/, else the embedded default brand].
        #[arg(long)]
        brand: Option<PathBuf>,
        /// Gateway host names or IP addresses [default: the gateway URL's host].
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Key type of the new CA and gateway certificate: ECDSA P-256 or RSA 3072.
        #[arg(long, value_enum, default_value_t)]
        key_type: KeyType,
    },
    /// Re-issue only the gateway certificate (new DNS name or IP) under the existing CA.
    GatewayCert {
        /// Brand folder [default: the only brand under brands/, else the embedded default brand].
        #[arg(long)]
        brand: Option<PathBuf>,
        /// Gateway host names or IP addresses.
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
        /// Key type of the new gateway key [default: the CA key's type].
        #[arg(long, value_enum)]
        key_type: Option<KeyType>,
    },
}

fn print<T: serde::Serialize + std::fmt::Display>(json: bool, v: &T) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(v)?);
    } else {
        println!("{v}");
    }
    Ok(())
}

/// The brand of a command: `--brand`, else the only one under `brands/`, else
/// the embedded default; says which on standard error when it chose.
fn chosen(arg: Option<&std::path::Path>) -> anyhow::Result<BrandRef> {
    let c = builder::brand_choice::choose(arg, std::path::Path::new(""))?;
    if let Some(note) = &c.note {
        eprintln!("note: {note}");
    }
    Ok(c.brand)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::New { app_id, dir, system_name, gateway_url, rpc_port, self_signed_codesign, key_type } => {
            let o = builder::new_brand::NewOptions {
                app_id,
                dir,
                system_name,
                gateway_url,
                rpc_port,
                self_signed_codesign,
                key_type,
            };
            print(cli.json, &builder::new_brand::run(&o)?)?;
        }
        Cmd::Import { from, dir, new_ca, key_type } => {
            let o = builder::import::ImportOptions { from, dir, new_ca, key_type };
            print(cli.json, &builder::import::run(&o)?)?;
        }
        Cmd::Check { brand } => {
            let b = chosen(brand.as_deref())?;
            match builder::check::check(&b) {
                Ok(brand) if cli.json => println!("{}", serde_json::json!({"ok": true, "brand": brand})),
                Ok(brand) => println!(
                    "{}: brand {} is valid ({} {})",
                    b.dir.display(),
                    brand.app_id,
                    brand.product_name,
                    brand.version
                ),
                Err(builder::Error::Invalid { problems, .. }) if cli.json => {
                    println!("{}", serde_json::json!({"ok": false, "problems": problems}));
                    std::process::exit(1);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Cmd::Ca { cmd: CaCmd::Regen { brand, hosts, key_type } } => {
            print(cli.json, &builder::ca::regen(&chosen(brand.as_deref())?, &hosts, key_type)?)?;
        }
        Cmd::Ca { cmd: CaCmd::GatewayCert { brand, hosts, key_type } } => {
            print(cli.json, &builder::ca::gateway_cert(&chosen(brand.as_deref())?, &hosts, key_type)?)?;
        }
        Cmd::Ci { cmd: CiCmd::Init { github: _, gitlab, brand, repo, source_url, source_ref } } => {
            let workspace = builder::paths::workspace_root();
            let source_ref = match source_ref.or_else(|| builder::build::cargo::git_commit(&workspace)) {
                Some(r) => r,
                None => anyhow::bail!("cannot tell which commit this builder comes from; give --source-ref COMMIT"),
            };
            let o = builder::ci::CiOptions {
                ci: if gitlab { builder::ci::Ci::Gitlab } else { builder::ci::Ci::Github },
                brand: chosen(brand.as_deref())?,
                repo,
                source_url: source_url.unwrap_or_else(|| env!("CARGO_PKG_REPOSITORY").to_string()),
                source_ref,
            };
            print(cli.json, &builder::ci::init(&o)?)?;
        }
        Cmd::Build(mut args) => {
            args.brand = Some(chosen(args.brand.as_deref())?.dir);
            let summary = builder::build::run(&args, cli.json).context("build failed")?;
            print(cli.json, &summary)?;
        }
        Cmd::Doctor => {
            let rows = builder::doctor::report();
            if cli.json {
                let v: Vec<_> = rows
                    .iter()
                    .map(|(p, ok)| serde_json::json!({"prereq": p, "present": ok, "install": p.install_command()}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", builder::doctor::render(&rows));
            }
        }
        Cmd::Setup => {
            for line in builder::doctor::setup()? {
                println!("ran: {line}");
            }
            print!("{}", builder::doctor::render(&builder::doctor::report()));
        }
    }
    Ok(())
}
