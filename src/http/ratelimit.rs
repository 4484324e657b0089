//! Rate limits (governor, GCRA) with the contract's headers.
//!
//! Register and login are limited per source IP; authenticated routes per
//! user. Every response on a limited route carries `X-RateLimit-Limit`,
//! `X-RateLimit-Remaining` and `X-RateLimit-Reset` (seconds until the full
//! allowance is back); a refusal is a 429 with `Retry-After` too. Keyed
//! limiters remember every key, so `retain_recent` runs on a timer.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::{DefaultKeyedRateLimiter, Quota};

use super::error::{ApiError, ceil_secs};
use super::extract::client_ip;
use crate::telemetry;

/// What the headers say about a limit after one request.
#[derive(Debug, Clone, Copy)]
pub struct RateInfo {
    limit: u32,
    remaining: u32,
    reset: Duration,
}

impl RateInfo {
    /// Writes the three `X-RateLimit-*` headers.
    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.insert("x-ratelimit-limit", HeaderValue::from(self.limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(self.remaining));
        headers.insert(
            "x-ratelimit-reset",
            HeaderValue::from(ceil_secs(self.reset)),
        );
    }

    /// Writes the headers unless a stricter, route-specific limit already
    /// did (the per-user API limit runs around every route; a route with a
    /// limit of its own reports that one).
    pub fn apply_unless_set(&self, headers: &mut HeaderMap) {
        if !headers.contains_key("x-ratelimit-limit") {
            self.apply(headers);
        }
    }
}

/// A refusal: how long to wait, plus the headers' figures.
#[derive(Debug, Clone, Copy)]
pub struct Refusal {
    pub retry_after: Duration,
    pub info: RateInfo,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = ApiError::RateLimited {
            retry_after: self.retry_after,
        }
        .into_response();
        self.info.apply(response.headers_mut());
        response
    }
}

/// A keyed limiter: `per_minute` requests a minute per key, all of them
/// usable in a burst.
#[derive(Debug, Clone)]
pub struct KeyedLimiter<K: Hash + Eq + Clone> {
    limiter: Arc<DefaultKeyedRateLimiter<K, StateInformationMiddleware>>,
    quota: Quota,
    scope: &'static str,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    /// A limiter labelled `scope` in the metrics.
    pub fn per_minute(per_minute: u32, scope: &'static str) -> Self {
        let quota =
            Quota::per_minute(NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN));
        Self {
            limiter: Arc::new(
                DefaultKeyedRateLimiter::keyed(quota)
                    .with_middleware::<StateInformationMiddleware>(),
            ),
            quota,
            scope,
        }
    }

    /// A limiter of `per_hour` requests an hour per key, all of them usable
    /// in a burst.
    pub fn per_hour(per_hour: u32, scope: &'static str) -> Self {
        let quota = Quota::per_hour(NonZeroU32::new(per_hour.max(1)).unwrap_or(NonZeroU32::MIN));
        Self {
            limiter: Arc::new(
                DefaultKeyedRateLimiter::keyed(quota)
                    .with_middleware::<StateInformationMiddleware>(),
            ),
            quota,
            scope,
        }
    }

    /// Counts one request for `key`.
    pub fn check(&self, key: &K) -> Result<RateInfo, Refusal> {
        let limit = self.quota.burst_size().get();
        let interval = self.quota.replenish_interval();
        match self.limiter.check_key(key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Ok(RateInfo {
                    limit,
                    remaining,
                    reset: interval * (limit - remaining),
                })
            }
            Err(not_until) => {
                metrics::counter!(telemetry::RATE_LIMITED, "scope" => self.scope).increment(1);
                let retry_after = not_until.wait_time_from(DefaultClock::default().now());
                Err(Refusal {
                    retry_after,
                    info: RateInfo {
                        limit,
                        remaining: 0,
                        reset: retry_after + interval * (limit - 1),
                    },
                })
            }
        }
    }

    /// Forgets keys whose allowance is full again (memory stays flat).
    pub fn retain_recent(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// A per-IP limit applied as route middleware.
#[derive(Debug, Clone)]
pub struct IpLimit {
    pub limiter: KeyedLimiter<IpAddr>,
    pub trust_forwarded_for: bool,
}

/// Middleware: limit by client IP, headers on every response.
pub async fn limit_by_ip(State(limit): State<IpLimit>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let ip = client_ip(&parts, limit.trust_forwarded_for).unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let request = Request::from_parts(parts, body);
    match limit.limiter.check(&ip) {
        Ok(info) => {
            let mut response = next.run(request).await;
            info.apply(response.headers_mut());
            response
        }
        Err(refusal) => refusal.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_burst_is_the_limit_and_then_it_refuses() {
        let limiter = KeyedLimiter::<u8>::per_minute(3, "test");
        let first = limiter.check(&1).expect("first");
        assert_eq!((first.limit, first.remaining), (3, 2));
        limiter.check(&1).expect("second");
        let third = limiter.check(&1).expect("third");
        assert_eq!(third.remaining, 0);
        let refusal = limiter.check(&1).expect_err("fourth");
        assert!(refusal.retry_after > Duration::from_secs(1));
        assert!(refusal.retry_after <= Duration::from_secs(20));
        assert!(limiter.check(&2).is_ok(), "keys are independent");
    }
}
