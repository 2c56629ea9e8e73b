//! Rate limits for keys, users, teams, end users, per model, and the whole gateway: requests per
//! minute, tokens per minute and requests in flight, counted in fixed one-minute windows
//! ([`MinuteCounter`]).
//!
//! A request acquires one [`Permit`] covering every scope that applies to it. Each scope's check
//! and increment is one atomic step, so with `rpm_limit` N exactly N requests of a minute pass
//! however many arrive at once. When a later scope refuses, the earlier ones are given back. Tokens
//! are reserved from an estimate before the call and reconciled with the real usage after it.
//!
//! A scope's counters exist while it is used: [`RateLimiter::evict_idle`] (run by the
//! [`crate::LimiterActor`], off the request path) drops those idle for a whole minute, which count
//! nothing any more, so the map holds only the scopes of the last two minutes.
//!
//! These counters are this process's. With Redis configured (`router_settings`), `src/limits.rs`
//! also reserves each request's rpm/tpm in Redis and leases `max_parallel_requests` slots there,
//! so the limits hold across instances; without Redis, or while it is unreachable, each instance
//! enforces the limits on its own traffic.

use std::collections::HashMap;

/// The counters of one scope kind, by scope id.
type ScopeCounters = HashMap<String, Arc<Counters>, foldhash::fast::RandomState>;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::window::{minute_of, ms_to_next_minute, MinuteCounter};

/// Whole minutes a scope must have counted nothing before [`RateLimiter::evict_idle`] drops it.
pub const IDLE_MINUTES: u64 = 1;

/// The limits of one scope; `None` = unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub parallel: Option<u64>,
}

impl Limits {
    pub fn is_unlimited(&self) -> bool {
        self.rpm.is_none() && self.tpm.is_none() && self.parallel.is_none()
    }
}

/// Something limits apply to: `("key", token)`, `("user", id)`, `("team", id)`,
/// `("end_user", id)`, `("model_per_key", "token:model")`, `("global", "")`…
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub kind: &'static str,
    pub id: String,
    pub limits: Limits,
}

#[derive(Debug, Default)]
struct Counters {
    requests: MinuteCounter,
    tokens: MinuteCounter,
    in_flight: AtomicU64,
}

impl Counters {
    /// Nothing counted for [`IDLE_MINUTES`] whole minutes before `minute` and nothing in flight:
    /// its windows read 0, so a fresh counter would decide the same. (Every admission counts a
    /// request, whatever its limits, so the requests window dates the last use.)
    fn idle(&self, minute: u64) -> bool {
        self.requests.minute() + IDLE_MINUTES < minute
            && self.tokens.minute() + IDLE_MINUTES < minute
            && self.in_flight.load(Ordering::Acquire) == 0
    }
}

/// Why a request was refused: the first scope over a limit, with its current values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    pub kind: &'static str,
    pub id: String,
    pub limits: Limits,
    pub current_rpm: u64,
    pub current_tpm: u64,
    pub current_parallel: u64,
    /// Until the window resets (or 1 s for a parallel-request limit).
    pub retry_after_ms: u64,
}

/// What a scope had left after this request was admitted, for `x-ratelimit-*` headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remaining {
    pub kind: &'static str,
    pub id: String,
    pub limits: Limits,
    pub remaining_requests: Option<u64>,
    pub remaining_tokens: Option<u64>,
}

#[derive(Default)]
pub struct RateLimiter {
    /// Scope kind → scope id → counters (looked up by `&str`, no key built per request).
    counters: RwLock<HashMap<&'static str, ScopeCounters>>,
}

impl RateLimiter {
    pub fn new() -> Self {
        Self::default()
    }

    fn counters(&self, scope: &Scope) -> Arc<Counters> {
        if let Some(c) = self.counters.read().ok().and_then(|m| {
            m.get(scope.kind)
                .and_then(|ids| ids.get(scope.id.as_str()))
                .cloned()
        }) {
            return c;
        }
        let mut map = match self.counters.write() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.entry(scope.kind)
            .or_default()
            .entry(scope.id.clone())
            .or_default()
            .clone()
    }

