pub mod day;
pub mod pcapgen;
