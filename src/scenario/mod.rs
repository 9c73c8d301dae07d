//! Scenario files: the model, loading with located errors, pinned versions.

pub mod model;
pub mod version;

pub use model::Scenario;
pub mod load;
pub mod pins;
pub mod policy;
pub mod resolve;

pub use load::{Loaded, load, load_all};
pub mod structural;