    /// How many scopes have counters.
    pub fn len(&self) -> usize {
        self.read().values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<&'static str, ScopeCounters>> {
        self.counters.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Drop the counters of scopes idle for [`IDLE_MINUTES`] whole minutes that no permit holds;
    /// returns how many. Found under the read lock, so requests are held up only while the few
    /// idle scopes are removed; each is checked again under the write lock, where no request can
    /// pick it up.
    pub fn evict_idle(&self, now_ms: u64) -> usize {
        let minute = minute_of(now_ms);
        let unused = |c: &Arc<Counters>| Arc::strong_count(c) == 1 && c.idle(minute);
        let idle: Vec<(&'static str, String)> = self
            .read()
            .iter()
            .flat_map(|(kind, ids)| {
                ids.iter()
                    .filter(|(_, c)| unused(c))
                    .map(|(id, _)| (*kind, id.clone()))
            })
            .collect();
        if idle.is_empty() {
            return 0;
        }
        let mut map = self.counters.write().unwrap_or_else(|p| p.into_inner());
        let mut evicted = 0;
        for (kind, id) in idle {
            let Some(ids) = map.get_mut(kind) else {
                continue;
            };
            if ids.get(id.as_str()).is_some_and(unused) {
                ids.remove(id.as_str());
                evicted += 1;
            }
            if ids.is_empty() {
                map.remove(kind);
            }
        }
        evicted
    }

    /// Admit a request of `tokens` estimated tokens under every scope, or say which limit it crossed.
    pub fn acquire(
        &self,
        scopes: Vec<Scope>,
        tokens: u64,
        now_ms: u64,
    ) -> Result<Permit, Exceeded> {
        let mut held: Vec<Held> = Vec::with_capacity(scopes.len());
        let mut remaining = Vec::new();
        for scope in scopes.into_iter().filter(|s| !s.limits.is_unlimited()) {
            let c = self.counters(&scope);
            let l = scope.limits;
            let refused = |c: &Counters, retry_after_ms: u64| Exceeded {
                kind: scope.kind,
                id: scope.id.clone(),
                limits: l,
                current_rpm: c.requests.get(now_ms),
                current_tpm: c.tokens.get(now_ms),
                current_parallel: c.in_flight.load(Ordering::Acquire),
                retry_after_ms,
            };
            let parallel_ok = l.parallel.is_none()
                || c.in_flight
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                        l.parallel.filter(|max| n < *max).map(|_| n + 1)
                    })
                    .is_ok();
            if !parallel_ok {
                let e = refused(&c, 1_000);
                release_all(&held, now_ms);
                return Err(e);
            }
            if !c.requests.add_within(now_ms, 1, l.rpm) {
                if l.parallel.is_some() {
                    c.in_flight.fetch_sub(1, Ordering::AcqRel);
                }
                let e = refused(&c, ms_to_next_minute(now_ms));
                release_all(&held, now_ms);
                return Err(e);
            }
            if l.tpm.is_some() && !c.tokens.add_within(now_ms, tokens, l.tpm) {
                c.requests.sub(now_ms, 1);
                if l.parallel.is_some() {
                    c.in_flight.fetch_sub(1, Ordering::AcqRel);
                }
                let e = refused(&c, ms_to_next_minute(now_ms));
                release_all(&held, now_ms);
                return Err(e);
            }
            remaining.push(Remaining {
                kind: scope.kind,
                id: scope.id.clone(),
                limits: l,
                remaining_requests: l.rpm.map(|max| max.saturating_sub(c.requests.get(now_ms))),
                remaining_tokens: l.tpm.map(|max| max.saturating_sub(c.tokens.get(now_ms))),
            });
            held.push(Held {
                counters: c,
                tokens: l.tpm.map(|_| tokens).unwrap_or(0),
                parallel: l.parallel.is_some(),
            });
        }
        Ok(Permit {
            held,
            remaining,
            at_ms: now_ms,
            settled: AtomicBool::new(false),
        })
    }
}

struct Held {
    counters: Arc<Counters>,
    /// Tokens reserved in this scope's tpm window.
    tokens: u64,
    parallel: bool,
}

