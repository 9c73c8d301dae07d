//! `sendTraffic`: requests through the connection; each answer must carry the per-run token.

use super::super::action::Action;
use super::super::build::limits;
use super::{Ctx, skip_without_kubelet};
use crate::scenario::model::SendTraffic;

pub(super) fn actions(ctx: &mut Ctx<'_>, t: &SendTraffic) -> Vec<Action> {
    if let Some(skip) = skip_without_kubelet(ctx) {
        return skip;
    }
    let s = &ctx.loaded.scenario.spec;
    let app_ns = &s.workload.namespace;
    let svc = t.service.clone().unwrap_or_else(|| s.workload.name.clone());
    [
        format!("http://{{clusterIP:{app_ns}/{svc}}}:{}/", t.port),
        format!("http://{svc}.{app_ns}.svc.cluster.local:{}/", t.port),
    ]
    .into_iter()
    .map(|url| Action::Request { url, timeout: ctx.timeout(limits::REQUEST) })
    .collect()
}
