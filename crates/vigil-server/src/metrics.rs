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
    use metrics::{Unit, describe_counter, describe_histogram};
    describe_histogram!(API_REQUEST_DURATION, Unit::Seconds, "HTTP request latency");
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
    // Register the series later stages feed so dashboards and alerts can be built now.
    metrics::counter!(SECURITY_EVENTS, "source" => "none", "outcome" => "received").absolute(0);
}
