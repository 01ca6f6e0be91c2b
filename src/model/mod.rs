//! Plain types and rules, free of I/O beyond what a rule itself needs.

pub mod archive;
pub mod resource;