fn release_all(held: &[Held], now_ms: u64) {
    for h in held {
        h.counters.requests.sub(now_ms, 1);
        h.counters.tokens.sub(now_ms, h.tokens);
        if h.parallel {
            h.counters.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// An admitted request. Dropping it ends the request: in-flight counts go down, and tokens not
/// settled with [`Permit::settle`] are given back.
pub struct Permit {
    held: Vec<Held>,
    remaining: Vec<Remaining>,
    at_ms: u64,
    settled: AtomicBool,
}

impl Permit {
    /// An empty permit (nothing limited).
    pub fn unlimited() -> Self {
        Self {
            held: Vec::new(),
            remaining: Vec::new(),
            at_ms: 0,
            settled: AtomicBool::new(true),
        }
    }

    /// Replace the token estimate with the tokens actually used (once; later calls do nothing).
    pub fn settle(&self, actual_tokens: u64) {
        if self.settled.swap(true, Ordering::AcqRel) {
            return;
        }
        for h in self
            .held
            .iter()
            .filter(|h| h.tokens > 0 || actual_tokens > 0)
        {
            h.counters
                .tokens
                .reconcile(self.at_ms, h.tokens, actual_tokens);
        }
    }

    /// What each limited scope had left when the request was admitted.
    pub fn remaining(&self) -> &[Remaining] {
        &self.remaining
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.settle(0);
        for h in &self.held {
            if h.parallel {
                h.counters.in_flight.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(
        kind: &'static str,
        rpm: Option<u64>,
        tpm: Option<u64>,
        parallel: Option<u64>,
    ) -> Scope {
        Scope {
            kind,
            id: "x".into(),
            limits: Limits { rpm, tpm, parallel },
        }
    }

    #[test]
    fn rpm_is_exact_under_contention() {
        let limiter = Arc::new(RateLimiter::new());
        let now = 3_600_000;
        let admitted: usize = (0..8)
            .map(|_| {
                let l = limiter.clone();
                std::thread::spawn(move || {
                    (0..500)
                        .filter_map(|_| {
                            l.acquire(vec![scope("key", Some(777), None, None)], 1, now)
                                .ok()
                        })
                        .map(std::mem::forget)
                        .count()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(admitted, 777);
    }

    #[test]
    fn parallel_limit_frees_on_drop_and_zero_rejects_everything() {
        let limiter = RateLimiter::new();
        let now = 3_600_000;
        let a = limiter
            .acquire(vec![scope("key", None, None, Some(1))], 0, now)
            .unwrap();
        let e = limiter
            .acquire(vec![scope("key", None, None, Some(1))], 0, now)
            .err()
            .unwrap();
        assert_eq!((e.current_parallel, e.limits.parallel), (1, Some(1)));
        drop(a);
        assert!(limiter
            .acquire(vec![scope("key", None, None, Some(1))], 0, now)
            .is_ok());
        assert!(limiter
            .acquire(vec![scope("zero", Some(0), None, None)], 0, now)
            .is_err());
    }

    #[test]
    fn a_refusal_gives_back_what_earlier_scopes_took() {
        let limiter = RateLimiter::new();
        let now = 3_600_000;
        let both = || {
            vec![
                scope("key", Some(10), None, None),
                scope("team", Some(0), None, None),
            ]
        };
        for _ in 0..20 {
            assert_eq!(limiter.acquire(both(), 0, now).err().unwrap().kind, "team");
        }
        let e = limiter.acquire(vec![scope("key", Some(10), None, None)], 0, now);
        assert!(
            e.is_ok(),
            "the key's window was not consumed by refused requests"
        );
    }

    #[test]
    fn idle_scopes_are_evicted_and_busy_ones_kept() {
        let limiter = RateLimiter::new();
        let minute = 60_000;
        let t = 100 * minute;
        let named = |kind: &'static str, id: &str, limits: Limits| Scope {
            kind,
            id: id.into(),
            limits,
        };
        let rpm = Limits {
            rpm: Some(2),
            ..Limits::default()
        };
        let parallel = Limits {
            parallel: Some(1),
            ..Limits::default()
        };
        // "a" is used up in minute 100; "held" keeps a request in flight; "b" is used later.
        for _ in 0..2 {
            limiter.acquire(vec![named("key", "a", rpm)], 0, t).unwrap();
        }
        let held = limiter
            .acquire(vec![named("key", "held", parallel)], 0, t)
            .unwrap();
        assert_eq!(limiter.len(), 2);
        // Within the next minute nothing is idle yet.
        assert_eq!(limiter.evict_idle(t + minute), 0);
        limiter
            .acquire(vec![named("team", "b", rpm)], 0, t + 2 * minute)
            .unwrap();
        // A whole minute later, "a" is dropped; "held" is in flight and "b" was just used.
        assert_eq!(limiter.evict_idle(t + 2 * minute), 1);
        assert_eq!(limiter.len(), 2);
        // A fresh counter decides as the old one would have: "a"'s minute is over.
        assert!(limiter
            .acquire(vec![named("key", "a", rpm)], 0, t + 2 * minute)
            .is_ok());
        drop(held);
        assert_eq!(limiter.evict_idle(t + 4 * minute), 3);
        assert!(limiter.is_empty());
        // Eviction never resets a live window: the limit still holds after a sweep.
        let now = t + 5 * minute;
        for _ in 0..2 {
            limiter
                .acquire(vec![named("key", "c", rpm)], 0, now)
                .unwrap();
        }
        assert_eq!(limiter.evict_idle(now), 0);
        assert!(limiter
            .acquire(vec![named("key", "c", rpm)], 0, now)
            .is_err());
    }

    #[test]
    fn tokens_are_reserved_then_settled() {
        let limiter = RateLimiter::new();
        let now = 3_600_000;
        let p = limiter
            .acquire(vec![scope("key", None, Some(100), None)], 60, now)
            .unwrap();
        assert_eq!(p.remaining()[0].remaining_tokens, Some(40));
        assert!(limiter
            .acquire(vec![scope("key", None, Some(100), None)], 60, now)
            .is_err());
        p.settle(10);
        assert!(limiter
            .acquire(vec![scope("key", None, Some(100), None)], 60, now)
            .is_ok());
    }
}
