//! The per-address share of the connection cap: one remote address may hold
//! at most [`Limits::per_address_cap`] connections that have not presented
//! a valid key (10 % of the cap by default), so that one host that opens
//! connections and sends nothing cannot take every slot. A connection over
//! its address's share is closed as soon as it is accepted, before it takes
//! a slot under the global cap. A connection leaves its address's share once
//! a request on it authenticates (a gateway with many keep-alive connections
//! from one address is a client, not an attack); it still counts against the
//! global cap.
//!
//! [`Limits::per_address_cap`]: crate::config::Limits::per_address_cap

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

/// Open connections per remote address.
#[derive(Debug)]
pub struct AddressShare {
    cap: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
    refused: AtomicU64,
}

/// One counted connection; uncounted when dropped.
#[derive(Debug)]
pub struct AddressSlot {
    share: Arc<AddressShare>,
    addr: IpAddr,
}

impl AddressShare {
    /// At most `cap` (≥ 1) connections per address.
    pub fn new(cap: usize) -> AddressShare {
        AddressShare {
            cap: cap.max(1),
            open: Mutex::new(HashMap::new()),
            refused: AtomicU64::new(0),
        }
    }

    /// A slot for one more connection from `addr`, or `None` (counted) when
    /// the address holds its share already.
    pub fn try_acquire(self: &Arc<Self>, addr: IpAddr) -> Option<AddressSlot> {
        let mut open = self.open.lock();
        let n = open.entry(addr).or_insert(0);
        if *n >= self.cap {
            drop(open);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            share: Arc::clone(self),
            addr,
        })
    }

    /// Connections closed at accept for being over their address's share.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.share.open.lock();
        if let Some(n) = open.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_address_and_frees_on_drop() {
        let share = Arc::new(AddressShare::new(2));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = share.try_acquire(a).unwrap();
        let _second = share.try_acquire(a).unwrap();
        assert!(share.try_acquire(a).is_none());
        assert!(share.try_acquire(b).is_some());
        drop(first);
        assert!(share.try_acquire(a).is_some());
        assert_eq!(share.refused(), 1);
    }
}
