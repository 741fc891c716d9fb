//! [`StatementCounter`]: a proxy in front of Postgres that counts statements.

/// A TCP proxy in front of Postgres that counts the statements its clients send:
/// every `Query` (simple protocol: `BEGIN`, `COMMIT`, …) and every `Execute` (extended
/// protocol: each prepared statement run). Tests connect through [`Self::url`] to
/// prove how many round trips some work costs — a projection batch, a cached read —
/// deterministically, where a timing would not be.
#[derive(Debug)]
pub struct StatementCounter {
    port: u16,
    statements: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl StatementCounter {
    /// Listens on a free port and forwards every connection to `upstream`
    /// (`host:port`).
    pub async fn start(upstream: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port for the statement counter");
        let port = listener.local_addr().expect("its address").port();
        let statements = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let upstream = upstream.to_owned();
        let counter = std::sync::Arc::clone(&statements);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let counter = std::sync::Arc::clone(&counter);
                tokio::spawn(async move {
                    if let Ok(server) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = proxy(client, server, counter).await;
                    }
                });
            }
        });
        Self {
            port,
            statements,
            task,
        }
    }

    /// `url` (a database URL) pointed at the proxy, TLS off so messages can be read.
    pub fn url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("a URL");
        let (credentials, after_host) = match rest.split_once('@') {
            Some((credentials, after)) => (format!("{credentials}@"), after),
            None => (String::new(), rest),
        };
        let path = after_host.find('/').map_or("", |i| &after_host[i..]);
        let separator = if path.contains('?') { '&' } else { '?' };
        format!(
            "{scheme}://{credentials}127.0.0.1:{}{path}{separator}sslmode=disable",
            self.port
        )
    }

    /// Statements sent since the start (or the last [`Self::reset`]).
    pub fn count(&self) -> u64 {
        self.statements.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn reset(&self) {
        self.statements
            .store(0, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for StatementCounter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Forwards both ways, reading the client's messages to count statements.
async fn proxy(
    client: tokio::net::TcpStream,
    server: tokio::net::TcpStream,
    counter: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let downstream = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    });
    // Until the startup message (protocol 3.0) the client's messages carry no type byte.
    let mut started = false;
    loop {
        let mut header = [0u8; 5];
        let (kind, length) = if started {
            if client_read.read_exact(&mut header).await.is_err() {
                break;
            }
            let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
            (Some(header[0]), length as usize)
        } else {
            if client_read.read_exact(&mut header[..4]).await.is_err() {
                break;
            }
            (
                None,
                u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize,
            )
        };
        let mut body = vec![0u8; length.saturating_sub(4)];
        client_read.read_exact(&mut body).await?;
        match kind {
            Some(b'Q' | b'E') => {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            Some(_) => {}
            // 196608 is protocol 3.0; SSL and GSS requests are followed by a startup.
            None => started = body.get(..4) == Some(&[0, 3, 0, 0]),
        }
        if let Some(kind) = kind {
            server_write.write_all(&[kind]).await?;
            server_write.write_all(&header[1..5]).await?;
        } else {
            server_write.write_all(&header[..4]).await?;
        }
        server_write.write_all(&body).await?;
    }
    downstream.abort();
    Ok(())
}
