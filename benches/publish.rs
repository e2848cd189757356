//! Event publishing to a real nats-server (JetStream, file store, loopback): the broker round
//! trip of one event (publish -> ack, the floor), and how fast the publisher drains a full
//! outbox (round trip + marking each event delivered in SQLite). Prints a table.
//! `cargo bench --bench publish` (N = 5000); under `cargo test` a 50-event smoke run.

use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use facewatch::events::nats::{NatsOptions, NatsSink};
use facewatch::events::outbox;
use facewatch::events::publisher::{Publisher, SinkConfig};
use facewatch::metrics::Metrics;
use serde_json::json;
use tokio::sync::Notify;

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let n: usize = if std::env::args().any(|a| a == "--bench") { 5000 } else { 50 };
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let store = tempfile::tempdir().unwrap();
    let bin = ["/usr/sbin/nats-server", "/usr/local/bin/nats-server", "nats-server"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("nats-server");
    let mut server = Command::new(bin)
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(store.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server (scripts/setup.sh installs it)");
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let nats = NatsOptions {
        url: facewatch::secret::SecretUrl::new(format!("nats://127.0.0.1:{port}")),
        stream: "FACEWATCH".into(),
        replicas: 1,
        max_age: Duration::from_secs(86_400),
        duplicate_window: Duration::from_secs(3600),
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    // A typical alert.created event (no crop): about 700 bytes.
    let data = json!({"alert_id": "01a2...", "list": "wanted", "subject": "S-1234", "score": 0.961, "threshold": 0.94,
        "severity": "high", "bbox": [87.0, 68.3, 83.6, 118.1], "quality": {"face_px": 83.6, "sharpness": 64.3,
        "brightness": 131.7, "yaw_deg": -6.1, "pitch_deg": 0.5, "overall": 0.93}, "models": {"detector": {"name":
        "yunet-2023mar", "sha256": "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"}, "embedder": {"name":
        "dlib-resnet-v1", "sha256": "3d2e8d51e2a46fdbbf2b39dbd4f0c38e34d2b00b2b8e28b3cbd1f1a9b9d1e7c3"}}});

    // 1. The floor: one publish + ack at a time.
    let mut lat: Vec<f64> = rt.block_on(async {
        let sink = NatsSink::connect(&nats).await.expect("connect");
        let payload = Bytes::from(data.to_string());
        let mut lat = Vec::with_capacity(n);
        for i in 0..n {
            let t = Instant::now();
            sink.publish(
                format!("facewatch.bench.cam.alert.created.{}", i % 4),
                &format!("floor-{i}"),
                payload.clone(),
            )
            .await
            .expect("publish");
            lat.push(t.elapsed().as_secs_f64() * 1e3);
        }
        lat
    });
    lat.sort_by(f64::total_cmp);

    // 2. The publisher draining a full outbox.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("facewatch.db");
    {
        let mut c = facewatch::db::connect(&db).unwrap();
        c.execute_batch(outbox::SCHEMA).unwrap();
        let tx = c.transaction().unwrap();
        for i in 0..n {
            outbox::append(&tx, "alert.created", &format!("gate-{}", i % 4), &data).unwrap();
        }
        tx.commit().unwrap();
    }
    let metrics = Arc::new(Metrics::default());
    let sink = SinkConfig::Nats(nats);
    let publisher = Publisher::new(
        db.clone(),
        "bench".into(),
        sink,
        Duration::from_secs(1),
        metrics.clone(),
        Arc::new(Notify::new()),
    )
    .unwrap();
    let (stop_tx, stop_rx) = facewatch::shutdown::channel();
    let t = Instant::now();
    let secs = rt.block_on(async {
        let task = tokio::spawn(publisher.run(stop_rx, Duration::from_secs(120)));
        // Stop as soon as it drained (the stop lets `run` return when the outbox is empty).
        stop_tx.fire();
        task.await.unwrap();
        t.elapsed().as_secs_f64()
    });
    let c = facewatch::db::connect(&db).unwrap();
    let (left, _) = outbox::depth(&c).unwrap();
    assert_eq!(left, 0, "the publisher left events behind");
    let _ = server.kill();
    let _ = server.wait();

    println!("event publishing, {n} events of {} bytes, nats-server {} on loopback", data.to_string().len(), bin);
    println!("| measure | value |\n|---|---|");
    println!(
        "| broker round trip p50 / p99 (publish -> ack) | {:.3} ms / {:.3} ms |",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
    println!("| round trips per second (one in flight) | {:.0} |", 1e3 / (lat.iter().sum::<f64>() / n as f64));
    println!("| publisher drain: events per second (ack + mark delivered) | {:.0} |", n as f64 / secs);
    println!("| publisher: events acknowledged | {} |", metrics.published.get());
}
