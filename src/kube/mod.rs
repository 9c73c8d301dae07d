//! Placeholder; see the module docs once implemented.
