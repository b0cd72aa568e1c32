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
        // An IPv4 header: version 4, at least 5 words long.
        let first = *buf.first()?;
        let ihl = usize::from(first & 0x0f) * 4;
        if first >> 4 != 4 || ihl < 20 {
            return None;
        }
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
    fn impossible_ipv4_headers_are_not_replies() {
        let mut reply = vec![0u8; 28];
        // 28 zero bytes: version 0, IHL 0, then what would be an echo reply
        // with ident 0 — before, taken for one.
        assert_eq!(parse_reply(true, &reply, 0, None), None);
        reply[0] = 0x44; // version 4, IHL 4 (16 bytes): too short
        assert_eq!(parse_reply(true, &reply, 0, None), None);
        reply[0] = 0x65; // version 6
        assert_eq!(parse_reply(true, &reply, 0, None), None);
        reply[0] = 0x45;
        reply[8] = 64;
        assert_eq!(parse_reply(true, &reply, 0, None), Some((0, 64)));
    }

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

    // Fuzzing, proptest-driven (issue 11): a raw ICMP socket hands the
    // parser every ICMP packet the namespace receives, so it must take any
    // bytes without panicking, accept a reply only when its type and
    // identifier are ours, and read the sequence and TTL from their offsets.
    mod fuzz {
        use proptest::prelude::*;

        use test_support::fuzz::config;

        use super::*;

        /// An IPv4 header of `ihl` words (options filled with `opt`) and TTL
        /// `ttl`, then `icmp`.
        fn ipv4(ihl: u8, ttl: u8, opt: u8, icmp: &[u8]) -> Vec<u8> {
            let mut p = vec![
                0x40 | ihl,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                ttl,
                1,
                0,
                0,
                10,
                0,
                0,
                2,
                10,
                0,
                0,
                1,
            ];
            p.resize(usize::from(ihl) * 4, opt);
            p.extend(icmp);
            p
        }

        /// An echo message of `kind` (0 or 129: a reply).
        fn echo(kind: u8, code: u8, ident: u16, seq: u16, data: &[u8]) -> Vec<u8> {
            let mut p = vec![kind, code, 0, 0];
            p.extend(ident.to_be_bytes());
            p.extend(seq.to_be_bytes());
            p.extend(data);
            p
        }

        /// What the parser should say: where the ICMP message starts (after
        /// the IPv4 header's IHL words), and whether it is our reply.
        fn expected(v4: bool, buf: &[u8], ident: u16, hop: Option<u8>) -> Option<(u16, u8)> {
            let (start, ttl) = if v4 {
                let first = *buf.first()?;
                let ihl = usize::from(first & 0x0f) * 4;
                if first >> 4 != 4 || ihl < 20 {
                    return None;
                }
                (ihl, *buf.get(8)?)
            } else {
                (0, hop.unwrap_or(0))
            };
            let icmp = buf.get(start..)?;
            let ours = icmp.len() >= 8
                && icmp[0] == if v4 { 0 } else { 129 }
                && icmp[4..6] == ident.to_be_bytes();
            ours.then(|| (u16::from_be_bytes([icmp[6], icmp[7]]), ttl))
        }

        /// The corpus's ICMP packets, from corpus/icmp beside this file (IPv4 ones with
        /// their IP header, as a raw IPv4 socket returns them).
        /// (file, IPv4?, bytes, what parsing it as our reply to 0x1234 gives)
        type Case = (&'static str, bool, &'static [u8], Option<(u16, u8)>);

        const CORPUS: &[Case] = &[
            (
                "v4-reply.bin",
                true,
                include_bytes!("corpus/icmp/v4-reply.bin"),
                Some((7, 61)),
            ),
            (
                "v4-reply-options.bin",
                true,
                include_bytes!("corpus/icmp/v4-reply-options.bin"),
                Some((8, 64)),
            ),
            (
                "v4-request.bin",
                true,
                include_bytes!("corpus/icmp/v4-request.bin"),
                None,
            ),
            (
                "v4-other-ident.bin",
                true,
                include_bytes!("corpus/icmp/v4-other-ident.bin"),
                None,
            ),
            (
                "v4-unreachable.bin",
                true,
                include_bytes!("corpus/icmp/v4-unreachable.bin"),
                None,
            ),
            (
                "v4-truncated.bin",
                true,
                include_bytes!("corpus/icmp/v4-truncated.bin"),
                None,
            ),
            (
                "v4-ihl-past-end.bin",
                true,
                include_bytes!("corpus/icmp/v4-ihl-past-end.bin"),
                None,
            ),
            (
                "v6-reply.bin",
                false,
                include_bytes!("corpus/icmp/v6-reply.bin"),
                Some((9, 64)),
            ),
            (
                "v6-request.bin",
                false,
                include_bytes!("corpus/icmp/v6-request.bin"),
                None,
            ),
            (
                "v6-short.bin",
                false,
                include_bytes!("corpus/icmp/v6-short.bin"),
                None,
            ),
            (
                "empty.bin",
                true,
                include_bytes!("corpus/icmp/empty.bin"),
                None,
            ),
            (
                "empty.bin",
                false,
                include_bytes!("corpus/icmp/empty.bin"),
                None,
            ),
        ];

        #[test]
        fn corpus_packets() {
            for (name, v4, p, want) in CORPUS {
                let got = parse_reply(*v4, p, 0x1234, Some(64));
                assert_eq!(got, *want, "{name}");
                assert_eq!(got, expected(*v4, p, 0x1234, Some(64)), "{name}");
            }
            // Our own echo requests sum to zero with their checksum, as a
            // peer's reply to them would.
            let v4 = CORPUS[0].2;
            assert_eq!(checksum(&v4[20..]), 0, "v4-reply.bin's ICMP checksum");
        }

        proptest! {
            #![proptest_config(config(1024))]

            /// Any bytes, either family, any identifier: no panic, and the
            /// answer the layout gives.
            #[test]
            fn any_bytes(
                v4 in any::<bool>(),
                buf in prop::collection::vec(any::<u8>(), 0..96),
                ident in any::<u16>(),
                hop in any::<Option<u8>>(),
            ) {
                prop_assert_eq!(parse_reply(v4, &buf, ident, hop), expected(v4, &buf, ident, hop));
            }

            /// A reply to us is accepted, with its sequence and the TTL (IPv4:
            /// from the IP header, whatever its options) or hop limit (IPv6).
            #[test]
            fn our_replies_are_accepted(
                ihl in 5u8..=15,
                ttl in any::<u8>(),
                opt in any::<u8>(),
                code in any::<u8>(),
                ident in any::<u16>(),
                seq in any::<u16>(),
                data in prop::collection::vec(any::<u8>(), 0..64),
                hop in any::<Option<u8>>(),
            ) {
                let p = ipv4(ihl, ttl, opt, &echo(0, code, ident, seq, &data));
                prop_assert_eq!(parse_reply(true, &p, ident, None), Some((seq, ttl)));
                prop_assert_eq!(parse_reply(true, &p, ident, hop), Some((seq, ttl)), "IPv4 ignores a hop limit");
                let p6 = echo(129, code, ident, seq, &data);
                prop_assert_eq!(parse_reply(false, &p6, ident, hop), Some((seq, hop.unwrap_or(0))));
            }

            /// Another identifier, another ICMP type (a request, an error that
            /// quotes our request), or the other family's reply type: refused.
            #[test]
            fn others_are_refused(
                ihl in 5u8..=15,
                ident in any::<u16>(),
                other in any::<u16>(),
                kind in any::<u8>(),
                seq in any::<u16>(),
                data in prop::collection::vec(any::<u8>(), 0..64),
            ) {
                prop_assume!(other != ident);
                let p = ipv4(ihl, 64, 0, &echo(0, 0, other, seq, &data));
                prop_assert_eq!(parse_reply(true, &p, ident, None), None, "someone else's ping");
                prop_assert_eq!(parse_reply(false, &echo(129, 0, other, seq, &data), ident, None), None);
                if kind != 0 {
                    let p = ipv4(ihl, 64, 0, &echo(kind, 0, ident, seq, &data));
                    prop_assert_eq!(parse_reply(true, &p, ident, None), None, "type {}", kind);
                }
                if kind != 129 {
                    prop_assert_eq!(parse_reply(false, &echo(kind, 0, ident, seq, &data), ident, None), None, "type {}", kind);
                }
                // Our own request, as the kernel may loop it back.
                let req = echo_request(false, ident, seq, data.len());
                prop_assert_eq!(parse_reply(false, &req, ident, None), None);
                let req = ipv4(5, 64, 0, &echo_request(true, ident, seq, data.len()));
                prop_assert_eq!(parse_reply(true, &req, ident, None), None);
            }

            /// A reply with one byte changed, or cut short: never a panic; if
            /// still accepted, type and identifier are still ours and the
            /// sequence and TTL are what the bytes say.
            #[test]
            fn mutated_replies(
                v4 in any::<bool>(),
                ihl in 5u8..=15,
                ident in any::<u16>(),
                seq in any::<u16>(),
                data in prop::collection::vec(any::<u8>(), 0..32),
                at in any::<usize>(),
                x in 1u8..=255,
                cut in any::<usize>(),
            ) {
                let icmp = echo(if v4 { 0 } else { 129 }, 0, ident, seq, &data);
                let mut p = if v4 { ipv4(ihl, 64, 0, &icmp) } else { icmp };
                let i = at % p.len();
                p[i] ^= x;
                let got = parse_reply(v4, &p, ident, Some(1));
                prop_assert_eq!(got, expected(v4, &p, ident, Some(1)));
                let start = if v4 { usize::from(p[0] & 0x0f) * 4 } else { 0 };
                if got.is_some() {
                    prop_assert!(i != start && !(start + 4..start + 6).contains(&i), "byte {} changed, still accepted", i);
                }
                let short = &p[..cut % (p.len() + 1)];
                prop_assert_eq!(parse_reply(v4, short, ident, Some(1)), expected(v4, short, ident, Some(1)));
            }

            /// The request we send: the right type, our identifier and
            /// sequence, `size` payload bytes, a checksum that verifies; and a
            /// peer's reply to it (type changed, checksum fixed) is ours.
            #[test]
            fn requests_and_their_replies(
                ident in any::<u16>(),
                seq in any::<u16>(),
                size in 0usize..1500,
                ttl in any::<u8>(),
            ) {
                let p = echo_request(true, ident, seq, size);
                prop_assert_eq!(p.len(), 8 + size);
                prop_assert_eq!(checksum(&p), 0);
                prop_assert_eq!((p[0], p[1]), (8, 0));
                let mut reply = p.clone();
                reply[0] = 0;
                reply[2..4].copy_from_slice(&[0, 0]);
                let c = checksum(&reply);
                reply[2..4].copy_from_slice(&c.to_be_bytes());
                prop_assert_eq!(checksum(&reply), 0);
                prop_assert_eq!(parse_reply(true, &ipv4(5, ttl, 0, &reply), ident, None), Some((seq, ttl)));
                let mut p6 = echo_request(false, ident, seq, size);
                prop_assert_eq!(p6[0], 128);
                p6[0] = 129;
                prop_assert_eq!(parse_reply(false, &p6, ident, Some(ttl)), Some((seq, ttl)));
            }

            /// RFC 1071: any even-length data with its checksum appended sums
            /// to zero.
            #[test]
            fn checksums_verify(mut data in prop::collection::vec(any::<u8>(), 0..512)) {
                if data.len() % 2 == 1 {
                    data.push(0);
                }
                let c = checksum(&data);
                data.extend(c.to_be_bytes());
                prop_assert_eq!(checksum(&data), 0);
            }
        }
    }
}
