//! The STS budget: a token bucket per account and Region that every STS call idfed makes draws from.
//!
//! STS allows 600 requests per second per AWS account and Region, shared by `AssumeRole`,
//! `GetFederationToken`, `GetSessionToken` and `GetCallerIdentity`; past it, every caller of that account is
//! throttled, idfed's and everyone else's. [`Budgeted`] wraps an issuer so that idfed spends at most its
//! budget (default 300 calls/s, half the quota, with a burst of one second's worth): a call over budget waits
//! for its token up to [`BudgetSettings::max_wait`], else it is refused at once with
//! `sts_budget_exhausted` and the time after which a token will be free. Nothing is sent to STS for a
//! refused call. STS's own throttling (after the SDK's retries) is counted beside the budget's refusals.
//!
//! The bucket is keyed by idfed's account name and the STS region (or endpoint): two idfed accounts that are
//! IAM users of the same AWS account have a budget each, so size the budget for that. Within it, each
//! caller has a bucket of its own too ([`BudgetSettings::per_caller_per_second`], default half the
//! account's): one caller asking for ever different credentials cannot spend everyone's budget.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{
    AccountAccess, BoxFuture, CallerIdentity, CredentialIssuer, IssueRequest, IssuedCredentials,
    StsError, StsErrorKind,
};
use crate::metrics::Metrics;

/// How much of STS idfed may use.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BudgetSettings {
    /// Calls per second per account and Region (also the burst); 0 for no budget.
    pub per_second: u32,
    /// Calls per second one caller may make of that (also its burst); 0 for no share of its own.
    pub per_caller_per_second: u32,
    /// How long a call over budget may wait for its token before it is refused.
    pub max_wait: Duration,
}

impl Default for BudgetSettings {
    fn default() -> Self {
        BudgetSettings {
            per_second: 300,
            per_caller_per_second: 150,
            max_wait: Duration::from_millis(500),
        }
    }
}

/// What the budget counted for one account and Region.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BudgetStats {
    /// STS calls made.
    pub calls: u64,
    /// Calls that waited for their token.
    pub waited: u64,
    /// Calls refused by the budget (`sts_budget_exhausted`).
    pub refused: u64,
    /// Calls STS itself throttled, still after retries (`sts_throttled`).
    pub throttled_by_sts: u64,
}

struct Bucket {
    /// Tokens now; below zero while calls wait for tokens already promised to them.
    tokens: f64,
    refilled: Instant,
    stats: BudgetStats,
}

/// The token buckets, one per account and Region.
pub struct StsBudget {
    settings: BudgetSettings,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl std::fmt::Debug for StsBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StsBudget")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl StsBudget {
    /// A budget with `settings`.
    pub fn new(settings: BudgetSettings) -> Self {
        StsBudget {
            settings,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The settings.
    pub fn settings(&self) -> BudgetSettings {
        self.settings
    }

    /// Takes a token for one call in `scope` at `now` (and one of `caller`'s share of it): `Ok(wait)`, the
    /// time to wait before calling (zero when a token is free), or `Err(retry_after)` when even waiting
    /// [`BudgetSettings::max_wait`] would not do (nothing is taken then).
    pub fn reserve(
        &self,
        scope: &str,
        caller: Option<&str>,
        now: Instant,
    ) -> Result<Duration, Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let account_wait = refill(&mut buckets, scope, self.settings.per_second, now);
        let share = caller
            .filter(|_| self.settings.per_caller_per_second > 0 && self.settings.per_second > 0)
            .map(|caller| format!("{scope}\u{0}{caller}"));
        let share_wait = share.as_ref().map_or(Duration::ZERO, |key| {
            refill(&mut buckets, key, self.settings.per_caller_per_second, now)
        });
        let wait = account_wait.max(share_wait);
        let bucket = buckets.get_mut(scope).expect("refilled above");
        if wait > self.settings.max_wait {
            bucket.stats.refused += 1;
            // Whole seconds, as Retry-After says them; at least one.
            return Err(Duration::from_secs(
                wait.as_secs_f64().ceil().max(1.0) as u64
            ));
        }
        bucket.stats.calls += 1;
        if self.settings.per_second == 0 {
            return Ok(Duration::ZERO);
        }
        bucket.tokens -= 1.0;
        if !wait.is_zero() {
            bucket.stats.waited += 1;
        }
        if let Some(key) = share {
            buckets.get_mut(&key).expect("refilled above").tokens -= 1.0;
        }
        Ok(wait)
    }

    /// Counts a call STS throttled, and charges the bucket for the `extra_attempts` the SDK made on top of
    /// the one paid for (each was a request to STS), without waiting: the next calls wait instead.
    pub fn throttled_by_sts(&self, scope: &str, extra_attempts: u32) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bucket) = buckets.get_mut(scope) {
            bucket.stats.throttled_by_sts += 1;
            if self.settings.per_second > 0 {
                bucket.tokens -= f64::from(extra_attempts);
            }
        }
    }

    /// What was counted, by scope (`<account>@<region or endpoint>`); callers' shares are not listed.
    pub fn stats(&self) -> BTreeMap<String, BudgetStats> {
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        buckets
            .iter()
            .filter(|(key, _)| !key.contains('\u{0}'))
            .map(|(scope, bucket)| (scope.clone(), bucket.stats))
            .collect()
    }

    /// Takes a token for a call with `access`'s account, waiting for it if need be.
    async fn acquire(&self, scope: &str, caller: Option<&str>) -> Result<(), StsError> {
        match self.reserve(scope, caller, Instant::now()) {
            Ok(wait) => {
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                Ok(())
            }
            Err(retry_after) => Err(StsError::new(
                StsErrorKind::BudgetExhausted { retry_after },
                format!(
                    "idfed's STS budget for the connector's account (or your share of it) is spent; \
                     try again in {} s",
                    retry_after.as_secs()
                ),
            )),
        }
    }
}

