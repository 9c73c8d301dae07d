//! What the cluster will see, predicted offline: the objects a scenario creates ([`render`]), the
//! pod after Telepresence's agent injection ([`inject`], per version), and their API-server form
//! ([`serialize`]). A neutral layer: `check`, `plan` and `run` use it; it uses only `scenario`.

pub mod compare;
pub mod coverage;
pub mod inject;
pub mod render;
pub mod serialize;
