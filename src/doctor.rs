//! Prerequisite checks for a live run.
