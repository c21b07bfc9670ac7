//! tsusen: a network sensor for the edge. The path of a packet reads from the layout:
//! `source` → `decode` → `classify` → `tables` → `store`, driven by `sensor`.

pub mod addr;
pub mod alerts;
pub mod classify;
pub mod cli;
pub mod commands;
pub mod config;
pub mod decimal;
pub mod decode;
pub mod detect;
pub mod faults;
pub mod hash;
pub mod heap;
pub mod json;
pub mod logger;
pub mod policy;
pub mod privilege;
pub mod proto;
pub mod report;
pub mod sensor;
pub mod signals;
pub mod source;
pub mod store;
pub mod tables;
