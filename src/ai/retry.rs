//! Retries with exponential backoff for rate limits (429) and unavailability (5xx, connect
//! failures, timeouts). Other errors (4xx, content filtered) are returned at once.
//!
//! Attempts are bounded, and so is each wait: when a provider's `Retry-After` asks for more
//! than [`RetryPolicy::max_delay`], we stop and return `RateLimited` so the caller (a job)
//! can reschedule instead of holding a worker.

use std::{sync::Arc, time::Duration};

use rand::Rng;

use super::{AiError, Capabilities, ChatRequest, ChatResponse, Provider};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// Total attempts, the first included (1 = no retries).
    pub(crate) max_attempts: u32,
    /// The first backoff; doubled after each failed attempt.
    pub(crate) base_delay: Duration,
    /// No single wait is longer than this.
    pub(crate) max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    #[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
    pub(crate) fn no_retries() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The wait before attempt `attempt + 1` (after `attempt` failures, counting from 1), or
    /// `None` when we should give up and return the error.
    pub(crate) fn delay_after(&self, attempt: u32, err: &AiError) -> Option<Duration> {
        if attempt >= self.max_attempts || !err.is_retryable() {
            return None;
        }
        if let AiError::RateLimited {
            retry_after: Some(wait),
        } = err
        {
            // The provider said how long; waiting longer than we allow means giving up now.
            return (*wait <= self.max_delay).then_some(*wait);
        }
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
        let capped = exp.min(self.max_delay);
        // Up to 20% jitter so tenants rate limited together don't retry in lockstep.
        let jitter = capped.mul_f64(rand::thread_rng().gen_range(0.0..0.2));
        Some((capped + jitter).min(self.max_delay))
    }

    async fn run<T, F, Fut>(&self, mut call: F) -> Result<T, AiError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, AiError>>,
    {
        let mut attempt = 1;
        loop {
            match call().await {
                Ok(v) => return Ok(v),
                Err(err) => match self.delay_after(attempt, &err) {
                    None => return Err(err),
                    Some(wait) => {
                        tracing::debug!(attempt, wait_ms = wait.as_millis() as u64, error = %err, "AI call failed; retrying");
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                },
            }
        }
    }
}

/// A provider whose calls are retried by a [`RetryPolicy`].
pub(crate) struct Retrying {
    inner: Arc<dyn Provider>,
    policy: RetryPolicy,
}

impl Retrying {
    pub(crate) fn new(inner: Arc<dyn Provider>, policy: RetryPolicy) -> Retrying {
        Retrying { inner, policy }
    }
}

#[async_trait::async_trait]
impl Provider for Retrying {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn model(&self) -> &str {
        self.inner.model()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, AiError> {
        self.policy.run(|| self.inner.chat(req)).await
    }

    async fn transcribe(&self, audio: &[u8], mime: &str) -> Result<String, AiError> {
        self.policy.run(|| self.inner.transcribe(audio, mime)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unavailable() -> AiError {
        AiError::Unavailable {
            reason: "HTTP 503".into(),
        }
    }

    #[test]
    fn backoff_doubles_is_capped_and_bounded() {
        let p = RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
        };
        let d1 = p.delay_after(1, &unavailable()).unwrap();
        let d2 = p.delay_after(2, &unavailable()).unwrap();
        let d3 = p.delay_after(3, &unavailable()).unwrap();
        assert!(d1 >= Duration::from_millis(100) && d1 < Duration::from_millis(121));
        assert!(d2 >= Duration::from_millis(200) && d2 < Duration::from_millis(241));
        assert_eq!(d3, Duration::from_millis(300));
        assert_eq!(
            p.delay_after(4, &unavailable()),
            None,
            "attempts are bounded"
        );
    }

    #[test]
    fn only_rate_limits_and_unavailability_are_retried() {
        let p = RetryPolicy::default();
        let rejected = AiError::Rejected {
            status: 401,
            message: "bad key".into(),
        };
        assert_eq!(p.delay_after(1, &rejected), None);
        assert_eq!(p.delay_after(1, &AiError::ContentFiltered), None);
        let limited = AiError::RateLimited {
            retry_after: Some(Duration::from_secs(2)),
        };
        assert_eq!(p.delay_after(1, &limited), Some(Duration::from_secs(2)));
        let too_long = AiError::RateLimited {
            retry_after: Some(Duration::from_secs(3600)),
        };
        assert_eq!(p.delay_after(1, &too_long), None, "hand a long wait back");
    }
}
