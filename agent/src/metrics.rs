//! Prometheus metrics, served as text at `GET /metrics` beside `/healthz`
//! on the loopback health listener, written with `prometheus-client`.
//!
//! Every label set is bounded: object kinds and phases, repair results,
//! transaction outcomes, probe results and gRPC methods come from fixed
//! lists (a method the API does not have is counted as `other`), so no
//! caller can grow the series — there is no per-container, per-address or
//! per-endpoint label.

use std::{collections::BTreeSet, sync::OnceLock, time::Duration};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindPhase {
    pub kind: &'static str,
    pub phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindResult {
    pub kind: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Trigger {
    pub trigger: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Op {
    pub op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrpcCall {
    pub method: String,
    pub code: &'static str,
}

/// Object kinds the reconciler keeps.
const KINDS: [&str; 5] = ["vlan", "endpoint", "host-access", "promisc", "attachment"];

/// Latency buckets from 1 ms to about 65 s.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// The agent's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    objects: Family<KindPhase, Gauge>,
    pub drift: Family<Kind, Counter>,
    pub repairs: Family<KindResult, Counter>,
    pub passes: Family<Trigger, Counter>,
    pub pass_seconds: Histogram,
    pub transactions: Family<Outcome, Counter>,
    pub attach_seconds: Family<Op, Histogram>,
    pub endpoint_create_seconds: Histogram,
    pub probes: Family<KindResult, Counter>,
    grpc: Family<GrpcCall, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("linkherd");
        let objects = Family::<KindPhase, Gauge>::default();
        let drift = Family::<Kind, Counter>::default();
        let repairs = Family::<KindResult, Counter>::default();
        let passes = Family::<Trigger, Counter>::default();
        let pass_seconds = latency();
        let transactions = Family::<Outcome, Counter>::default();
        let attach_seconds = Family::<Op, Histogram>::new_with_constructor(latency as fn() -> _);
        let endpoint_create_seconds = latency();
        let probes = Family::<KindResult, Counter>::default();
        let grpc = Family::<GrpcCall, Counter>::default();
        let r = &mut registry;
        r.register(
            "objects",
            "Desired objects by kind and convergence phase",
            objects.clone(),
        );
        r.register(
            "drift_detected",
            "Drift found by reconcile passes, by object kind",
            drift.clone(),
        );
        r.register(
            "repairs",
            "Repairs by object kind and result (ok, error)",
            repairs.clone(),
        );
        r.register(
            "reconcile_passes",
            "Reconcile passes by what started them",
            passes.clone(),
        );
        r.register(
            "reconcile_pass_duration_seconds",
            "Time a reconcile pass took",
            pass_seconds.clone(),
        );
        r.register(
            "transactions",
            "Transactions by outcome",
            transactions.clone(),
        );
        r.register(
            "attachment_duration_seconds",
            "Container attach and detach latency",
            attach_seconds.clone(),
        );
        r.register(
            "endpoint_create_duration_seconds",
            "Endpoint create latency (CreateMacvlan)",
            endpoint_create_seconds.clone(),
        );
        r.register(
            "probes",
            "Connectivity probes by kind and result",
            probes.clone(),
        );
        r.register(
            "grpc_requests",
            "gRPC requests by method and status code",
            grpc.clone(),
        );
        Self {
            registry,
            objects,
            drift,
            repairs,
            passes,
            pass_seconds,
            transactions,
            attach_seconds,
            endpoint_create_seconds,
            probes,
            grpc,
        }
    }

    /// Sets the objects gauge from `counts` by (kind, phase): every kind
    /// and every one of `phases`, zero where none, so a phase emptied shows
    /// 0 rather than its old value.
    pub fn set_objects(
        &self,
        phases: &[&'static str],
        counts: &[((&'static str, &'static str), usize)],
    ) {
        for kind in KINDS {
            for &phase in phases {
                let n = counts
                    .iter()
                    .find(|((k, p), _)| *k == kind && *p == phase)
                    .map_or(0, |(_, n)| *n);
                self.objects
                    .get_or_create(&KindPhase { kind, phase })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }

    /// Counts one gRPC call of `path` that ended with `code`.
    pub fn grpc_call(&self, path: &str, code: tonic::Code) {
        let method = if api_methods().contains(path) {
            path.trim_start_matches('/').to_owned()
        } else {
            "other".to_owned()
        };
        self.grpc
            .get_or_create(&GrpcCall {
                method,
                code: code_name(code),
            })
            .inc();
    }

    /// Observes `took` for attach or detach.
    pub fn attach(&self, op: &'static str, took: Duration) {
        self.attach_seconds
            .get_or_create(&Op { op })
            .observe(took.as_secs_f64());
    }

    /// Counts a probe of `kind`: reached (`Ok(true)`), not reached
    /// (`Ok(false)`) or failed to run (`Err`).
    pub fn probe<E>(&self, kind: &'static str, outcome: Result<bool, E>) {
        let result = match outcome {
            Ok(true) => "reached",
            Ok(false) => "unreached",
            Err(_) => "error",
        };
        self.probes
            .get_or_create(&KindResult { kind, result })
            .inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Every `/package.Service/Method` path the agent serves.
fn api_methods() -> &'static BTreeSet<String> {
    static METHODS: OnceLock<BTreeSet<String>> = OnceLock::new();
    METHODS.get_or_init(|| {
        use prost::Message;
        let mut out = BTreeSet::new();
        for set in [
            linkherd_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
        ] {
            let Ok(fds) = prost_types::FileDescriptorSet::decode(set) else {
                continue;
            };
            for f in &fds.file {
                for s in &f.service {
                    for m in &s.method {
                        out.insert(format!("/{}.{}/{}", f.package(), s.name(), m.name()));
                    }
                }
            }
        }
        out
    })
}

fn code_name(c: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match c {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_are_one_series_and_known_ones_are_named() {
        let m = Metrics::new();
        for k in 0..100 {
            m.grpc_call(
                &format!("/linkherd.v1.VlanService/Nope{k}"),
                tonic::Code::Unimplemented,
            );
        }
        m.grpc_call("/linkherd.v1.VlanService/List", tonic::Code::Ok);
        let text = m.render();
        let grpc: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("linkherd_grpc_requests_total"))
            .collect();
        assert_eq!(grpc.len(), 2, "{grpc:?}");
        assert!(
            text.contains(
                "linkherd_grpc_requests_total{method=\"other\",code=\"UNIMPLEMENTED\"} 100"
            )
        );
        assert!(text.contains(
            "linkherd_grpc_requests_total{method=\"linkherd.v1.VlanService/List\",code=\"OK\"} 1"
        ));
    }

    #[test]
    fn every_kind_and_phase_has_a_series_once_set() {
        let m = Metrics::new();
        m.set_objects(&["in-sync", "fighting"], &[(("endpoint", "in-sync"), 3)]);
        let text = m.render();
        let n = text
            .lines()
            .filter(|l| l.starts_with("linkherd_objects{"))
            .count();
        assert_eq!(n, KINDS.len() * 2);
        assert!(text.contains("linkherd_objects{kind=\"endpoint\",phase=\"in-sync\"} 3"));
        assert!(text.contains("linkherd_objects{kind=\"vlan\",phase=\"fighting\"} 0"));
    }
}
