//! Token buckets: the request budget a tenant's quota gives it, and the
//! budget each client address has for requests without a valid token.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a refused caller is told to wait when its bucket never refills.
const NEVER: Duration = Duration::from_secs(3600);

/// A token bucket: `rate` tokens a second, holding at most `burst`.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A bucket holding its whole burst.
    pub fn full(burst: f64, now: Instant) -> Bucket {
        Bucket { tokens: burst, at: now }
    }

    /// Takes one token: Err(how long until the next one) when there is none.
    pub fn take(&mut self, rate: f64, burst: f64, now: Instant) -> Result<(), Duration> {
        self.refill(rate, burst, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        if rate <= 0.0 {
            return Err(NEVER);
        }
        Err(Duration::from_secs_f64((1.0 - self.tokens) / rate))
    }

    /// True when the bucket has refilled to its burst by `now`: it then
    /// says nothing a new full bucket would not.
    fn is_full(&self, rate: f64, burst: f64, now: Instant) -> bool {
        let mut copy = *self;
        copy.refill(rate, burst, now);
        copy.tokens >= burst
    }

    fn refill(&mut self, rate: f64, burst: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.at = now;
    }
}

/// The most client addresses whose buckets are remembered: about 48 bytes
/// each, so a few MiB at most however many addresses a flood comes from.
pub const MAX_ADDRESSES: usize = 65_536;

/// How often a full table may be swept for refilled buckets.
const SWEEP_SPACING: Duration = Duration::from_secs(1);

/// One bucket per client address for requests without a valid token. An
/// IPv6 client is keyed by its /64, the block one host is usually given,
/// so it cannot step around its budget by changing addresses.
pub struct AddressBudgets {
    rate: f64,
    burst: f64,
    table: Mutex<Table>,
}

struct Table {
    buckets: HashMap<IpAddr, Bucket>,
    /// Shared by addresses that arrive while the table is full of buckets
    /// still refilling: bounded memory outranks perfect fairness there.
    overflow: Bucket,
    swept_at: Option<Instant>,
}

impl AddressBudgets {
    /// Budgets of `rate` requests a second, `burst` at once; a rate of 0
    /// means no limit.
    pub fn new(rate: f64, burst: u32) -> AddressBudgets {
        let burst = f64::from(burst.max(1));
        AddressBudgets {
            rate,
            burst,
            table: Mutex::new(Table {
                buckets: HashMap::new(),
                overflow: Bucket::full(burst, Instant::now()),
                swept_at: None,
            }),
        }
    }

    /// True when no request is ever refused.
    pub fn is_unlimited(&self) -> bool {
        self.rate <= 0.0
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes one request from `address`'s budget: Err(how long until the
    /// next one is let through) when it is spent.
    pub fn admit(&self, address: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.is_unlimited() {
            return Ok(());
        }
        let (rate, burst) = (self.rate, self.burst);
        let key = budget_key(address);
        let mut table = self.lock();
        if let Some(bucket) = table.buckets.get_mut(&key) {
            return bucket.take(rate, burst, now);
        }
        if table.buckets.len() >= MAX_ADDRESSES {
            let may_sweep = table
                .swept_at
                .is_none_or(|at| now.saturating_duration_since(at) >= SWEEP_SPACING);
            if may_sweep {
                table.swept_at = Some(now);
                table.buckets.retain(|_, bucket| !bucket.is_full(rate, burst, now));
            }
            if table.buckets.len() >= MAX_ADDRESSES {
                return table.overflow.take(rate, burst, now);
            }
        }
        let mut bucket = Bucket::full(burst, now);
        let taken = bucket.take(rate, burst, now);
        table.buckets.insert(key, bucket);
        taken
    }

    /// How many addresses have a bucket.
    pub fn addresses(&self) -> usize {
        self.lock().buckets.len()
    }
}

/// The address a budget is kept under: IPv4 as is (IPv4-mapped IPv6 too),
/// IPv6 by its /64.
fn budget_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let segments = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(
                    segments[0],
                    segments[1],
                    segments[2],
                    segments[3],
                    0,
                    0,
                    0,
                    0,
                ))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn an_address_gets_its_burst_then_the_rate() {
        let budgets = AddressBudgets::new(5.0, 10);
        let start = Instant::now();
        assert!((0..10).all(|_| budgets.admit(v4(1), start).is_ok()));
        let wait = budgets.admit(v4(1), start).unwrap_err();
        assert!(
            wait > Duration::from_millis(150) && wait <= Duration::from_millis(200),
            "{wait:?}"
        );
        let later = start + Duration::from_millis(200);
        assert!(budgets.admit(v4(1), later).is_ok());
        assert!(budgets.admit(v4(1), later).is_err());
        assert!(
            budgets.admit(v4(2), later).is_ok(),
            "another address has its own budget"
        );
    }

    #[test]
    fn a_rate_of_zero_refuses_nothing() {
        let budgets = AddressBudgets::new(0.0, 1);
        let now = Instant::now();
        assert!((0..1000).all(|_| budgets.admit(v4(1), now).is_ok()));
        assert_eq!(budgets.addresses(), 0);
    }

    #[test]
    fn ipv6_addresses_of_one_64_share_a_budget_and_mapped_ipv4_is_ipv4() {
        let budgets = AddressBudgets::new(1.0, 2);
        let now = Instant::now();
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let two: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(budgets.admit(one, now).is_ok() && budgets.admit(two, now).is_ok());
        assert!(budgets.admit(one, now).is_err(), "the /64 has spent its burst");
        assert!(budgets.admit(other, now).is_ok());
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(budget_key(mapped), v4(7));
    }

    #[test]
    fn the_table_stays_bounded_and_forgets_refilled_buckets_first() {
        let budgets = AddressBudgets::new(1.0, 2);
        let start = Instant::now();
        for index in 0..MAX_ADDRESSES as u32 {
            budgets.admit(IpAddr::from(index.to_be_bytes()), start).unwrap();
        }
        assert_eq!(budgets.addresses(), MAX_ADDRESSES);
        // Still refilling: the newcomers share the overflow bucket.
        let newcomer = IpAddr::from([250, 0, 0, 1]);
        assert!(budgets.admit(newcomer, start).is_ok() && budgets.admit(newcomer, start).is_ok());
        assert!(budgets.admit(IpAddr::from([250, 0, 0, 2]), start).is_err());
        assert_eq!(budgets.addresses(), MAX_ADDRESSES);
        // Two seconds on every bucket is full again: the sweep drops them.
        let later = start + Duration::from_secs(2);
        assert!(budgets.admit(newcomer, later).is_ok());
        assert_eq!(budgets.addresses(), 1);
    }
}
