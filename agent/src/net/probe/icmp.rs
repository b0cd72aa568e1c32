//! ICMP echo (IPv4 and IPv6) over raw sockets, like iputils `ping`.
//!
//! Raw sockets rather than "ping" datagram sockets: those depend on
//! `net.ipv4.ping_group_range`, which is closed in a fresh namespace even
//! for root.

use std::{
    io::IoSliceMut,
    net::{IpAddr, SocketAddr},
    os::fd::AsRawFd,
    path::PathBuf,
    time::{Duration, Instant},
};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::sync::mpsc;

use super::budget::{Pacer, Ticket};
use crate::net::{
    NetError,
    netns::{NsId, enter_expected},
};

/// What to ping, from where, how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingSpec {
    /// `None`: the agent's own namespace.
    pub netns: Option<PathBuf>,
    /// The namespace `netns` was checked to be.
    pub netns_id: Option<NsId>,
    pub interface: Option<String>,
    pub to: IpAddr,
    pub count: u32,
    pub interval: Duration,
    /// How long to wait for each reply.
    pub timeout: Duration,
    /// ICMP payload bytes.
    pub size: usize,
}

/// One probe's fate, streamed as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PingEvent {
    Reply { seq: u16, rtt: Duration, ttl: u8 },
    Lost { seq: u16 },
}

/// The closing statistics, as iputils prints them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PingSummary {
    pub sent: u32,
    pub received: u32,
    pub min: Duration,
    pub avg: Duration,
    pub max: Duration,
    /// Mean deviation: sqrt(mean(rtt²) - mean(rtt)²).
    pub mdev: Duration,
}

impl PingSummary {
    pub fn loss_percent(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        f64::from(self.sent - self.received) * 100.0 / f64::from(self.sent)
    }

    fn from_rtts(sent: u32, rtts: &[Duration]) -> Self {
        let n = rtts.len();
        if n == 0 {
            return Self {
                sent,
                ..Self::default()
            };
        }
        let us: Vec<f64> = rtts.iter().map(|d| d.as_secs_f64() * 1e6).collect();
        let mean = us.iter().sum::<f64>() / n as f64;
        let mean_sq = us.iter().map(|x| x * x).sum::<f64>() / n as f64;
        let mdev = (mean_sq - mean * mean).max(0.0).sqrt();
        Self {
            sent,
            received: u32::try_from(n).unwrap_or(u32::MAX),
            min: rtts.iter().copied().min().unwrap_or_default(),
            max: rtts.iter().copied().max().unwrap_or_default(),
            avg: Duration::from_secs_f64(mean / 1e6),
            mdev: Duration::from_secs_f64(mdev / 1e6),
        }
    }
}

fn io(op: &'static str) -> impl Fn(std::io::Error) -> NetError {
    move |e| match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => NetError::PermissionDenied { op },
        Some(libc::ENODEV) => NetError::NotFound {
            what: "interface to bind the probe to".into(),
        },
        _ => NetError::Io {
            op,
            detail: e.to_string(),
        },
    }
}

/// RFC 1071 checksum.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo request. ICMPv6 checksums are filled in by the kernel.
fn echo_request(v4: bool, ident: u16, seq: u16, size: usize) -> Vec<u8> {
    let mut p = vec![if v4 { 8 } else { 128 }, 0, 0, 0];
    p.extend(ident.to_be_bytes());
    p.extend(seq.to_be_bytes());
    p.extend((0..size).map(|i| (i % 256) as u8));
    if v4 {
        let c = checksum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
    }
    p
}

/// The sequence number and TTL of an echo reply to us, if `buf` is one.
fn parse_reply(v4: bool, buf: &[u8], ident: u16, hop_limit: Option<u8>) -> Option<(u16, u8)> {
    let (icmp, ttl) = if v4 {
        let ihl = usize::from(buf.first()? & 0x0f) * 4;
        (buf.get(ihl..)?, *buf.get(8)?)
    } else {
        (buf, hop_limit.unwrap_or(0))
    };
    let reply_type = if v4 { 0 } else { 129 };
    if icmp.len() < 8 || icmp[0] != reply_type || u16::from_be_bytes([icmp[4], icmp[5]]) != ident {
        return None;
    }
    Some((u16::from_be_bytes([icmp[6], icmp[7]]), ttl))
}

/// Waits for our reply to `seq` until `deadline`.
fn await_reply(
    sock: &Socket,
    spec: &PingSpec,
    ident: u16,
    seq: u16,
    deadline: Instant,
) -> Result<Option<u8>, NetError> {
    let v4 = spec.to.is_ipv4();
    let mut buf = vec![0u8; spec.size + 128];
    let mut cmsg = nix::cmsg_space!(libc::c_int);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        sock.set_read_timeout(Some(left)).map_err(io("ping"))?;
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = match recvmsg::<SockaddrStorage>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        ) {
            Ok(m) => m,
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(io("ping")(e.into())),
        };
        let from: Option<IpAddr> = msg.address.and_then(|a: SockaddrStorage| {
            a.as_sockaddr_in()
                .map(|s| IpAddr::V4(s.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|s| IpAddr::V6(s.ip())))
        });
        let hop = msg.cmsgs().ok().and_then(|mut c| {
            c.find_map(|m| match m {
                ControlMessageOwned::Ipv6HopLimit(h) => u8::try_from(h).ok(),
                _ => None,
            })
        });
        let len = msg.bytes;
        if from != Some(spec.to) {
            continue;
        }
        if let Some((s, ttl)) = parse_reply(v4, &buf[..len], ident, hop)
            && s == seq
        {
            return Ok(Some(ttl));
        }
    }
}

