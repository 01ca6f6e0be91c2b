//! The build runner: work dirs, terraform, and classification of what a build made.

pub mod classify;
pub mod init_script;
pub mod jobs;
pub mod outcome;
pub mod plan_facts;
pub mod queue;
pub mod rules;
pub mod terraform;
pub mod untrusted_fs;
pub mod workdir;
