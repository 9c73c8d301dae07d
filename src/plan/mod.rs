//! Scenario → Plan: ordered typed steps with timeouts and a LIFO teardown; pure and printable.

pub mod duration;
