//! What a listener allows a connection: a cap on how many are open at once, and how long a
//! client may take over its request headers (the first request's, or the next one's on a
//! kept-alive connection). Without them, clients that open connections and trickle a header
//! byte now and then (slowloris) hold sockets and tasks for as long as they like.

use std::future::Ready;
use std::io;
use std::time::Duration;

use axum_server::Handle;
use axum_server::accept::Accept;
use futures::future::Either;

/// How the listener treats connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Open connections at most; one more is closed as soon as it is accepted.
    pub max: usize,
    /// The time a client has to send a request's headers, and the longest an idle
    /// connection stays open.
    pub header_read_timeout: Duration,
}

/// Configures `server` with `limits`, counting connections through `handle`.
pub fn limit<A, Acc>(
    mut server: axum_server::Server<A, Acc>,
    handle: Handle<A>,
    limits: ConnectionLimits,
) -> axum_server::Server<A, Capped<Acc, A>>
where
    A: axum_server::Address,
    Acc: Clone,
{
    server
        .http_builder()
        .http1()
        .header_read_timeout(limits.header_read_timeout);
    server
        .http_builder()
        .http2()
        .keep_alive_interval(limits.header_read_timeout)
        .keep_alive_timeout(limits.header_read_timeout);
    let inner = server.get_ref().clone();
    server
        .first_request_timeout(limits.header_read_timeout)
        .acceptor(Capped {
            inner,
            handle: handle.clone(),
            max: limits.max,
        })
        .handle(handle)
}

/// An acceptor that refuses a connection beyond `max` open ones (the count includes the one
/// being accepted), and otherwise hands it to `inner` (plain, or the TLS handshake).
#[derive(Clone)]
pub struct Capped<Acc, A: axum_server::Address> {
    inner: Acc,
    handle: Handle<A>,
    max: usize,
}

impl<Acc, A, I, S> Accept<I, S> for Capped<Acc, A>
where
    A: axum_server::Address,
    Acc: Accept<I, S>,
{
    type Stream = Acc::Stream;
    type Service = Acc::Service;
    type Future = Either<Ready<io::Result<(Acc::Stream, Acc::Service)>>, Acc::Future>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        if self.handle.connection_count() > self.max {
            metrics::counter!("commercex_connections_refused_total").increment(1);
            return Either::Left(std::future::ready(Err(io::Error::other(
                "too many open connections",
            ))));
        }
        Either::Right(self.inner.accept(stream, service))
    }
}
