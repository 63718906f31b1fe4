//! Round trip: OTLP → Arrow → Parquet → SQL → OTLP gives back every field and attribute type
//! of every generated span, log record and metric point (of all five types).

use std::sync::Arc;

use loupe_store::convert::{
    changes_from_batch, changes_to_batch, logs_from_batch, logs_to_batch, metrics_from_batch,
    metrics_to_batch, traces_from_batch, traces_to_batch,
};
use loupe_store::{QueryEngine, QueryLimits, Store, StoreConfig, SyncPolicy, Table};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1 as pl;
use opentelemetry_proto::tonic::metrics::v1 as pm;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1 as pt;
use proptest::prelude::*;
use prost::Message;

fn scalar() -> impl Strategy<Value = any_value::Value> {
    use any_value::Value as V;
    prop_oneof![
        "[a-z./ ]{0,12}".prop_map(V::StringValue),
        any::<bool>().prop_map(V::BoolValue),
        any::<i64>().prop_map(V::IntValue),
        any::<f64>().prop_map(V::DoubleValue),
        prop::collection::vec(any::<u8>(), 0..6).prop_map(V::BytesValue),
    ]
}

/// Nested values hold finite doubles: they are stored as OTLP/JSON, which has no NaN.
fn nested_scalar() -> impl Strategy<Value = any_value::Value> {
    use any_value::Value as V;
    prop_oneof![
        "[a-z]{0,6}".prop_map(V::StringValue),
        any::<i64>().prop_map(V::IntValue),
        (-1e9f64..1e9).prop_map(V::DoubleValue),
        any::<bool>().prop_map(V::BoolValue),
    ]
}

fn value() -> impl Strategy<Value = Option<AnyValue>> {
    use any_value::Value as V;
    let nested = prop::collection::vec(nested_scalar(), 0..3).boxed();
    prop_oneof![
        4 => scalar().prop_map(|v| Some(AnyValue { value: Some(v) })),
        1 => nested.clone().prop_map(|vs| Some(AnyValue {
            value: Some(V::ArrayValue(ArrayValue {
                values: vs.into_iter().map(|v| AnyValue { value: Some(v) }).collect(),
            })),
        })),
        1 => nested.prop_map(|vs| Some(AnyValue {
            value: Some(V::KvlistValue(KeyValueList {
                values: vs
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| KeyValue {
                        key: format!("k{i}"),
                        value: Some(AnyValue { value: Some(v) }),
                        ..Default::default()
                    })
                    .collect(),
            })),
        })),
        1 => Just(Some(AnyValue { value: None })),
        1 => Just(None),
    ]
}

fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    prop::collection::vec(("[a-z.]{1,8}", value()), 0..4).prop_map(|kvs| {
        kvs.into_iter()
            .map(|(key, value)| KeyValue {
                key,
                value,
                ..Default::default()
            })
            .collect()
    })
}

fn id(len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(1u8..=255, len)
}

fn time() -> impl Strategy<Value = u64> {
    // Around 2026, over two hours, so that segments split by hour.
    1_790_000_000_000_000_000u64..1_790_007_200_000_000_000
}

fn origin() -> impl Strategy<Value = (Resource, String, InstrumentationScope, String)> {
    (
        "[a-c]{1,2}",
        attributes(),
        0u32..3,
        "[a-z:/]{0,6}",
        ("[a-z]{0,4}", "[0-9.]{0,4}", attributes(), 0u32..2),
        "[a-z]{0,4}",
    )
        .prop_map(|(service, mut attrs, dropped, url, scope, scope_url)| {
            attrs.insert(
                0,
                KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(service)),
                    }),
                    ..Default::default()
                },
            );
            let resource = Resource {
                attributes: attrs,
                dropped_attributes_count: dropped,
                ..Default::default()
            };
            let scope = InstrumentationScope {
                name: scope.0,
                version: scope.1,
                attributes: scope.2,
                dropped_attributes_count: scope.3,
            };
            (resource, url, scope, scope_url)
        })
}

