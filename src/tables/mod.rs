//! The current day's attempts, in fixed capacity.

mod attempts;
mod memory;
mod merge;
pub(crate) mod prefetch;
mod row;

pub use attempts::{AttemptTable, Full, Located};
pub use memory::Room;
pub use merge::merge;
pub use prefetch::read as prefetch;
pub use row::{day_of, Key, Row, RowOrder};
