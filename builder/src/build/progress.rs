//! Progress of long steps: an indicatif spinner on a terminal, nothing otherwise.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Shows steps; quiet when stdout is not a terminal or `--json` is given.
#[derive(Debug)]
pub struct Progress {
    quiet: bool,
    /// Steps done: name and seconds taken.
    pub steps: Vec<(String, f64)>,
}

impl Progress {
    /// A reporter; `json` forces quiet.
    pub fn new(json: bool) -> Self {
        Self { quiet: json || !std::io::stdout().is_terminal(), steps: Vec::new() }
    }

    /// Runs `f` as one step named `name`.
    pub fn step<T, E>(&mut self, name: &str, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let bar = ProgressBar::new_spinner();
        if self.quiet {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        } else {
            bar.set_style(ProgressStyle::with_template("{spinner} [{elapsed}] {msg}").expect("style"));
            bar.enable_steady_tick(Duration::from_millis(120));
        }
        bar.set_message(name.to_string());
        let t = Instant::now();
        let r = f();
        let secs = t.elapsed().as_secs_f64();
        bar.finish_and_clear();
        if !self.quiet && r.is_ok() {
            println!("done  {name} ({secs:.1} s)");
        }
        self.steps.push((name.to_string(), secs));
        r
    }
}
