//! The apps' `--help` in the user's language. Every text of the help comes from
//! the string tables, like every other text of the apps:
//! - `HELP_<APP>`: what the app is (`<APP>` is `THINCLIENT` or `THINSVR`);
//! - `HELP_<APP>_CMD_<SUBCOMMAND>`: a subcommand;
//! - `HELP_<APP>_<ARGUMENT>`: an argument (its clap id in capitals);
//! - `HELP_USAGE`, `HELP_OPTIONS`, `HELP_ARGUMENTS`, `HELP_COMMANDS`,
//!   `HELP_DEFAULT`, `HELP_FLAG_HELP`, `HELP_FLAG_VERSION`, `HELP_CMD_HELP`:
//!   clap's own words.
//!
//! The doc comments of the apps' `Cli` types stay as the English fallback.

use crate::strings::{self, Lang};
use clap::{Arg, Command};

/// Replaces every text of `cmd`'s help (and its subcommands') with the table
/// text in `lang`. Returns the command and the keys no table has (their
/// English doc comment stays).
pub fn localize(mut cmd: Command, lang: Lang) -> (Command, Vec<String>) {
    // Building adds clap's own `--help`, `--version` and `help` subcommand, so
    // that they are translated too.
    cmd.build();
    let app = key_part(cmd.get_name());
    let mut missing = Vec::new();
    let cmd = walk(cmd, &app, None, lang, &mut missing);
    (cmd, missing)
}

/// The keys `cmd`'s help needs that no table has, as `LANG: KEY` (the apps'
/// tests require none).
pub fn missing_keys(cmd: &Command) -> Vec<String> {
    [Lang::En, Lang::Ja]
        .into_iter()
        .flat_map(|l| localize(cmd.clone(), l).1.into_iter().map(move |k| format!("{l:?}: {k}")))
        .collect()
}

fn key_part(s: &str) -> String {
    s.to_uppercase().replace('-', "_")
}

fn lookup(lang: Lang, key: &str, missing: &mut Vec<String>) -> Option<String> {
    let t = strings::lookup_in(lang, key).map(|t| t.into_owned());
    if t.is_none() && !missing.iter().any(|m| m == key) {
        missing.push(key.to_string());
    }
    t
}

fn walk(cmd: Command, app: &str, sub: Option<&str>, lang: Lang, missing: &mut Vec<String>) -> Command {
    let about_key = match sub {
        None => format!("HELP_{app}"),
        Some("help") => "HELP_CMD_HELP".into(),
        Some(s) => format!("HELP_{app}_CMD_{}", key_part(s)),
    };
    let mut cmd = cmd;
    if cmd.get_about().is_some() || cmd.get_long_about().is_some() {
        if let Some(t) = lookup(lang, &about_key, missing) {
            cmd = cmd.about(t).long_about(None);
        }
    }
    let word = |k: &str| strings::text_in(lang, k).into_owned();
    let (options, arguments) = (word("HELP_OPTIONS"), word("HELP_ARGUMENTS"));
    let template = format!(
        "{{before-help}}{{about-with-newline}}\n{} {{usage}}\n\n{{all-args}}{{after-help}}",
        word("HELP_USAGE")
    );
    cmd.mut_args(|a| {
        let key = match a.get_id().as_str() {
            "help" => "HELP_FLAG_HELP".to_string(),
            "version" => "HELP_FLAG_VERSION".to_string(),
            id => format!("HELP_{app}_{}", key_part(id)),
        };
        let heading = if a.is_positional() { &arguments } else { &options };
        let has_help = a.get_help().is_some() || a.get_long_help().is_some();
        let mut a = a.help_heading(heading.clone());
        if let Some(t) = has_help.then(|| lookup(lang, &key, missing)).flatten() {
            let default = default_note(&a, lang);
            if !default.is_empty() {
                a = a.hide_default_value(true);
            }
            a = a.help(format!("{t}{default}")).long_help(None);
        }
        a
    })
    .subcommand_help_heading(word("HELP_COMMANDS"))
    .help_template(template)
    .mut_subcommands(|sc| {
        let name = sc.get_name().to_string();
        walk(sc, app, Some(&name), lang, missing)
    })
}

/// ` [default: X]` in `lang`, for an argument that shows a default.
fn default_note(arg: &Arg, lang: Lang) -> String {
    let values = arg.get_default_values();
    // Flags carry a default ("false") that clap never shows.
    if values.is_empty() || arg.is_hide_default_value_set() || !arg.get_action().takes_values() {
        return String::new();
    }
    let joined: Vec<String> = values.iter().map(|v| v.to_string_lossy().into_owned()).collect();
    format!(" {}", strings::fmt_in(lang, "HELP_DEFAULT", &[&joined.join(", ")]))
}

/// A command-line mistake in `lang`, as `<app>: error: <what>` and a line
/// pointing to `--help`; `None` when `e` is not a mistake (`--help`,
/// `--version`), which clap prints itself. Keys: `CLI_ERR_*`.
pub fn error_text(e: &clap::Error, app: &str, lang: Lang) -> Option<String> {
    use clap::error::{ContextKind, ErrorKind};
    let ctx = |k: ContextKind| e.get(k).map(|v| v.to_string()).unwrap_or_default();
    let t = |key: &str, args: &[&dyn std::fmt::Display]| strings::fmt_in(lang, key, args);
    let what = match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            return None
        }
        ErrorKind::UnknownArgument => t("CLI_ERR_UNKNOWN_ARGUMENT", &[&ctx(ContextKind::InvalidArg)]),
        ErrorKind::InvalidSubcommand => t("CLI_ERR_UNKNOWN_COMMAND", &[&ctx(ContextKind::InvalidSubcommand)]),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            t("CLI_ERR_INVALID_VALUE", &[&ctx(ContextKind::InvalidValue), &ctx(ContextKind::InvalidArg)])
        }
        ErrorKind::MissingRequiredArgument => t("CLI_ERR_MISSING", &[&ctx(ContextKind::InvalidArg)]),
        ErrorKind::ArgumentConflict => {
            t("CLI_ERR_CONFLICT", &[&ctx(ContextKind::InvalidArg), &ctx(ContextKind::PriorArg)])
        }
        _ => t("CLI_ERR_OTHER", &[]),
    };
    let line = t("CLI_ERROR", &[&app, &what]);
    Some(format!("{line}\n{}", t("CLI_ERR_HINT", &[&app])))
}
