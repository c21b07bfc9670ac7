//! The current day's attempts, in fixed capacity.

mod attempts;
mod prefetch;
mod row;

pub use attempts::{AttemptTable, Full, Located};
pub use prefetch::{huge_pages, read as prefetch};
pub use row::{day_of, Key, Row, RowOrder};
