//! Limits and guards that protect the server from floods: the console's
//! login throttles, the bound on concurrent password hashing and the
//! per-IP budget of feedback votes. (The per-IP signup limiter is a
//! governor bucket kept in the app state.)

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::Semaphore;

/// Login attempts per minute from one IP address (the burst, then one per 6 s).
pub const LOGIN_PER_IP_PER_MINUTE: u32 = 10;
/// Login attempts per minute for one account name from one address.
pub const LOGIN_PER_ACCOUNT_PER_MINUTE: u32 = 5;
/// argon2 verifications running at once.
pub const HASHING_PERMITS: usize = 2;
/// Votes (POST /feedback) per minute from one address: the burst, then
/// one every 3 s. A page with a widget gets one vote per reader, so this
/// only slows a script stuffing the counts.
pub const VOTES_PER_IP_PER_MINUTE: u32 = 20;
/// Keyed limiters past this many keys forget the ones that are full again.
const LIMITER_KEYS: usize = 10_000;

/// The login throttles and the bound on concurrent password hashing.
pub struct LoginGuard {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_account: DefaultKeyedRateLimiter<(String, Option<IpAddr>)>,
    hashing: Semaphore,
}

impl Default for LoginGuard {
    fn default() -> Self {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        Self {
            per_ip: RateLimiter::keyed(quota(LOGIN_PER_IP_PER_MINUTE)),
            per_account: RateLimiter::keyed(quota(LOGIN_PER_ACCOUNT_PER_MINUTE)),
            hashing: Semaphore::new(HASHING_PERMITS),
        }
    }
}

impl LoginGuard {
    /// Permits not held by a password check right now.
    pub fn hashing_permits_free(&self) -> usize {
        self.hashing.available_permits()
    }

    /// Waits for a place to run a password check.
    pub async fn hashing(
        &self,
    ) -> Result<tokio::sync::SemaphorePermit<'_>, tokio::sync::AcquireError> {
        self.hashing.acquire().await
    }

    /// Takes one attempt from both budgets; false when either is spent.
    pub fn allow(&self, ip: Option<IpAddr>, account: &str) -> bool {
        if self.per_ip.len() > LIMITER_KEYS {
            self.per_ip.retain_recent();
        }
        if self.per_account.len() > LIMITER_KEYS {
            self.per_account.retain_recent();
        }
        let ip = ip.map(throttle_key);
        if let Some(ip) = ip {
            if self.per_ip.check_key(&ip).is_err() {
                return false;
            }
        }
        let account: String = account.to_lowercase().chars().take(64).collect();
        self.per_account.check_key(&(account, ip)).is_ok()
    }
}

/// The per-IP budget of feedback votes.
pub struct VoteLimiter {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
}

impl Default for VoteLimiter {
    fn default() -> Self {
        let n = NonZeroU32::new(VOTES_PER_IP_PER_MINUTE).unwrap_or(NonZeroU32::MIN);
        Self {
            per_ip: RateLimiter::keyed(Quota::per_minute(n)),
        }
    }
}

impl VoteLimiter {
    /// Takes one vote from the address's budget; false when it is spent.
    /// A request without an address (never over TCP) is not limited.
    pub fn allow(&self, ip: Option<IpAddr>) -> bool {
        if self.per_ip.len() > LIMITER_KEYS {
            self.per_ip.retain_recent();
        }
        ip.map(throttle_key)
            .is_none_or(|ip| self.per_ip.check_key(&ip).is_ok())
    }
}

/// The address a throttle counts: IPv4 as is, IPv6 by its /64 (one
/// customer's block; counting single addresses would give them 2^64 tries).
fn throttle_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(std::net::Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    #[test]
    fn throttles_count_ipv6_per_64_and_ipv4_per_address() {
        let key = |s: &str| super::throttle_key(s.parse::<IpAddr>().unwrap()).to_string();
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2::ffff"), key("2001:db8:1:2:1:2:3:4"));
        assert_ne!(key("2001:db8:1:3::1"), key("2001:db8:1:2::1"));
        assert_eq!(key("203.0.113.7"), "203.0.113.7");
        assert_eq!(key("::ffff:203.0.113.7"), "203.0.113.7");
    }
}
