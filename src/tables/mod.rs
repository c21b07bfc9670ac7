//! The current day's attempts, in fixed capacity.

mod attempts;
mod memory;
pub(crate) mod prefetch;
mod row;

pub use attempts::{AttemptTable, Full, Located};
pub use memory::Room;
pub use prefetch::read as prefetch;
pub use row::{day_of, Key, Row, RowOrder};
