//! The open-file limit: raised at start so that many concurrent connections fit.
//!
//! Every client connection and every pooled upstream connection holds a file descriptor, and a
//! relayed stream holds two (client and upstream). Distributions start
//! services with a soft limit of 1024 (and a higher hard limit), which caps a gateway at a few
//! hundred streams; start-up raises the soft limit to the hard limit and says what it got.

use std::io;

use rlimit::Resource;

/// Descriptors ~10,000 concurrent connections (client and upstream sockets together) need, plus
/// headroom for the database, Redis, log files and listeners.
pub const FD_LIMIT_WANTED: u64 = 10_240;

/// The open-file limit of this process before and after [`raise_fd_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    /// The soft limit before the raise.
    pub before: u64,
    /// The soft limit now.
    pub soft: u64,
    /// The hard limit (the ceiling an unprivileged process can raise its soft limit to).
    pub hard: u64,
}

impl FdLimit {
    /// Whether the limit is below what ~10,000 concurrent connections need.
    pub fn is_short(&self) -> bool {
        self.soft < FD_LIMIT_WANTED
    }
}

/// Raise the soft `RLIMIT_NOFILE` of this process to its hard limit and return both.
///
/// On platforms without `RLIMIT_NOFILE` the limits are reported as unlimited.
pub fn raise_fd_limit() -> io::Result<FdLimit> {
    if !Resource::NOFILE.is_supported() {
        return Ok(FdLimit {
            before: u64::MAX,
            soft: u64::MAX,
            hard: u64::MAX,
        });
    }
    let (before, hard) = Resource::NOFILE.get()?;
    // `increase_nofile_limit` also honours macOS's per-process ceiling below the hard limit.
    let soft = rlimit::increase_nofile_limit(hard)?;
    Ok(FdLimit { before, soft, hard })
}

/// [`raise_fd_limit`], logged: info with the limit now, a warning when it is short of what
/// ~10,000 connections need, or a warning when the limit could not be read or raised.
pub fn raise_and_log() -> Option<FdLimit> {
    match raise_fd_limit() {
        Ok(limit) => {
            tracing::info!(
                soft = limit.soft,
                hard = limit.hard,
                before = limit.before,
                "open-file limit (RLIMIT_NOFILE) is {}",
                limit.soft
            );
            if limit.is_short() {
                tracing::warn!(
                    "open-file limit {} (hard limit {}) is below the {FD_LIMIT_WANTED} that ~10,000 \
                     concurrent connections need; raise the hard limit (ulimit -Hn, LimitNOFILE= in \
                     systemd, nofile in /etc/security/limits.conf, or --ulimit nofile in Docker)",
                    limit.soft,
                    limit.hard
                );
            }
            Some(limit)
        }
        Err(error) => {
            tracing::warn!("could not raise the open-file limit (RLIMIT_NOFILE): {error}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_limit_is_raised_to_the_hard_limit() {
        let (_, hard) = Resource::NOFILE.get().expect("getrlimit");
        // Lower the soft limit a little (not so far that tests running alongside run out of
        // descriptors), then raise it back.
        let lowered = hard.saturating_sub(64).max(256).min(hard);
        Resource::NOFILE.set(lowered, hard).expect("setrlimit");
        let limit = raise_fd_limit().expect("raise");
        assert_eq!(limit.before, lowered);
        assert_eq!(limit.hard, hard);
        assert_eq!(limit.soft, hard);
        assert_eq!(Resource::NOFILE.get().expect("getrlimit"), (hard, hard));
    }

    #[test]
    fn short_limit_is_flagged() {
        let short = FdLimit {
            before: 1024,
            soft: 4096,
            hard: 4096,
        };
        assert!(short.is_short());
        let enough = FdLimit {
            before: 1024,
            soft: 1 << 20,
            hard: 1 << 20,
        };
        assert!(!enough.is_short());
    }
}
