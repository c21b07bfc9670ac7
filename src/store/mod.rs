//! Files on disk: the daily CSV files, written atomically and merged in a stream.

mod csv;
mod daily;
pub mod snapshot;
mod writeback;

pub use self::csv::{RowReader, RowWriter, HEADER};
pub use daily::{date_of_day, day_of_date, lock_dir, DayFiles, DirLock};