/// Refills `key`'s bucket (of `rate` a second, as deep as one second) to `now`; how long until it holds a
/// whole token (zero: it does; always zero without a rate).
fn refill(buckets: &mut HashMap<String, Bucket>, key: &str, rate: u32, now: Instant) -> Duration {
    let bucket = buckets.entry(key.to_owned()).or_insert_with(|| Bucket {
        tokens: f64::from(rate),
        refilled: now,
        stats: BudgetStats::default(),
    });
    if rate == 0 {
        return Duration::ZERO;
    }
    let rate = f64::from(rate);
    let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
    bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
    bucket.refilled = now.max(bucket.refilled);
    if bucket.tokens >= 1.0 {
        Duration::ZERO
    } else {
        Duration::from_secs_f64((1.0 - bucket.tokens) / rate)
    }
}

/// An issuer whose every call is paid for from an [`StsBudget`], and timed (the budget's wait not included)
/// into [`Metrics`]' `idfed_sts_request_duration_seconds` by operation and outcome (`ok`, or the error's code).
pub struct Budgeted<I> {
    inner: I,
    budget: std::sync::Arc<StsBudget>,
    default_region: String,
    /// The SDK's attempts per call: a call throttled after its retries cost this many requests.
    max_attempts: u32,
    metrics: std::sync::Arc<Metrics>,
}

impl<I> Budgeted<I> {
    /// `inner`, paying from `budget`; `default_region` is the region of accounts that name none;
    /// `max_attempts` the attempts `inner` makes of a throttled call.
    pub fn new(
        inner: I,
        budget: std::sync::Arc<StsBudget>,
        default_region: String,
        max_attempts: u32,
    ) -> Self {
        Budgeted {
            inner,
            budget,
            default_region,
            max_attempts: max_attempts.max(1),
            metrics: Default::default(),
        }
    }

    /// The same issuer, timing its calls into `metrics`.
    pub fn with_metrics(mut self, metrics: std::sync::Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    fn scope(&self, access: &AccountAccess) -> String {
        let place = access
            .endpoint
            .as_deref()
            .or(access.region.as_deref())
            .unwrap_or(&self.default_region);
        format!("{}@{place}", access.account_name)
    }

    /// Times a call of `operation` that started at `started`, and charges a throttled one for its retries.
    fn note<T>(
        &self,
        scope: &str,
        operation: &str,
        started: Instant,
        result: &Result<T, StsError>,
    ) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(e) => e.code(),
        };
        self.metrics
            .sts_request(operation, outcome, started.elapsed());
        if let Err(StsError {
            kind: StsErrorKind::Throttled { .. },
            ..
        }) = result
        {
            self.budget.throttled_by_sts(scope, self.max_attempts - 1);
        }
    }
}

