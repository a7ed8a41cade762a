//! Media with real ffmpeg and processes: the idrl planner end to end, and the runner.

#[path = "../profiles/common.rs"]
#[allow(dead_code)]
mod common;
mod idrl;
mod process;
