//! The accept loop every TCP front-end shares: a bound on clients served
//! at once (more are closed at once, with a debug line), one task each.

use crate::ctx::MAX_CLIENTS;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

/// Accepts on `listener` forever, running `serve` for each client.
pub async fn accept_loop<F, Fut>(what: String, listener: TcpListener, serve: F)
where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    loop {
        let (s, from) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "{what}: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            debug!(client = %from, "{what}: too many clients ({MAX_CLIENTS}); closing this one");
            continue;
        };
        let _ = s.set_nodelay(true);
        let fut = serve(s, from);
        tokio::spawn(async move {
            fut.await;
            drop(slot);
        });
    }
}
