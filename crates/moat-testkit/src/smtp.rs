//! A minimal SMTP server that accepts every message and keeps it, for testing mail moat sends.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The sink; it stops when dropped.
pub struct SmtpSink {
    addr: SocketAddr,
    messages: Arc<Mutex<Vec<String>>>,
    _server: tokio::task::JoinHandle<()>,
}

impl SmtpSink {
    /// Starts it on an ephemeral loopback port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind smtp: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("smtp address: {e}"));
        let messages = Arc::new(Mutex::new(Vec::new()));
        let kept = messages.clone();
        #[allow(clippy::disallowed_methods, reason = "the sink lives as long as its handle")]
        let server = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let kept = kept.clone();
                #[allow(clippy::disallowed_methods, reason = "one connection at a time, ended with the test")]
                tokio::spawn(async move {
                    let _ = converse(socket, kept).await;
                });
            }
        });
        SmtpSink { addr, messages, _server: server }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every message received, whole (headers and body).
    pub fn messages(&self) -> Vec<String> {
        self.messages.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

async fn converse(socket: tokio::net::TcpStream, kept: Arc<Mutex<Vec<String>>>) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sink ESMTP\r\n").await?;
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_ascii_uppercase();
        if command.starts_with("EHLO") || command.starts_with("HELO") {
            write.write_all(b"250-sink\r\n250 8BITMIME\r\n").await?;
        } else if command.starts_with("DATA") {
            write.write_all(b"354 end with .\r\n").await?;
            let mut message = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 || line.trim_end() == "." {
                    break;
                }
                message.push_str(&line);
            }
            if let Ok(mut all) = kept.lock() {
                all.push(message);
            }
            write.write_all(b"250 kept\r\n").await?;
        } else if command.starts_with("QUIT") {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            write.write_all(b"250 ok\r\n").await?;
        }
    }
}
