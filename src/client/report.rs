//! What the user sees while a command works. On a terminal: progress bars (bytes, speed,
//! time left) on stderr and colours (unless `NO_COLOR`). Piped: plain lines on stderr at
//! each tenth of the way, never a control character. With `--json`: NDJSON events on
//! stdout, one object per line, and nothing else there.
//!
//! Results (a task id, a table) go to stdout; chatter goes to stderr, so
//! `id=$(reelforge submit clip.mp4)` keeps only the id.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use crate::mail::compose::human_size;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// stderr is a terminal: bars.
    Terminal,
    /// Piped: plain lines.
    Plain,
    /// `--json`: NDJSON on stdout.
    Json,
}

pub struct Reporter {
    pub mode: Mode,
    /// Whether the lines on stderr may carry colours.
    pub colour: bool,
    bars: MultiProgress,
}

/// Whether colours are wanted on a stream that is a terminal (<https://no-color.org>).
pub fn colour_wanted() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

impl Reporter {
    pub fn new(json: bool) -> Reporter {
        let mode = match (json, std::io::stderr().is_terminal()) {
            (true, _) => Mode::Json,
            (false, true) => Mode::Terminal,
            (false, false) => Mode::Plain,
        };
        let target = if mode == Mode::Terminal {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Reporter {
            mode,
            colour: mode == Mode::Terminal && colour_wanted(),
            bars: MultiProgress::with_draw_target(target),
        }
    }

    /// One NDJSON event (`--json` only).
    pub fn event(&self, value: Value) {
        if self.mode == Mode::Json {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{value}");
            let _ = out.flush();
        }
    }

    /// A line of what is happening, on stderr (not with `--json`).
    pub fn info(&self, line: &str) {
        match self.mode {
            Mode::Terminal => {
                let _ = self.bars.println(line);
            }
            Mode::Plain => eprintln!("{line}"),
            Mode::Json => {}
        }
    }

    /// A result line on stdout (not with `--json`, whose events carry the results).
    pub fn result(&self, line: &str) {
        if self.mode != Mode::Json {
            let _ = self.bars.suspend(|| writeln!(std::io::stdout(), "{line}"));
        }
    }

    /// A meter of `total` bytes (an upload or a download) starting at `start`.
    pub fn bytes(&self, label: &str, event: &'static str, total: u64, start: u64) -> Meter {
        let bar = self.bar(
            total,
            "{prefix} [{bar:28}] {decimal_bytes}/{decimal_total_bytes} {decimal_bytes_per_sec} eta {eta}",
            label,
        );
        bar.set_position(start);
        bar.reset_eta();
        Meter {
            mode: self.mode,
            label: label.to_string(),
            event,
            total,
            bar,
            // Plain lines start at the next tenth: where it starts is said by the caller.
            last: Mutex::new((start.saturating_mul(10) / total.max(1), start)),
        }
    }

    /// A meter of a task's progress in percent.
    pub fn percent(&self, label: &str) -> Meter {
        let bar = self.bar(100, "{prefix} [{bar:28}] {pos:>3}% {msg}", label);
        Meter {
            mode: self.mode,
            label: label.to_string(),
            event: "progress",
            total: 100,
            bar,
            last: Mutex::new((0, 0)),
        }
    }

    fn bar(&self, total: u64, template: &str, label: &str) -> ProgressBar {
        if self.mode != Mode::Terminal {
            return ProgressBar::hidden();
        }
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = self.bars.add(ProgressBar::new(total).with_style(style));
        bar.set_prefix(label.to_string());
        bar.enable_steady_tick(Duration::from_millis(250));
        bar
    }
}

/// One bar on a terminal, a line per tenth when piped, events with `--json`.
pub struct Meter {
    mode: Mode,
    label: String,
    event: &'static str,
    total: u64,
    bar: ProgressBar,
    /// The last tenth printed (plain) and the last position sent (JSON).
    last: Mutex<(u64, u64)>,
}

impl Meter {
    /// Move to `position` (bytes or percent); `note` is the stage of a task.
    pub fn set(&self, position: u64, note: &str) {
        match self.mode {
            Mode::Terminal => {
                self.bar.set_position(position);
                self.bar.set_message(note.to_string());
            }
            Mode::Plain => {
                let tenth = position.saturating_mul(10) / self.total.max(1);
                let Ok(mut last) = self.last.lock() else {
                    return;
                };
                if last.0 != tenth {
                    last.0 = tenth;
                    eprintln!("{}", self.plain_line(position, note));
                }
            }
            Mode::Json => {
                let Ok(mut last) = self.last.lock() else {
                    return;
                };
                // At most a line per 1% (and the end), not one per chunk.
                let step = (self.total / 100).max(1);
                let moved = position >= last.1.saturating_add(step);
                if position != last.1 && (moved || position == self.total) {
                    last.1 = position;
                    let e = if self.event == "progress" {
                        serde_json::json!({"event": self.event, "task": self.label,
                            "percent": position, "stage": note})
                    } else {
                        serde_json::json!({"event": self.event, "file": self.label,
                            "bytes": position, "total": self.total})
                    };
                    println!("{e}");
                }
            }
        }
    }

    fn plain_line(&self, position: u64, note: &str) -> String {
        if self.event == "progress" {
            format!("{}: {note} {position}%", self.label)
        } else {
            let percent = position.saturating_mul(100) / self.total.max(1);
            format!(
                "{}: {} {percent}% ({} of {})",
                self.label,
                if self.event == "upload" {
                    "uploaded"
                } else {
                    "downloaded"
                },
                human_size(position),
                human_size(self.total)
            )
        }
    }

    /// Take the bar away (the caller says how it ended).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
