//! Frame encode/decode micro-benchmarks (criterion): `cargo bench --bench codec`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nerves_hub_channel::codec::{decode_server_binary, decode_server_text, encode_client, Frame};
use nerves_hub_channel::{Message, Payload};
use serde_json::json;

fn push(payload: Payload) -> Message {
    Message {
        join_ref: Some("12".into()),
        msg_ref: Some("345".into()),
        topic: "device".into(),
        event: "fwup_progress".into(),
        payload,
    }
}

fn bench(c: &mut Criterion) {
    let small = push(Payload::json(&json!({"value": 42})));
    let blob = "x".repeat(200);
    let medium = push(Payload::json(
        &json!({"firmware_url": blob, "firmware_meta": {"uuid": "a-b-c", "version": "1.2.3"}}),
    ));
    let binary = push(Payload::Binary(vec![7u8; 256]));

    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(1));
    g.bench_function("json_small", |b| b.iter(|| encode_client(&small)));
    g.bench_function("json_256B", |b| b.iter(|| encode_client(&medium)));
    g.bench_function("binary_256B", |b| b.iter(|| encode_client(&binary)));
    g.finish();

    let reply = r#"["12","345","device","phx_reply",{"status":"ok","response":{}}]"#;
    let Ok(Frame::Text(server_push)) = encode_client(&medium) else {
        unreachable!()
    };
    let server_binary = {
        let mut b = vec![0u8, 2, 6, 6];
        b.extend_from_slice(b"12devicebinary");
        b.extend_from_slice(&[7u8; 256]);
        b
    };
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(1));
    g.bench_function("reply", |b| b.iter(|| decode_server_text(reply)));
    g.bench_function("json_256B", |b| b.iter(|| decode_server_text(&server_push)));
    g.bench_function("binary_256B", |b| {
        b.iter(|| decode_server_binary(&server_binary))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
