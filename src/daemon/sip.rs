//! The SIP edge: sockets in, [`Endpoint`] in one owner task, sockets out.
//!
//! ```text
//!  UDP socket task ──┐                          ┌──► UDP socket (try_send_to)
//!  TCP accept ─► per-connection task ─┬─► mpsc ─► core task (Endpoint) ─┤
//!                (StreamFramer, idle) │  bounded                        └──► per-connection
//!                ◄────────────────────┴──── bounded mpsc of writes ◄─────────  writer
//! ```
//!
//! Everything that arrives is bounded: the core queue, each connection's read buffer (the
//! framer), its write queue, the number of connections, and how long a connection may go
//! without completing a message.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

use crate::sip::endpoint::{ConnId, Destination, Endpoint};
use crate::sip::message::{Frame, MessageError, StreamFramer};
use crate::sip::transaction::LayerConfig;

/// Inputs waiting for the core. At ~1 ms per message worst case this is about a second of
/// backlog; beyond it UDP is shed and TCP readers wait (back-pressure to the peer).
const CORE_QUEUE: usize = 4096;

/// Concurrent TCP connections. A trunk uses a handful and each seat one; the cap keeps a
/// connection flood from exhausting file descriptors and memory (64 KiB framer each).
pub const MAX_TCP_CONNECTIONS: usize = 1024;

/// A TCP connection that completes no message for this long is closed: it holds a framer
/// buffer and a descriptor, and a slow-loris peer would hold them forever. RFC 5626 §4.4.1
/// keep-alives (CRLFCRLF every ≤ 120 s by default, usually far less) count as messages;
/// 30 s is what SIP stacks commonly allow an idle unregistered connection.
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Writes queued per connection; a peer that does not read loses its connection instead of
/// growing our memory.
const CONN_WRITE_QUEUE: usize = 64;

/// A write that cannot complete in this time means the peer stopped reading.
const TCP_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// After a fatal framing error, how long answers to earlier messages may still be written.
const CLOSE_LINGER: Duration = Duration::from_millis(500);

/// Stale ICMP errors to skip per send (see `udp_send`).
const UDP_SEND_ATTEMPTS: usize = 4;

const UDP_MAX_DATAGRAM: usize = 65_535;
const TCP_READ_CHUNK: usize = 8192;

enum Inbound {
    Datagram {
        src: SocketAddr,
        bytes: Bytes,
    },
    Opened {
        conn: ConnId,
        writer: mpsc::Sender<Bytes>,
    },
    Frame {
        conn: ConnId,
        src: SocketAddr,
        frame: Result<Frame, MessageError>,
    },
    Closed {
        conn: ConnId,
    },
}

/// Runs the SIP edge until aborted.
pub(super) async fn run(udp: Option<UdpSocket>, tcp: Option<TcpListener>) {
    let endpoint = match Endpoint::new(LayerConfig::default(), rand::random()) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "SIP endpoint could not start");
            return;
        }
    };
    let udp = udp.map(Arc::new);
    let (tx, rx) = mpsc::channel(CORE_QUEUE);
    let core = tokio::spawn(core_task(endpoint, rx, udp.clone()));
    let udp_task = {
        let tx = tx.clone();
        async move {
            match udp {
                Some(sock) => udp_reader(sock, tx).await,
                None => std::future::pending().await,
            }
        }
    };
    let tcp_task = async move {
        match tcp {
            Some(l) => tcp_acceptor(l, tx).await,
            None => std::future::pending().await,
        }
    };
    tokio::join!(udp_task, tcp_task);
    core.abort();
}

async fn core_task(
    mut endpoint: Endpoint,
    mut rx: mpsc::Receiver<Inbound>,
    udp: Option<Arc<UdpSocket>>,
) {
    let mut writers: HashMap<ConnId, mpsc::Sender<Bytes>> = HashMap::new();
    loop {
        let deadline = endpoint.poll_timeout().map(Instant::from_std);
        let input = tokio::select! {
            input = rx.recv() => match input {
                Some(i) => Some(i),
                None => return,
            },
            _ = sleep_until(deadline) => None,
        };
        let now = Instant::now().into_std();
        match input {
            None => endpoint.handle_timeout(now),
            Some(Inbound::Datagram { src, bytes }) => endpoint.handle_datagram(now, src, &bytes),
            Some(Inbound::Opened { conn, writer }) => {
                writers.insert(conn, writer);
            }
            Some(Inbound::Frame { conn, src, frame }) => {
                endpoint.handle_stream(now, conn, src, frame)
            }
            Some(Inbound::Closed { conn }) => {
                writers.remove(&conn);
            }
        }
        while let Some(out) = endpoint.poll_transmit() {
            match out.to {
                Destination::Udp(dst) => {
                    if let Some(sock) = &udp {
                        // Never block the core on a full socket buffer: UDP may lose it anyway
                        // and the transaction layer retransmits (§17.2.1).
                        udp_send(sock, &out.bytes, dst);
                    }
                }
                Destination::Stream(conn) => {
                    let full = writers
                        .get(&conn)
                        .is_some_and(|w| w.try_send(Bytes::copy_from_slice(&out.bytes)).is_err());
                    if full {
                        // Dropping the writer closes the connection (see `connection`).
                        tracing::debug!(conn = conn.0, "TCP peer not reading; closing");
                        writers.remove(&conn);
                    }
                }
            }
        }
    }
}

