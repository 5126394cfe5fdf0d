//! Every metric Vigil exports, in one place (names follow the original design).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Histogram: HTTP request latency by `method`, `route` (template) and `status`.
pub const API_REQUEST_DURATION: &str = "api_request_duration_seconds";
/// Counter: security events received, by `source` and `outcome`.
pub const SECURITY_EVENTS: &str = "security_events_total";
/// Histogram: time from event to stored alert.
pub const ALERT_PROCESSING_DURATION: &str = "alert_processing_duration_seconds";
/// Histogram: response action run time, by `action_type` and `status`.
pub const ACTION_EXECUTION_DURATION: &str = "action_execution_duration_seconds";
/// Counter: alerts created, by `source` and `severity`.
pub const ALERTS_CREATED: &str = "alerts_created_total";
/// Counter: events the Loki forwarder pushed (`[loki] forward`). The LLM metrics
/// (`llm_requests_total`, ...) are named in `vigil_integrations::llm::metrics`.
pub const LOKI_FORWARDED: &str = "loki_forwarded_events_total";
/// Counter: login attempts by `outcome`.
pub const LOGINS: &str = "auth_logins_total";
/// Counter: vectors scored by the ML engine, by `model` (feature set) and `prediction`
/// (`anomaly`, `normal`, `no_model`).
pub const ML_PREDICTIONS: &str = "ml_predictions_total";
/// Histogram: time to train one model, by `model` (feature set).
pub const ML_TRAINING_DURATION: &str = "ml_training_duration_seconds";
/// Gauge: the ingest memory budget, bytes (`ingest.memory_budget_bytes`).
pub const INGEST_MEMORY_BUDGET: &str = "ingest_memory_budget_bytes";
/// Gauge: bytes of the ingest memory budget held by batches in flight now.
pub const INGEST_MEMORY_INFLIGHT: &str = "ingest_memory_inflight_bytes";
/// Gauge: the most bytes of the ingest memory budget ever held at once.
pub const INGEST_MEMORY_PEAK: &str = "ingest_memory_inflight_peak_bytes";
/// Counter: requests for budget refused because it was in use (HTTP answered 503, syslog
/// UDP batches refused).
pub const INGEST_MEMORY_REFUSED: &str = "ingest_memory_refused_total";
/// Counter: ingest requests refused by a credential's rate limit, by `route`.
pub const INGEST_RATE_LIMITED: &str = "ingest_rate_limited_total";
/// Gauge: outbox events not yet dispatched to every sink (all organizations).
pub const OUTBOX_PENDING: &str = "outbox_pending";

/// Counter: webhook attempts by `result`: `delivered`, `retry` (failed, tried again later),
/// `dead` (failed past the maximum age), `gone` (410: endpoint disabled), `test` (test
/// deliveries).
pub const WEBHOOK_DELIVERIES: &str = "webhook_deliveries_total";
/// Histogram: duration of one webhook attempt (request sent to answer read, or failure).
pub const WEBHOOK_DELIVERY_DURATION: &str = "webhook_delivery_duration_seconds";
/// Gauge: live stream clients connected to this process, by `transport` (`websocket`, `sse`).
pub const STREAM_CLIENTS: &str = "stream_clients";
/// Counter: jobs run, by `kind` and `result` (`ok`, `retry`, `dead`).
pub const JOBS_TOTAL: &str = "jobs_total";
/// Histogram: time one job run took, by `kind`.
pub const JOB_DURATION: &str = "job_duration_seconds";
/// Gauge: jobs waiting, running and delayed for a retry (the whole queue, every process).
pub const JOBS_PENDING: &str = "jobs_pending";

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the process-wide Prometheus recorder once and returns its handle (later calls,
/// e.g. several test servers in one process, share it).
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .expect("static buckets are valid")
                .build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; then ours renders nothing
            // from the facade, which tests would catch.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            vigil_integrations::llm::metrics::describe();
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(API_REQUEST_DURATION, Unit::Seconds, "HTTP request latency");
    describe_gauge!(
        STREAM_CLIENTS,
        "Live stream clients connected to this process, by transport"
    );
    describe_counter!(
        SECURITY_EVENTS,
        "Security events received, by source and outcome"
    );
    describe_histogram!(
        ALERT_PROCESSING_DURATION,
        Unit::Seconds,
        "Time from event to stored alert"
    );
    describe_histogram!(
        ACTION_EXECUTION_DURATION,
        Unit::Seconds,
        "Response action run time"
    );
    describe_counter!(ALERTS_CREATED, "Alerts created, by source and severity");
    describe_counter!(LOGINS, "Login attempts, by outcome");
    describe_counter!(
        ML_PREDICTIONS,
        "Vectors scored by the ML engine, by model and prediction"
    );
    describe_histogram!(
        ML_TRAINING_DURATION,
        Unit::Seconds,
        "Time to train one ML model"
    );
    describe_gauge!(
        INGEST_MEMORY_BUDGET,
        Unit::Bytes,
        "Ingest memory budget (ingest.memory_budget_bytes)"
    );
    describe_gauge!(
        INGEST_MEMORY_INFLIGHT,
        Unit::Bytes,
        "Ingest memory budget held by batches in flight"
    );
    describe_gauge!(
        INGEST_MEMORY_PEAK,
        Unit::Bytes,
        "Most ingest memory budget held at once since start"
    );
    describe_counter!(
        INGEST_MEMORY_REFUSED,
        "Ingest work refused because the memory budget was in use"
    );
    describe_counter!(
        INGEST_RATE_LIMITED,
        "Ingest requests refused by their credential's rate limit, by route"
    );
    describe_counter!(
        WEBHOOK_DELIVERIES,
        "Webhook attempts, by result (delivered, retry, dead, gone, test)"
    );
    describe_histogram!(
        WEBHOOK_DELIVERY_DURATION,
        Unit::Seconds,
        "Duration of one webhook attempt"
    );
    describe_counter!(JOBS_TOTAL, "Jobs run, by kind and result (ok, retry, dead)");
    describe_histogram!(
        JOB_DURATION,
        Unit::Seconds,
        "Time one job run took, by kind"
    );
    describe_gauge!(
        JOBS_PENDING,
        "Jobs waiting, running and delayed for a retry, whole queue"
    );
    describe_gauge!(
        OUTBOX_PENDING,
        "Alert events in the outbox not yet dispatched to every sink"
    );
    // Register the series later stages feed so dashboards and alerts can be built now.
    metrics::counter!(SECURITY_EVENTS, "source" => "none", "outcome" => "received").absolute(0);
}