fn span() -> impl Strategy<Value = pt::Span> {
    let event =
        (time(), "[a-z]{0,6}", attributes(), 0u32..2).prop_map(|(t, name, a, d)| pt::span::Event {
            time_unix_nano: t,
            name,
            attributes: a,
            dropped_attributes_count: d,
        });
    let link = (id(16), id(8), "[a-z=]{0,5}", attributes(), 0u32..2, 0u32..3).prop_map(
        |(trace_id, span_id, trace_state, attributes, dropped_attributes_count, flags)| {
            pt::span::Link {
                trace_id,
                span_id,
                trace_state,
                attributes,
                dropped_attributes_count,
                flags,
            }
        },
    );
    (
        (
            id(16),
            id(8),
            "[a-z=]{0,5}",
            prop::option::of(id(8)),
            0u32..512,
        ),
        ("[a-zA-Z /]{0,10}", 0i32..6, time(), 0u64..5_000_000_000),
        (attributes(), 0u32..3),
        (prop::collection::vec(event, 0..3), 0u32..2),
        (prop::collection::vec(link, 0..2), 0u32..2),
        prop::option::of((1i32..3, "[a-z ]{0,8}")),
    )
        .prop_map(|(ids, what, attrs, events, links, status)| pt::Span {
            trace_id: ids.0,
            span_id: ids.1,
            trace_state: ids.2,
            parent_span_id: ids.3.unwrap_or_default(),
            flags: ids.4,
            name: what.0,
            kind: what.1,
            start_time_unix_nano: what.2,
            end_time_unix_nano: what.2 + what.3,
            attributes: attrs.0,
            dropped_attributes_count: attrs.1,
            events: events.0,
            dropped_events_count: events.1,
            links: links.0,
            dropped_links_count: links.1,
            status: status.map(|(code, message)| pt::Status { message, code }),
        })
}

fn log_record() -> impl Strategy<Value = pl::LogRecord> {
    (
        (time(), any::<u64>(), 0i32..25, "[A-Z]{0,5}"),
        value(),
        (attributes(), 0u32..2, 0u32..3),
        (
            prop::option::of(id(16)),
            prop::option::of(id(8)),
            "[a-z.]{0,8}",
        ),
    )
        .prop_map(|(t, body, a, ids)| pl::LogRecord {
            time_unix_nano: t.0,
            observed_time_unix_nano: t.1,
            severity_number: t.2,
            severity_text: t.3,
            body,
            attributes: a.0,
            dropped_attributes_count: a.1,
            flags: a.2,
            trace_id: ids.0.unwrap_or_default(),
            span_id: ids.1.unwrap_or_default(),
            event_name: ids.2,
        })
}

