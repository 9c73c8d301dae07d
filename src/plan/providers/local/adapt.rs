//! Every way the local provider differs from a real cluster, with the reason, in one list that
//! `kyvtel plan --provider local` prints; `provider::local::adapt` applies them.

/// Every way the local provider differs from a real cluster, with the reason. One place.
pub const ADAPTATIONS: &[(&str, &str)] = &[
    (
        "no kubelet, no scheduler",
        "pods are admitted (or denied) and stored, never run: steps that need a running pod (connect, intercept, \
         traffic, Ready 2/2) are skipped with the reason `local provider: no kubelet`",
    ),
    (
        "Kyverno and the traffic-manager run as host processes",
        "with the args and env of the Deployment their chart rendered, read back from the API server, under the \
         chart's own ServiceAccount (a TokenRequest token); fieldRefs are resolved (pod name = the Pending pod's)",
    ),
    (
        "Kyverno: --kubeconfig, --serverIP=127.0.0.1:<port>, --webhookServerHost/Port, --metricsHost, \
         --controllerRuntimeMetricsAddress, --autoMemLimitEnabled=false, TUF_ROOT",
        "outside a pod it has no in-cluster config; its webhooks must be registered with a loopback URL; every \
         listener stays on loopback",
    ),
    (
        "Kyverno chart: kyverno-api added from its module, openreports and reports-server dropped from Chart.yaml",
        "Helm requires every dependency in charts/ whatever its condition; both dropped ones are disabled",
    ),
    (
        "Telepresence is installed with Helm directly and a post-renderer",
        "`telepresence helm install` waits for the manager to be ready, which needs a kubelet; the post-renderer \
         points the injector webhook at https://127.0.0.1:<port> with the run's CA and puts the run's certificate in \
         its Secret, so that no webhook dials a Service (a webhook left on a Service fails open: pods admitted without \
         an agent)",
    ),
    (
        "traffic-manager: KUBERNETES_SERVICE_HOST/PORT, SERVER_HOST/PORT, MUTATOR_WEBHOOK_PORT, POD_IP, \
         USAGE_REPORTING_ENABLED=false, /var/run/secrets/kubernetes.io/serviceaccount on a private tmpfs",
        "it insists on in-cluster files and would report usage to an external collector",
    ),
    (
        "injection is triggered by the pod-template annotation `<prefix>/inject-traffic-agent: enabled`",
        "without a client there is no intercept to trigger it; the scenario files stay unchanged",
    ),
    (
        "every Service of the workload is created before its Deployment",
        "Telepresence 2.20.2 panics when a Deployment exists before its Service, and its webhook then fails open",
    ),
    (
        "components run in private network, mount and PID namespaces",
        "nothing leaves loopback (the injector binds all interfaces), /run is private, and no process outlives kyvtel",
    ),
];
