pub mod day;
pub mod pcapgen;
pub mod rng;