fn metric() -> impl Strategy<Value = pm::Metric> {
    use pm::metric::Data;
    use pm::number_data_point::Value as N;
    let number = (
        attributes(),
        time(),
        time(),
        0u32..2,
        prop_oneof![
            any::<f64>().prop_map(N::AsDouble),
            any::<i64>().prop_map(N::AsInt)
        ],
    )
        .prop_map(|(attributes, start, t, flags, v)| pm::NumberDataPoint {
            attributes,
            start_time_unix_nano: start,
            time_unix_nano: t,
            exemplars: vec![],
            flags,
            value: Some(v),
        })
        .boxed();
    let counts = prop::collection::vec(any::<u64>(), 0..5);
    let opt_f = prop::option::of(-1e6f64..1e6);
    let histogram = (
        attributes(),
        time(),
        any::<u64>(),
        (opt_f.clone(), opt_f.clone(), opt_f.clone()),
        counts.clone(),
        prop::collection::vec(-1e3f64..1e3, 0..4),
    )
        .prop_map(
            |(attributes, t, count, (sum, min, max), bucket_counts, explicit_bounds)| {
                pm::HistogramDataPoint {
                    attributes,
                    start_time_unix_nano: t - 1,
                    time_unix_nano: t,
                    count,
                    sum,
                    bucket_counts,
                    explicit_bounds,
                    exemplars: vec![],
                    flags: 0,
                    min,
                    max,
                }
            },
        );
    let buckets = prop::option::of((-5i32..5, counts.clone())).prop_map(|b| {
        b.map(
            |(offset, bucket_counts)| pm::exponential_histogram_data_point::Buckets {
                offset,
                bucket_counts,
            },
        )
    });
    let exponential = (
        attributes(),
        time(),
        (any::<u64>(), opt_f.clone(), -3i32..8, any::<u64>()),
        (buckets.clone(), buckets),
        (opt_f.clone(), opt_f, 0f64..1.0),
    )
        .prop_map(
            |(
                attributes,
                t,
                (count, sum, scale, zero_count),
                (positive, negative),
                (min, max, zero_threshold),
            )| {
                pm::ExponentialHistogramDataPoint {
                    attributes,
                    start_time_unix_nano: t,
                    time_unix_nano: t,
                    count,
                    sum,
                    scale,
                    zero_count,
                    positive,
                    negative,
                    flags: 1,
                    exemplars: vec![],
                    min,
                    max,
                    zero_threshold,
                }
            },
        );
    let summary = (
        attributes(),
        time(),
        any::<u64>(),
        -1e6f64..1e6,
        prop::collection::vec((0f64..1.0, -1e3f64..1e3), 0..3),
    )
        .prop_map(|(attributes, t, count, sum, q)| pm::SummaryDataPoint {
            attributes,
            start_time_unix_nano: t,
            time_unix_nano: t,
            count,
            sum,
            quantile_values: q
                .into_iter()
                .map(
                    |(quantile, value)| pm::summary_data_point::ValueAtQuantile { quantile, value },
                )
                .collect(),
            flags: 0,
        });
    let data = prop_oneof![
        number.clone().prop_map(|p| Data::Gauge(pm::Gauge {
            data_points: vec![p]
        })),
        (number, 0i32..3, any::<bool>()).prop_map(|(p, t, m)| Data::Sum(pm::Sum {
            data_points: vec![p],
            aggregation_temporality: t,
            is_monotonic: m,
        })),
        (histogram, 0i32..3).prop_map(|(p, t)| Data::Histogram(pm::Histogram {
            data_points: vec![p],
            aggregation_temporality: t,
        })),
        (exponential, 0i32..3).prop_map(|(p, t)| Data::ExponentialHistogram(
            pm::ExponentialHistogram {
                data_points: vec![p],
                aggregation_temporality: t,
            }
        )),
        summary.prop_map(|p| Data::Summary(pm::Summary {
            data_points: vec![p]
        })),
    ];
    ("[a-z.]{1,10}", "[a-z ]{0,6}", "[a-zA-Z{}]{0,3}", data).prop_map(
        |(name, description, unit, data)| pm::Metric {
            name,
            description,
            unit,
            metadata: vec![],
            data: Some(data),
        },
    )
}

/// Each item with its origin, encoded, sorted: the order-free content of requests.
fn flat_spans(requests: &[ExportTraceServiceRequest]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = requests
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|rs| {
            rs.scope_spans.iter().flat_map(move |ss| {
                ss.spans.iter().map(move |s| {
                    let mut s = s.clone();
                    // An unset status with no message is the same as none.
                    if s.status
                        .as_ref()
                        .is_some_and(|st| st.code == 0 && st.message.is_empty())
                    {
                        s.status = None;
                    }
                    pt::ResourceSpans {
                        resource: Some(rs.resource.clone().unwrap_or_default()),
                        scope_spans: vec![pt::ScopeSpans {
                            scope: Some(ss.scope.clone().unwrap_or_default()),
                            spans: vec![s],
                            schema_url: ss.schema_url.clone(),
                        }],
                        schema_url: rs.schema_url.clone(),
                    }
                    .encode_to_vec()
                })
            })
        })
        .collect();
    out.sort();
    out
}