static NEXT_IDENT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0x4c48);

impl PingSpec {
    /// When the whole ping must be over: every interval and the last
    /// reply's timeout. Pacing that slows the echoes never takes longer.
    pub fn deadline(&self, started: Instant) -> Instant {
        started + self.interval.saturating_mul(self.count) + self.timeout
    }
}

/// Sleeps until `until`, in short steps, so a ping whose client went away
/// (or whose deadline came) stops within 100 ms, not after a 60 s interval.
fn nap(until: Instant, events: &mpsc::Sender<PingEvent>) {
    const STEP: Duration = Duration::from_millis(100);
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || events.is_closed() {
            return;
        }
        std::thread::sleep(left.min(STEP));
    }
}

fn open_socket(spec: &PingSpec) -> Result<Socket, NetError> {
    let (domain, proto) = if spec.to.is_ipv4() {
        (Domain::IPV4, Protocol::ICMPV4)
    } else {
        (Domain::IPV6, Protocol::ICMPV6)
    };
    let sock = Socket::new(domain, Type::RAW, Some(proto)).map_err(io("open ICMP socket"))?;
    if let Some(dev) = &spec.interface {
        sock.bind_device(Some(dev.as_bytes()))
            .map_err(io("bind to interface"))?;
    }
    if !spec.to.is_ipv4() {
        sock.set_recv_hoplimit_v6(true).map_err(io("ping"))?;
    }
    Ok(sock)
}

fn run(
    spec: PingSpec,
    events: mpsc::Sender<PingEvent>,
    pacer: &Pacer,
) -> Result<PingSummary, NetError> {
    let _ns = enter_expected(spec.netns.as_deref(), spec.netns_id)?;
    let deadline = spec.deadline(Instant::now());
    let v4 = spec.to.is_ipv4();
    let sock = open_socket(&spec)?;
    // Raw ICMP sockets see every echo reply in the namespace: a distinct
    // identifier per probe keeps concurrent pings from taking each other's.
    let ident =
        (std::process::id() as u16) ^ NEXT_IDENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dest = SockAddr::from(SocketAddr::new(spec.to, 0));
    let mut rtts = Vec::new();
    let mut sent = 0;
    for n in 0..spec.count {
        if !pacer.send_one(deadline) || events.is_closed() {
            break;
        }
        let seq = (n % 65_536) as u16;
        let started = Instant::now();
        let packet = echo_request(v4, ident, seq, spec.size);
        sent += 1;
        let event = match sock.send_to(&packet, &dest) {
            Ok(_) => {
                let wait = (started + spec.timeout).min(deadline);
                match await_reply(&sock, &spec, ident, seq, wait)? {
                    Some(ttl) => {
                        let rtt = started.elapsed();
                        rtts.push(rtt);
                        PingEvent::Reply { seq, rtt, ttl }
                    }
                    None => PingEvent::Lost { seq },
                }
            }
            // No route, unreachable: the probe was not answered.
            Err(_) => PingEvent::Lost { seq },
        };
        if events.blocking_send(event).is_err() {
            // The caller went away: stop probing.
            break;
        }
        if n + 1 < spec.count {
            nap((started + spec.interval).min(deadline), &events);
        }
    }
    Ok(PingSummary::from_rtts(sent, &rtts))
}

/// Pings on a blocking-pool thread inside the namespace, streaming each
/// reply or loss to `events`; returns the summary by the spec's deadline.
/// The thread holds `ticket` (its slot and pacer) until it ends.
pub async fn ping(
    spec: PingSpec,
    events: mpsc::Sender<PingEvent>,
    ticket: Ticket,
) -> Result<PingSummary, NetError> {
    tokio::task::spawn_blocking(move || run(spec, events, &ticket.pacer))
        .await
        .map_err(|e| NetError::Io {
            op: "ping",
            detail: e.to_string(),
        })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_an_echo_request_verifies() {
        let p = echo_request(true, 0x1234, 7, 56);
        assert_eq!(checksum(&p), 0, "a packet with its checksum sums to zero");
        assert_eq!((p[0], p[1]), (8, 0));
    }

    #[test]
    fn replies_are_matched_by_ident_and_seq() {
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 61, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        ip.extend([0, 0, 0, 0, 0x12, 0x34, 0, 7]);
        assert_eq!(parse_reply(true, &ip, 0x1234, None), Some((7, 61)));
        assert_eq!(
            parse_reply(true, &ip, 0x9999, None),
            None,
            "someone else's ping"
        );
        let v6 = [129, 0, 0, 0, 0x12, 0x34, 0, 9];
        assert_eq!(parse_reply(false, &v6, 0x1234, Some(64)), Some((9, 64)));
    }

    #[test]
    fn summary_statistics_like_iputils() {
        let ms = Duration::from_millis;
        let s = PingSummary::from_rtts(4, &[ms(1), ms(3)]);
        assert_eq!(
            (s.sent, s.received, s.min, s.max, s.avg),
            (4, 2, ms(1), ms(3), ms(2))
        );
        assert_eq!(s.mdev, ms(1));
        assert_eq!(s.loss_percent(), 50.0);
    }
}
