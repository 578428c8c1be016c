//! A TCP relay that can be shut or stalled, to make a real server (PostgreSQL) unreachable
//! on demand.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// Connections are cut and refused: a stopped server.
    Shut,
    /// Connections stay up but carry nothing: a network partition, where queries hang.
    Stalled,
}

/// Relays connections from its own loopback port to `target` while open.
#[derive(Debug)]
pub struct TcpGate {
    addr: SocketAddr,
    state: watch::Sender<State>,
}

impl TcpGate {
    /// Starts relaying to `target`, open.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind gate: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("gate address: {e}"));
        let (state, watch_state) = watch::channel(State::Open);
        #[allow(clippy::disallowed_methods, reason = "the relay lives as long as the test process")]
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut watch_state = watch_state.clone();
                #[allow(clippy::disallowed_methods, reason = "ends with its connection or when the gate changes")]
                tokio::spawn(async move {
                    let mut client = client;
                    // While stalled, a new connection waits, carrying nothing.
                    let Ok(now) = watch_state.wait_for(|s| *s != State::Stalled).await.map(|s| *s) else { return };
                    if now == State::Shut {
                        return;
                    }
                    let Ok(mut server) = TcpStream::connect(target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
                        _ = watch_state.wait_for(|s| *s != State::Open) => {}
                    }
                    // Shut: both ends close now. Stalled: they stay open, silent, until the
                    // gate changes again, and are then cut.
                    if *watch_state.borrow() == State::Stalled {
                        let _ = watch_state.wait_for(|s| *s != State::Stalled).await;
                    }
                });
            }
        });
        TcpGate { addr, state }
    }

    /// Where clients connect instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Cuts every connection and refuses new ones, as a stopped server would.
    pub fn shut(&self) {
        self.state.send_replace(State::Shut);
    }

    /// Keeps every connection open but carries nothing over it (new ones too), as a network
    /// partition would: queries hang instead of failing.
    pub fn stall(&self) {
        self.state.send_replace(State::Stalled);
    }

    /// Relays again (connections stalled meanwhile are cut; clients reconnect).
    pub fn open(&self) {
        self.state.send_replace(State::Open);
    }
}
