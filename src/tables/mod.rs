//! The current day's attempts, in fixed capacity.

mod attempts;
mod row;

pub use attempts::{AttemptTable, Full};
pub use row::{day_of, Key, Row, RowOrder};