/// Sends without blocking. A send can fail with the ICMP error of an *earlier* datagram
/// (ECONNREFUSED from a peer that went away, reported once on the socket); that error says
/// nothing about this datagram, so it is retried a bounded number of times.
fn udp_send(sock: &UdpSocket, bytes: &[u8], dst: SocketAddr) {
    for _ in 0..UDP_SEND_ATTEMPTS {
        match sock.try_send_to(bytes, dst) {
            Ok(_) => return,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
            Err(e) => {
                tracing::debug!(error = %e, "UDP send failed");
                return;
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn udp_reader(sock: Arc<UdpSocket>, tx: mpsc::Sender<Inbound>) {
    let mut buf = vec![0u8; UDP_MAX_DATAGRAM];
    let mut shed: u64 = 0;
    loop {
        match sock.recv_from(&mut buf).await {
            Ok((n, src)) => {
                let bytes = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
                if tx.try_send(Inbound::Datagram { src, bytes }).is_err() {
                    shed += 1;
                    if shed.is_power_of_two() {
                        tracing::warn!(shed, "SIP core overloaded: UDP datagrams dropped");
                    }
                }
            }
            // ICMP errors surface here on Linux; they concern an earlier send, not the socket.
            Err(e) => {
                tracing::debug!(error = %e, "UDP receive error");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}

async fn tcp_acceptor(listener: TcpListener, tx: mpsc::Sender<Inbound>) {
    let slots = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
    let mut next_conn: u64 = 0;
    loop {
        let (stream, src) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(peer = %src, "TCP connection cap reached; refusing");
            drop(stream);
            continue;
        };
        next_conn = next_conn.wrapping_add(1);
        let conn = ConnId(next_conn);
        let (writer, writes) = mpsc::channel(CONN_WRITE_QUEUE);
        if tx.send(Inbound::Opened { conn, writer }).await.is_err() {
            return;
        }
        let tx = tx.clone();
        tokio::spawn(async move {
            connection(stream, src, conn, tx.clone(), writes).await;
            let _ = tx.send(Inbound::Closed { conn }).await;
            drop(slot);
        });
    }
}

/// One TCP connection: framing (RFC 3261 §18.3), the idle timeout, and writes.
async fn connection(
    stream: TcpStream,
    src: SocketAddr,
    conn: ConnId,
    tx: mpsc::Sender<Inbound>,
    mut writes: mpsc::Receiver<Bytes>,
) {
    let (mut rd, mut wr) = stream.into_split();
    let mut framer = StreamFramer::new();
    let mut buf = vec![0u8; TCP_READ_CHUNK];
    let mut idle_deadline = Instant::now() + TCP_IDLE_TIMEOUT;
    let mut reading = true;
    loop {
        tokio::select! {
            read = rd.read(&mut buf), if reading => {
                let n = match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if let Err(e) = framer.push(buf.get(..n).unwrap_or_default()) {
                    let _ = tx.send(Inbound::Frame { conn, src, frame: Err(e) }).await;
                    return;
                }
                while let Some(frame) = framer.next_frame() {
                    if frame.is_ok() {
                        idle_deadline = Instant::now() + TCP_IDLE_TIMEOUT;
                    }
                    if tx.send(Inbound::Frame { conn, src, frame }).await.is_err() {
                        return;
                    }
                }
                // A fatal framing error (ncl.dat, mcl01.dat): the next message start is
                // unknowable, so the connection must go (RFC 3261 §18.3). Answers to the
                // messages framed before it are still on their way from the core: linger.
                if framer.is_closed() {
                    reading = false;
                    idle_deadline = Instant::now() + CLOSE_LINGER;
                }
            }
            write = writes.recv() => {
                let Some(bytes) = write else { return };
                match tokio::time::timeout(TCP_WRITE_TIMEOUT, wr.write_all(&bytes)).await {
                    Ok(Ok(())) => {}
                    _ => return,
                }
            }
            _ = tokio::time::sleep_until(idle_deadline) => {
                if reading {
                    tracing::debug!(peer = %src, "TCP connection idle without a complete message; closing");
                }
                return;
            }
        }
    }
}