fn flat_logs(requests: &[ExportLogsServiceRequest]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = requests
        .iter()
        .flat_map(|r| &r.resource_logs)
        .flat_map(|rl| {
            rl.scope_logs.iter().flat_map(move |sl| {
                sl.log_records.iter().map(move |l| {
                    pl::ResourceLogs {
                        resource: Some(rl.resource.clone().unwrap_or_default()),
                        scope_logs: vec![pl::ScopeLogs {
                            scope: Some(sl.scope.clone().unwrap_or_default()),
                            log_records: vec![l.clone()],
                            schema_url: sl.schema_url.clone(),
                        }],
                        schema_url: rl.schema_url.clone(),
                    }
                    .encode_to_vec()
                })
            })
        })
        .collect();
    out.sort();
    out
}

fn flat_metrics(requests: &[ExportMetricsServiceRequest]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = requests
        .iter()
        .flat_map(|r| &r.resource_metrics)
        .flat_map(|rm| {
            rm.scope_metrics.iter().flat_map(move |sm| {
                sm.metrics.iter().map(move |m| {
                    pm::ResourceMetrics {
                        resource: Some(rm.resource.clone().unwrap_or_default()),
                        scope_metrics: vec![pm::ScopeMetrics {
                            scope: Some(sm.scope.clone().unwrap_or_default()),
                            metrics: vec![m.clone()],
                            schema_url: sm.schema_url.clone(),
                        }],
                        schema_url: rm.schema_url.clone(),
                    }
                    .encode_to_vec()
                })
            })
        })
        .collect();
    out.sort();
    out
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "loupe-roundtrip-{name}-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Stores the batches, flushes them to Parquet and reads `table` back through SQL.
fn through_parquet(
    batches: Vec<(Table, datafusion::arrow::array::RecordBatch)>,
    table: Table,
) -> Vec<datafusion::arrow::array::RecordBatch> {
    let dir = temp_dir(table.name());
    let mut config = StoreConfig::new(&dir);
    config.wal_sync = SyncPolicy::None;
    let (store, _) = Store::open(config).unwrap();
    store.append(1, &[b"x"], batches).unwrap();
    store.flush().unwrap();
    assert_eq!(store.stats().hot_rows, 0, "everything is in segments");
    let engine = QueryEngine::new(Arc::new(store)).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sql = format!("SELECT * FROM {}", table.name());
    let limits = QueryLimits {
        max_rows: 1_000_000,
        ..Default::default()
    };
    let out = rt.block_on(engine.query(&sql, limits)).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    out.batches
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn spans_round_trip(groups in prop::collection::vec((origin(), prop::collection::vec(span(), 1..6)), 1..4)) {
        let request = ExportTraceServiceRequest {
            resource_spans: groups.into_iter().map(|((resource, url, scope, scope_url), spans)| pt::ResourceSpans {
                resource: Some(resource),
                scope_spans: vec![pt::ScopeSpans { scope: Some(scope), spans, schema_url: scope_url }],
                schema_url: url,
            }).collect(),
        };
        let batch = traces_to_batch(&request, 42).unwrap();
        let back: Vec<_> = through_parquet(vec![(Table::Spans, batch)], Table::Spans)
            .iter()
            .flat_map(|b| traces_from_batch(b).unwrap())
            .collect();
        prop_assert!(back.iter().all(|(received, _)| *received == 42));
        let back: Vec<_> = back.into_iter().map(|(_, r)| r).collect();
        prop_assert_eq!(flat_spans(&back), flat_spans(&[request]));
    }

    #[test]
    fn logs_round_trip(groups in prop::collection::vec((origin(), prop::collection::vec(log_record(), 1..6)), 1..4)) {
        let request = ExportLogsServiceRequest {
            resource_logs: groups.into_iter().map(|((resource, url, scope, scope_url), log_records)| pl::ResourceLogs {
                resource: Some(resource),
                scope_logs: vec![pl::ScopeLogs { scope: Some(scope), log_records, schema_url: scope_url }],
                schema_url: url,
            }).collect(),
        };
        let batch = logs_to_batch(&request, 7).unwrap();
        let back: Vec<_> = through_parquet(vec![(Table::Logs, batch)], Table::Logs)
            .iter()
            .flat_map(|b| logs_from_batch(b).unwrap())
            .map(|(_, r)| r)
            .collect();
        prop_assert_eq!(flat_logs(&back), flat_logs(&[request]));
    }

    #[test]
    fn metric_points_round_trip(groups in prop::collection::vec((origin(), prop::collection::vec(metric(), 1..6)), 1..4)) {
        let request = ExportMetricsServiceRequest {
            resource_metrics: groups.into_iter().map(|((resource, url, scope, scope_url), metrics)| pm::ResourceMetrics {
                resource: Some(resource),
                scope_metrics: vec![pm::ScopeMetrics { scope: Some(scope), metrics, schema_url: scope_url }],
                schema_url: url,
            }).collect(),
        };
        let batch = metrics_to_batch(&request, 7).unwrap();
        let back: Vec<_> = through_parquet(vec![(Table::MetricPoints, batch)], Table::MetricPoints)
            .iter()
            .flat_map(|b| metrics_from_batch(b).unwrap())
            .map(|(_, r)| r)
            .collect();
        prop_assert_eq!(flat_metrics(&back), flat_metrics(&[request]));
    }
}

#[test]
fn changes_round_trip() {
    use loupe_model::{ChangeEvent, ChangeKind, ObjectRef};
    let mut deploy = ChangeEvent::new(ChangeKind::Deployment, 1_790_000_000_000_000_000, "argocd");
    deploy.service = Some("shop/payment".into());
    deploy.version_from = Some("1.4.1".into());
    deploy.version_to = Some("1.4.2".into());
    deploy.end_time_unix_nano = Some(1_790_000_060_000_000_000);
    deploy.external_id = Some("delivery-1".into());
    let mut event = ChangeEvent::new(
        ChangeKind::KubernetesEvent,
        1_790_000_100_000_000_000,
        "k8s_events",
    );
    event.object = Some(ObjectRef {
        kind: "Pod".into(),
        name: "payment-7d9".into(),
        namespace: Some("shop".into()),
    });
    event.reason = Some("OOMKilled".into());
    let changes = vec![deploy, event];
    let batch = changes_to_batch(&changes, 9).unwrap();
    let back: Vec<ChangeEvent> = through_parquet(vec![(Table::Changes, batch)], Table::Changes)
        .iter()
        .flat_map(|b| changes_from_batch(b).unwrap())
        .map(|(received, c)| {
            assert_eq!(received, 9);
            c
        })
        .collect();
    let mut want = changes;
    let mut back = back;
    want.sort_by_key(|c| c.time_unix_nano);
    back.sort_by_key(|c| c.time_unix_nano);
    assert_eq!(back, want);
}

#[test]
fn invalid_items_are_left_out_as_the_graph_leaves_them_out() {
    let good = pt::Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        ..Default::default()
    };
    let bad = pt::Span {
        trace_id: vec![1; 3],
        span_id: vec![2; 8],
        ..Default::default()
    };
    let request = ExportTraceServiceRequest {
        resource_spans: vec![pt::ResourceSpans {
            scope_spans: vec![pt::ScopeSpans {
                spans: vec![good, bad],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    assert_eq!(traces_to_batch(&request, 0).unwrap().num_rows(), 1);
    assert_eq!(
        loupe_model::decode_traces(&request).rejected,
        1,
        "the model rejects the same span"
    );
}
