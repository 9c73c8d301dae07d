//! Scenario files: the model, loading with located errors, pinned versions.

pub mod catalog;
pub mod expect;
pub mod model;
pub mod version;

pub use model::Scenario;
pub mod load;
pub mod matrix;
pub mod meaning;
pub mod pins;
pub mod policy;
pub mod quarantine;
pub mod resolve;
pub mod root;

pub use load::{Loaded, load, load_all, load_all_confined, load_confined};
pub use root::Confinement;
pub mod structural;
