//! Scenario files: the model, loading with located errors, pinned versions.

pub mod model;
pub mod version;

pub use model::Scenario;
pub mod pins;
pub mod resolve;
pub mod load;
pub mod policy;

pub use load::{Loaded, load};
pub mod structural;
