//! What a run leaves behind: JUnit XML, a JSON and a Markdown summary (also appended to
//! `$GITHUB_STEP_SUMMARY`), the closing line `N passed, N failed, N ignored`, evidence bundles,
//! and progress output. Everything written, and everything printed on the console
//! ([`console`]), passes through [`redact::redact`].

pub mod console;
pub mod evidence;
pub mod progress;
pub mod record;
pub mod redact;
pub mod summary;
pub mod zip_members;

pub use summary::{Counts, DenialText, ModelDrift, Phase, RunReport, ScenarioReport, SkippedStep, Verdict, Written};
