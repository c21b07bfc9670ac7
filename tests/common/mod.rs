pub mod day;
pub mod netflowgen;
pub mod pcapgen;
pub mod rng;