impl<I: CredentialIssuer> CredentialIssuer for Budgeted<I> {
    fn issue<'a>(
        &'a self,
        request: &'a IssueRequest,
    ) -> BoxFuture<'a, Result<IssuedCredentials, StsError>> {
        Box::pin(async move {
            let scope = self.scope(&request.access);
            self.budget
                .acquire(&scope, request.requester.as_deref())
                .await?;
            let started = Instant::now();
            let result = self.inner.issue(request).await;
            self.note(&scope, request.kind.operation(), started, &result);
            result
        })
    }

    fn caller_identity<'a>(
        &'a self,
        access: &'a AccountAccess,
        credentials: &'a IssuedCredentials,
    ) -> BoxFuture<'a, Result<CallerIdentity, StsError>> {
        Box::pin(async move {
            let scope = self.scope(access);
            self.budget.acquire(&scope, None).await?;
            let started = Instant::now();
            let result = self.inner.caller_identity(access, credentials).await;
            self.note(&scope, "GetCallerIdentity", started, &result);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(per_second: u32, max_wait_ms: u64) -> StsBudget {
        StsBudget::new(BudgetSettings {
            per_second,
            per_caller_per_second: 0,
            max_wait: Duration::from_millis(max_wait_ms),
        })
    }

    #[test]
    fn one_caller_takes_at_most_its_share() {
        let budget = StsBudget::new(BudgetSettings {
            per_second: 4,
            per_caller_per_second: 2,
            max_wait: Duration::ZERO,
        });
        let now = Instant::now();
        for _ in 0..2 {
            assert_eq!(
                budget.reserve("a", Some("mallory"), now),
                Ok(Duration::ZERO)
            );
        }
        assert!(
            budget.reserve("a", Some("mallory"), now).is_err(),
            "past the share"
        );
        // Everyone else still has the rest of the account's budget; calls for nobody too.
        assert_eq!(budget.reserve("a", Some("alice"), now), Ok(Duration::ZERO));
        assert_eq!(budget.reserve("a", None, now), Ok(Duration::ZERO));
        assert!(
            budget.reserve("a", Some("bob"), now).is_err(),
            "the account's budget is spent"
        );
        let stats = budget.stats();
        assert_eq!(stats.len(), 1, "shares are not listed: {stats:?}");
        assert_eq!(stats["a"].calls, 4);
        assert_eq!(stats["a"].refused, 2);
    }

    #[test]
    fn a_burst_of_one_seconds_worth_then_waits_then_refusals() {
        let budget = budget(10, 250);
        let now = Instant::now();
        for _ in 0..10 {
            assert_eq!(budget.reserve("a@us-east-1", None, now), Ok(Duration::ZERO));
        }
        // Tokens come back at 10/s: the next two wait 100 and 200 ms, the third would wait 300 ms.
        let wait = budget.reserve("a@us-east-1", None, now).unwrap();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-6, "{wait:?}");
        let wait = budget.reserve("a@us-east-1", None, now).unwrap();
        assert!((wait.as_secs_f64() - 0.2).abs() < 1e-6, "{wait:?}");
        assert_eq!(
            budget.reserve("a@us-east-1", None, now),
            Err(Duration::from_secs(1))
        );
        // Another account or region has its own bucket.
        assert_eq!(budget.reserve("a@eu-west-1", None, now), Ok(Duration::ZERO));
        assert_eq!(budget.reserve("b@us-east-1", None, now), Ok(Duration::ZERO));
        // A second later the bucket has refilled what the waiting calls did not take.
        let later = now + Duration::from_secs(1);
        assert_eq!(
            budget.reserve("a@us-east-1", None, later),
            Ok(Duration::ZERO)
        );
        let stats = budget.stats()["a@us-east-1"];
        assert_eq!(
            stats,
            BudgetStats {
                calls: 13,
                waited: 2,
                refused: 1,
                throttled_by_sts: 0
            }
        );
    }

    #[test]
    fn the_bucket_never_holds_more_than_a_second() {
        let budget = budget(5, 0);
        let now = Instant::now();
        assert_eq!(budget.reserve("a", None, now), Ok(Duration::ZERO));
        let later = now + Duration::from_secs(3600);
        for _ in 0..5 {
            assert_eq!(budget.reserve("a", None, later), Ok(Duration::ZERO));
        }
        assert!(budget.reserve("a", None, later).is_err());
    }

    #[test]
    fn a_throttled_call_is_charged_for_its_retries() {
        let budget = budget(3, 0);
        let now = Instant::now();
        assert!(budget.reserve("a", None, now).is_ok());
        // STS throttled it after three attempts: two more requests were sent than were paid for.
        budget.throttled_by_sts("a", 2);
        assert!(
            budget.reserve("a", None, now).is_err(),
            "the bucket is spent"
        );
        assert_eq!(budget.stats()["a"].throttled_by_sts, 1);
    }

    #[test]
    fn no_budget_counts_but_never_waits() {
        let budget = budget(0, 0);
        let now = Instant::now();
        for _ in 0..10_000 {
            assert_eq!(budget.reserve("a", None, now), Ok(Duration::ZERO));
        }
        assert_eq!(budget.stats()["a"].calls, 10_000);
    }

    #[test]
    fn retry_after_is_whole_seconds_and_covers_the_wait() {
        let budget = budget(1, 0);
        let now = Instant::now();
        assert!(budget.reserve("a", None, now).is_ok());
        assert_eq!(budget.reserve("a", None, now), Err(Duration::from_secs(1)));
        let slow = self::budget(1, 0);
        assert!(slow.reserve("a", None, now).is_ok());
        // Refusals take nothing: the next token is still one second away.
        for _ in 0..5 {
            assert_eq!(slow.reserve("a", None, now), Err(Duration::from_secs(1)));
        }
        assert_eq!(
            slow.reserve("a", None, now + Duration::from_secs(1)),
            Ok(Duration::ZERO)
        );
    }
}
