//! Scratch-disk admission: a worker claims a job only when the scratch disk's free space,
//! less what this process's running jobs were promised, covers an estimate of the job's
//! need. Otherwise it waits, saying so in a log line and in `reelforge_scratch_waiting`,
//! until a job of this process ends or a few seconds pass. A job that would run alone in
//! the process is always admitted: then no concurrent job takes its space.
//!
//! Promises are not reduced as a job writes, so the sum is conservative: a process may wait
//! when it did not have to, never the other way round (within the process; worker
//! processes sharing one disk only see each other through its free space).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::Notify;

use crate::domain::Profile;

/// Room kept on top of every estimate (ffmpeg's own temporary files, logs, the unforeseen).
pub const MARGIN: u64 = 64 * 1024 * 1024;

/// Bytes a run of `profile` may write to scratch for an input of `input_bytes`: the input's
/// copy and what the profile makes of it. An input of unknown size (a URL not fetched yet)
/// is taken as `unknown` (the most a fetch may bring). Estimates, on the safe side:
/// re-encoding to H.264 rarely outgrows its input, and archives expand within their limit.
pub fn scratch_need(profile: &Profile, input_bytes: Option<u64>, unknown: u64) -> u64 {
    let input = input_bytes.unwrap_or(unknown);
    // Output bytes per input byte, in tenths.
    let made_tenths: u64 = match profile {
        Profile::Thumbnail(_) => 1,
        Profile::Compress(_) => 10,
        Profile::Convert(_) => 15,
        // The parts, and the final files built from them.
        Profile::Idrl(_) => 20,
        // Every rendition of the ladder.
        Profile::Hls(_) => 25,
        // The extracted entries, then the new archive.
        Profile::Archive(_) => 40,
    };
    input
        .saturating_add(input.saturating_mul(made_tenths) / 10)
        .saturating_add(MARGIN)
}

type FreeSpace = dyn Fn(&Path) -> std::io::Result<u64> + Send + Sync;

/// The scratch space of one process and the jobs it was promised to.
pub struct ScratchGate {
    dir: PathBuf,
    promised: Mutex<Promised>,
    released: Notify,
    free_space: RwLock<Arc<FreeSpace>>,
}

#[derive(Default)]
struct Promised {
    bytes: u64,
    jobs: u32,
}

/// Why a job was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortfall {
    pub need: u64,
    pub free: u64,
    pub promised: u64,
}

/// Space promised to one job; given back when dropped.
pub struct Reservation {
    gate: Arc<ScratchGate>,
    bytes: u64,
}

impl ScratchGate {
    /// The gate of `dir`, reading its free space with `statvfs`.
    pub fn new(dir: PathBuf) -> Arc<Self> {
        Arc::new(ScratchGate {
            dir,
            promised: Mutex::new(Promised::default()),
            released: Notify::new(),
            free_space: RwLock::new(Arc::new(crate::os::free_bytes)),
        })
    }

    /// Read the free space another way (tests: a disk of a chosen size).
    pub fn set_free_space(
        &self,
        f: impl Fn(&Path) -> std::io::Result<u64> + Send + Sync + 'static,
    ) {
        if let Ok(mut slot) = self.free_space.write() {
            *slot = Arc::new(f);
        }
    }

    fn free(&self) -> u64 {
        let read = self.free_space.read().map(|f| Arc::clone(&f));
        match read.map(|f| f(&self.dir)) {
            Ok(Ok(free)) => free,
            // Unknown: admit as if there were room (the run reports a full disk itself).
            Ok(Err(e)) => {
                tracing::warn!(error = %e, dir = %self.dir.display(), "could not read the scratch space");
                u64::MAX
            }
            Err(_) => u64::MAX,
        }
    }

