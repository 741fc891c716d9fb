//! Managed Redis usually requires TLS: `rediss://` works, with the server's CA taken
//! from the system store (or `SSL_CERT_FILE`, as here with a test CA).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use testkit::{free_port, TestDatabase};

use crate::helpers::api_process;

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success(), "openssl {args:?}");
}

#[tokio::test]
async fn the_api_reaches_a_tls_redis_with_rediss_urls() {
    let dir = std::env::temp_dir().join(format!("prism-redis-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=prism test CA",
        ],
    );
    openssl(
        &dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").expect("ext");
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
        ],
    );
    let redis_port = free_port();
    let mut redis = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &redis_port.to_string(),
            "--tls-cert-file",
            "server.pem",
            "--tls-key-file",
            "server.key",
            "--tls-ca-cert-file",
            "ca.pem",
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server with TLS");

    let db = TestDatabase::migrated().await;
    let mut api = api_process(
        db.url(),
        &format!("rediss://127.0.0.1:{redis_port}"),
        "prism",
        &[(
            "SSL_CERT_FILE",
            dir.join("ca.pem").to_string_lossy().into_owned(),
        )],
    )
    .await;
    let client = reqwest::Client::new();
    let mut ready = None;
    for _ in 0..100 {
        if let Ok(reply) = client.get(format!("{}/ready", api.base)).send().await {
            ready = Some((reply.status(), reply.text().await.unwrap_or_default()));
            if ready
                .as_ref()
                .is_some_and(|(status, _)| *status == StatusCode::OK)
            {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    api.kill_9();
    let _ = redis.kill();
    let _ = redis.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let (status, body) = ready.expect("the api answered");
    assert_eq!(status, StatusCode::OK, "{body}");
}
