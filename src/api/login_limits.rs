//! Login attempts are rate-limited per account and per client address, so a password
//! cannot be guessed at the speed of argon2 and a flood cannot hold the blocking pool.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota};

use super::ApiError;

/// Every attempt counts (a success too): people log in a few times a day, guessers
/// thousands of times a minute.
const PER_ACCOUNT_BURST: u32 = 10;
const PER_ACCOUNT_PER_MINUTE: u32 = 10;
const PER_ADDRESS_BURST: u32 = 30;
const PER_ADDRESS_PER_MINUTE: u32 = 60;
/// Keys kept before stale ones are dropped, so random logins cannot grow memory forever.
const MAX_KEYS: usize = 10_000;

pub struct LoginLimits {
    accounts: DefaultKeyedRateLimiter<String>,
    addresses: DefaultKeyedRateLimiter<IpAddr>,
}

impl Default for LoginLimits {
    fn default() -> Self {
        let quota = |per_minute: u32, burst: u32| {
            Quota::per_minute(NonZeroU32::new(per_minute).expect("non-zero"))
                .allow_burst(NonZeroU32::new(burst).expect("non-zero"))
        };
        LoginLimits {
            accounts: DefaultKeyedRateLimiter::keyed(quota(
                PER_ACCOUNT_PER_MINUTE,
                PER_ACCOUNT_BURST,
            )),
            addresses: DefaultKeyedRateLimiter::keyed(quota(
                PER_ADDRESS_PER_MINUTE,
                PER_ADDRESS_BURST,
            )),
        }
    }
}

impl LoginLimits {
    /// Takes one attempt from the address's and the account's budgets, or says when to
    /// come back.
    pub fn attempt(&self, login: &str, from: IpAddr) -> Result<(), ApiError> {
        if self.accounts.len() > MAX_KEYS {
            self.accounts.retain_recent();
        }
        if self.addresses.len() > MAX_KEYS {
            self.addresses.retain_recent();
        }
        let clock = governor::clock::DefaultClock::default();
        let wait = |not_until: governor::NotUntil<_>| {
            use governor::clock::Clock;
            not_until.wait_time_from(clock.now()).as_secs() + 1
        };
        if let Err(n) = self.addresses.check_key(&from) {
            return Err(ApiError::TooManyRequests(format!(
                "too many login attempts from {from}: try again in {} s",
                wait(n)
            )));
        }
        if let Err(n) = self.accounts.check_key(&login.trim().to_lowercase()) {
            return Err(ApiError::TooManyRequests(format!(
                "too many login attempts for {:?}: try again in {} s",
                login.trim(),
                wait(n)
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_and_an_address_each_get_a_budget() {
        let limits = LoginLimits::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        for i in 0..PER_ACCOUNT_BURST {
            limits
                .attempt("alice", a)
                .unwrap_or_else(|e| panic!("{i}: {e}"));
        }
        let err = limits.attempt("ALICE ", a).unwrap_err();
        assert!(
            err.to_string().contains("too many login attempts for"),
            "{err}"
        );
        // Another account from the same address still has its own budget...
        limits.attempt("bob", a).unwrap();
        // ...until the address's runs out.
        for i in 0..PER_ADDRESS_BURST {
            let _ = limits.attempt(&format!("u{i}"), a);
        }
        let err = limits.attempt("carol", a).unwrap_err();
        assert!(err.to_string().contains("from 10.0.0.1"), "{err}");
        limits
            .attempt("carol", "10.0.0.2".parse().unwrap())
            .unwrap();
    }
}
