//! External CLIs (kind, helm, telepresence, docker, kyverno): command builders, version detection, provisioning.
