//! Kept only until the fault suite moves to `source::store_rows`.

use crate::config::Settings;
use crate::lead::LeadRow;
use crate::storage::{Storage, StorageError};

pub async fn store(settings: &Settings, rows: &[LeadRow]) -> Result<usize, StorageError> {
    let storage = Storage::new(&settings.storage, reqwest::Client::new());
    crate::source::store_rows(&storage, &settings.leads_table, rows).await
}