    /// Promise `need` bytes to a job, if the free space less what is promised covers it, or
    /// if no job of this process holds a promise.
    pub fn try_reserve(self: &Arc<Self>, need: u64) -> Result<Reservation, Shortfall> {
        let free = self.free();
        let Ok(mut promised) = self.promised.lock() else {
            return Ok(Reservation {
                gate: Arc::clone(self),
                bytes: 0,
            });
        };
        let room = free.saturating_sub(promised.bytes);
        if promised.jobs > 0 && need > room {
            return Err(Shortfall {
                need,
                free,
                promised: promised.bytes,
            });
        }
        promised.bytes = promised.bytes.saturating_add(need);
        promised.jobs += 1;
        Ok(Reservation {
            gate: Arc::clone(self),
            bytes: need,
        })
    }

    /// Until a reservation is given back, or `at_most` passes (space freed elsewhere).
    pub async fn wait_for_release(&self, at_most: Duration) {
        let _ = tokio::time::timeout(at_most, self.released.notified()).await;
    }

    /// Bytes promised to running jobs now.
    pub fn promised(&self) -> u64 {
        self.promised.lock().map(|p| p.bytes).unwrap_or(0)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Ok(mut promised) = self.gate.promised.lock() {
            promised.bytes = promised.bytes.saturating_sub(self.bytes);
            promised.jobs = promised.jobs.saturating_sub(1);
        }
        self.gate.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::task::parse_profile;

    const MIB: u64 = 1024 * 1024;

    fn gate(free: u64) -> Arc<ScratchGate> {
        let gate = ScratchGate::new(PathBuf::from("/scratch"));
        gate.set_free_space(move |_| Ok(free));
        gate
    }

    #[test]
    fn the_need_grows_with_the_input_and_what_the_profile_makes() {
        let profile = |name: &str, options| parse_profile(Some(name), options).unwrap();
        let thumbnail = profile("thumbnail", None);
        let hls = profile("hls", None);
        assert_eq!(
            scratch_need(&thumbnail, Some(100 * MIB), 0),
            110 * MIB + MARGIN
        );
        assert_eq!(scratch_need(&hls, Some(100 * MIB), 0), 350 * MIB + MARGIN);
        // Unknown size: the most a fetch may bring.
        assert_eq!(scratch_need(&hls, None, 1000 * MIB), 3500 * MIB + MARGIN);
        assert_eq!(scratch_need(&hls, Some(u64::MAX), 0), u64::MAX);
    }

    #[test]
    fn jobs_are_admitted_while_their_promises_fit_and_alone_always() {
        let gate = gate(1000 * MIB);
        // Alone: admitted even when it does not fit.
        let big = gate.try_reserve(5000 * MIB).unwrap();
        assert_eq!(
            gate.try_reserve(MIB).err(),
            Some(Shortfall {
                need: MIB,
                free: 1000 * MIB,
                promised: 5000 * MIB
            })
        );
        drop(big);
        let a = gate.try_reserve(600 * MIB).unwrap();
        assert!(gate.try_reserve(500 * MIB).is_err(), "600 + 500 > 1000");
        let b = gate.try_reserve(400 * MIB).unwrap();
        assert_eq!(gate.promised(), 1000 * MIB);
        drop(a);
        assert_eq!(gate.promised(), 400 * MIB);
        let _c = gate.try_reserve(600 * MIB).unwrap();
        drop(b);
    }

    #[tokio::test]
    async fn a_waiting_worker_wakes_when_a_reservation_is_given_back() {
        let gate = gate(100 * MIB);
        let held = gate.try_reserve(80 * MIB).unwrap();
        let waiter = {
            let gate = Arc::clone(&gate);
            tokio::spawn(async move {
                gate.wait_for_release(Duration::from_secs(30)).await;
                gate.try_reserve(50 * MIB).is_ok()
            })
        };
        tokio::task::yield_now().await;
        drop(held);
        let admitted = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        assert!(matches!(admitted, Ok(Ok(true))), "{admitted:?}");
    }
}
