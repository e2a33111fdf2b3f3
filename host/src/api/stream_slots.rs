//! The cap on each tenant's open event streams (`max_event_streams`): a
//! stream holds a slot for as long as it lasts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;

use super::error::ApiError;

/// The event streams each tenant holds open, within a cap per tenant.
pub struct StreamSlots {
    max: usize,
    open: Mutex<HashMap<String, usize>>,
}

/// One open stream of a tenant; its end (the client gone, the daemon
/// stopping) frees the slot.
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
    tenant: String,
}

impl StreamSlots {
    /// At most `max` streams per tenant.
    pub fn new(max: usize) -> StreamSlots {
        StreamSlots {
            max,
            open: Mutex::new(HashMap::new()),
        }
    }

    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A slot for a new stream of `tenant`, or 429 `too_many_streams`.
    pub fn take(self: &Arc<Self>, tenant: &str) -> Result<StreamSlot, ApiError> {
        let mut open = self.open();
        let count = open.entry(tenant.to_string()).or_default();
        if *count >= self.max {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                format!(
                    "tenant {tenant:?} holds {} event streams open, the most it may (max_event_streams); close one first",
                    self.max
                ),
            ));
        }
        *count += 1;
        Ok(StreamSlot {
            slots: self.clone(),
            tenant: tenant.to_string(),
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open();
        if let Some(count) = open.get_mut(&self.tenant) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.tenant);
            }
        }
    }
}
