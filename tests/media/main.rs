//! Media with real ffmpeg and processes: the idrl planner end to end, and the runner.

mod idrl;
mod process;
