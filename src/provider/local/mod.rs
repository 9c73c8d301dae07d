//! The `local` provider: a real etcd, kube-apiserver and kube-controller-manager, the real Kyverno
//! admission controller and the real Telepresence traffic-manager (its agent injector), as host
//! processes built from their Go modules, in private namespaces, with no kubelet. Admission is real;
//! steps that need a running pod are skipped with the reason.
//!
//! - [`build`]: wrapper modules → `.tools/local/`, warm by stamp.
//! - [`confine`]: network, mount and PID namespaces, entered before the async runtime.
//! - [`pki`], [`charts`], [`postrender`], [`adapt`]: pure builders of what runs.
//! - [`process`], [`op`]: starting, watching and stopping components; running the plan's `LocalOp`s.
//!
//! What the plan holds (the operations, the components' command lines and files, the adaptations)
//! is [`crate::plan::providers::local`]'s, so that `kyvtel plan` prints it.
//! - [`snapshot`]: the warm start from a saved "stack ready" state.

pub mod adapt;
pub mod build;
pub mod charts;
pub mod confine;
pub mod op;
pub mod pki;
pub mod postrender;
pub mod process;
pub mod snapshot;
pub mod variants;
