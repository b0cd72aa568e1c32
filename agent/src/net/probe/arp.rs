//! Who answers for an address on a link: ARP (IPv4) and neighbour
//! solicitation (IPv6). Every responder is reported, so two of them means a
//! duplicate address. With `free_check` the ARP request is an RFC 5227 probe
//! (sender 0.0.0.0), which asks "is anyone using this?" without claiming it.

use std::{
    collections::BTreeMap,
    mem::MaybeUninit,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6},
    path::PathBuf,
    time::{Duration, Instant},
};

use linkherd_proto::model::MacAddr;
use socket2::{Domain, Protocol, SockAddr, SockAddrStorage, SockFilter, Socket, Type};

use super::budget::{Pacer, Ticket};
use crate::net::{
    NetError,
    netns::{NsId, enter_expected},
};

/// The link to ask on, as the caller looked it up in the namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub mac: MacAddr,
    /// Our own address on the link, for the request's sender field.
    pub ipv4: Option<Ipv4Addr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArpSpec {
    pub netns: Option<PathBuf>,
    /// The namespace `netns` was checked to be (`None`: not checked).
    pub netns_id: Option<NsId>,
    pub link: Link,
    pub target: IpAddr,
    pub timeout: Duration,
    pub free_check: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Responder {
    pub mac: MacAddr,
    /// Time to the first answer from this MAC.
    pub rtt: Duration,
}

fn io(op: &'static str) -> impl Fn(std::io::Error) -> NetError {
    move |e| match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => NetError::PermissionDenied { op },
        _ => NetError::Io {
            op,
            detail: e.to_string(),
        },
    }
}

/// A `sockaddr_ll` for interface `index`, protocol `proto`, to `dest`.
fn link_addr(index: u32, proto: u16, dest: [u8; 6]) -> Result<SockAddr, NetError> {
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: sockaddr_ll is one of this platform's sockaddr types, and the
    // storage is zeroed, which is a valid sockaddr_ll.
    let ll = unsafe { storage.view_as::<libc::sockaddr_ll>() };
    ll.sll_family = libc::AF_PACKET as u16;
    ll.sll_protocol = proto.to_be();
    ll.sll_ifindex = i32::try_from(index).map_err(|_| NetError::Invalid {
        op: "arp",
        detail: format!("interface index {index}"),
    })?;
    ll.sll_halen = 6;
    ll.sll_addr[..6].copy_from_slice(&dest);
    let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `storage` holds a valid sockaddr_ll of length `len`.
    Ok(unsafe { SockAddr::new(storage, len) })
}

fn arp_request(link: &Link, target: Ipv4Addr, probe: bool) -> Vec<u8> {
    let sender = if probe {
        Ipv4Addr::UNSPECIFIED
    } else {
        link.ipv4.unwrap_or(Ipv4Addr::UNSPECIFIED)
    };
    let mut p = vec![0, 1, 0x08, 0x00, 6, 4, 0, 1];
    p.extend(link.mac.0);
    p.extend(sender.octets());
    p.extend([0u8; 6]);
    p.extend(target.octets());
    p
}

/// (sender MAC, sender IP) of an ARP reply.
fn parse_arp_reply(p: &[u8]) -> Option<(MacAddr, Ipv4Addr)> {
    // Ethernet (1) / IPv4 (0x0800), 6-byte and 4-byte addresses, a reply.
    if p.len() < 28
        || p[0..2] != [0, 1]
        || p[2..4] != [0x08, 0x00]
        || p[4..6] != [6, 4]
        || p[6..8] != [0, 2]
    {
        return None;
    }
    let mac = MacAddr(p[8..14].try_into().ok()?);
    let ip = Ipv4Addr::new(p[14], p[15], p[16], p[17]);
    Some((mac, ip))
}

/// Requests sent per probe while nobody has answered yet, spread over the
/// timeout (as arping repeats its request): one lost frame on a busy link
/// is not "no answer".
const REQUESTS: u32 = 3;

/// Sends the first request, then listens until `deadline` for answers,
/// sending again every third of the wait while none came (each resend only
/// when the packet budget has room at once).
fn collect(
    sock: &Socket,
    deadline: Instant,
    started: Instant,
    mut send: impl FnMut() -> Result<(), NetError>,
    pacer: &Pacer,
    mut parse: impl FnMut(&[u8]) -> Option<MacAddr>,
) -> Result<Vec<Responder>, NetError> {
    let mut seen: BTreeMap<MacAddr, Duration> = BTreeMap::new();
    let mut buf = [MaybeUninit::<u8>::uninit(); 1500];
    let every = deadline.saturating_duration_since(started) / REQUESTS;
    let (mut sent, mut next) = (1, started + every);
    send()?;
    loop {
        let now = Instant::now();
        let left = deadline.saturating_duration_since(now);
        if left.is_zero() {
            break;
        }
        if seen.is_empty() && sent < REQUESTS && now >= next {
            if pacer.send_one(now) {
                send()?;
            }
            sent += 1;
            next += every;
        }
        let wait = if seen.is_empty() && sent < REQUESTS {
            left.min(next.saturating_duration_since(now))
        } else {
            left
        };
        sock.set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .map_err(io("arp"))?;
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => return Err(io("arp")(e)),
        };
        // SAFETY: recv initialised the first `n` bytes.
        let data: Vec<u8> = buf[..n]
            .iter()
            .map(|b| unsafe { b.assume_init() })
            .collect();
        if let Some(mac) = parse(&data) {
            seen.entry(mac).or_insert_with(|| started.elapsed());
        }
    }
    let mut out: Vec<Responder> = seen
        .into_iter()
        .map(|(mac, rtt)| Responder { mac, rtt })
        .collect();
    out.sort_by_key(|r| r.rtt);
    Ok(out)
}

fn run_v4(spec: &ArpSpec, target: Ipv4Addr, pacer: &Pacer) -> Result<Vec<Responder>, NetError> {
    let eth_p_arp = libc::ETH_P_ARP as u16;
    let sock = Socket::new(
        Domain::PACKET,
        Type::DGRAM,
        Some(Protocol::from(i32::from(eth_p_arp.to_be()))),
    )
    .map_err(io("open ARP socket"))?;
    sock.bind(&link_addr(spec.link.index, eth_p_arp, [0; 6])?)
        .map_err(io("bind ARP socket"))?;
    sock.attach_filter(&reply_filter(target))
        .map_err(io("filter ARP socket"))?;
    let started = Instant::now();
    let request = arp_request(&spec.link, target, spec.free_check);
    let broadcast = link_addr(spec.link.index, eth_p_arp, [0xff; 6])?;
    let send = || {
        sock.send_to(&request, &broadcast)
            .map(|_| ())
            .map_err(io("send ARP request"))
    };
    collect(&sock, started + spec.timeout, started, send, pacer, |p| {
        parse_arp_reply(p)
            .filter(|(_, ip)| *ip == target)
            .map(|(mac, _)| mac)
    })
}

/// A classic BPF program for a probe's ARP socket: only replies (opcode 2)
/// sent by `target` reach it. On a busy link — 32 probes at once from one
/// namespace during a verification — each probe is then woken only by its
/// own answers, not by every ARP frame on the wire. (Offsets are from the
/// ARP header: the socket is SOCK_DGRAM.)
fn reply_filter(target: Ipv4Addr) -> [SockFilter; 6] {
    const LD_HALF: u16 = 0x28; // BPF_LD | BPF_H | BPF_ABS
    const LD_WORD: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET: u16 = 0x06; // BPF_RET | BPF_K
    [
        SockFilter::new(LD_HALF, 0, 0, 6),  // the opcode
        SockFilter::new(JEQ, 0, 3, 2),      // a reply, or drop
        SockFilter::new(LD_WORD, 0, 0, 14), // the sender's address
        SockFilter::new(JEQ, 0, 1, u32::from(target)),
        SockFilter::new(RET, 0, 0, 0xffff), // keep the frame
        SockFilter::new(RET, 0, 0, 0),      // drop it
    ]
}

/// ff02::1:ffXX:XXXX for `target`.
fn solicited_node(target: Ipv6Addr) -> Ipv6Addr {
    let o = target.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

fn run_v6(spec: &ArpSpec, target: Ipv6Addr, pacer: &Pacer) -> Result<Vec<Responder>, NetError> {
    let sock = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))
        .map_err(io("open ICMPv6 socket"))?;
    // Neighbour discovery is only accepted with hop limit 255 (RFC 4861).
    sock.set_multicast_hops_v6(255)
        .map_err(io("neighbour solicitation"))?;
    sock.set_unicast_hops_v6(255)
        .map_err(io("neighbour solicitation"))?;
    sock.set_multicast_if_v6(spec.link.index)
        .map_err(io("neighbour solicitation"))?;
    let mut ns = vec![135, 0, 0, 0, 0, 0, 0, 0];
    ns.extend(target.octets());
    ns.extend([1, 1]);
    ns.extend(spec.link.mac.0);
    let dest = SocketAddrV6::new(solicited_node(target), 0, 0, spec.link.index);
    let started = Instant::now();
    let dest = SockAddr::from(SocketAddr::V6(dest));
    let send = || {
        sock.send_to(&ns, &dest)
            .map(|_| ())
            .map_err(io("send neighbour solicitation"))
    };
    collect(&sock, started + spec.timeout, started, send, pacer, |p| {
        // Neighbour advertisement for our target, with its link-layer address.
        if p.len() < 24 || p[0] != 136 || p[8..24] != target.octets() {
            return None;
        }
        let mut opts = &p[24..];
        while opts.len() >= 8 {
            let len = usize::from(opts[1]) * 8;
            if len == 0 || len > opts.len() {
                break;
            }
            if opts[0] == 2 {
                return opts[2..8].try_into().ok().map(MacAddr);
            }
            opts = &opts[len..];
        }
        None
    })
}

/// Asks who has `spec.target` on the link, from inside the namespace. A
/// caller's probe holds its `ticket` on the thread until it ends; the
/// agent's own (address checks) pass `None`. Returns by the timeout.
pub async fn who_has(spec: ArpSpec, ticket: Option<Ticket>) -> Result<Vec<Responder>, NetError> {
    tokio::task::spawn_blocking(move || {
        let pacer = ticket
            .as_ref()
            .map_or_else(Pacer::unlimited, |t| t.pacer.clone());
        let _ns = enter_expected(spec.netns.as_deref(), spec.netns_id)?;
        if !pacer.send_one(Instant::now() + spec.timeout) {
            return Err(NetError::Busy {
                op: "arp",
                detail: "the probe packet budget had no room before the timeout".into(),
            });
        }
        let out = match spec.target {
            IpAddr::V4(t) => run_v4(&spec, t, &pacer),
            IpAddr::V6(t) => run_v6(&spec, t, &pacer),
        };
        drop(ticket);
        out
    })
    .await
    .map_err(|e| NetError::Io {
        op: "arp",
        detail: e.to_string(),
    })?
}

/// What the answers mean, in words.
pub fn verdict(target: IpAddr, responders: &[Responder], free_check: bool) -> String {
    let macs: Vec<String> = responders.iter().map(|r| r.mac.to_string()).collect();
    match (responders.len(), free_check) {
        (0, true) => format!("{target} is free: no one answered the probe"),
        (0, false) => format!("no answer: nothing on this link answers for {target}"),
        (1, true) => format!("{target} is in use by {}", macs[0]),
        (1, false) => format!("{target} is at {}", macs[0]),
        (n, _) => format!(
            "DUPLICATE ADDRESS: {target} is answered by {n} different MACs ({}): two hosts use the same address",
            macs.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The filter against the kernel (root only): of a request, another
    /// host's reply and the target's reply sent on a veth, the probe's
    /// socket receives the last alone.
    #[test]
    fn the_socket_filter_lets_only_the_targets_replies_through() {
        if !test_support::have_root("the ARP socket filter") {
            return;
        }
        let ns = test_support::TestNetns::new("arp-bpf");
        ns.ip(&["link", "add", "bf0", "type", "veth", "peer", "name", "bf1"]);
        ns.ip(&["link", "set", "bf0", "up"]);
        ns.ip(&["link", "set", "bf1", "up"]);
        let index = |n: &str| ns.link_json(n)["ifindex"].as_u64().expect("ifindex") as u32;
        let (tx_if, rx_if) = (index("bf0"), index("bf1"));
        let target = Ipv4Addr::new(10, 70, 0, 2);
        let frame = |op: u8, sender: Ipv4Addr| {
            let mut p = vec![0, 1, 8, 0, 6, 4, 0, op, 2, 0, 0, 0, 0, 1];
            p.extend(sender.octets());
            p.extend([0; 6]);
            p.extend([10, 70, 0, 1]);
            p
        };
        let arp = libc::ETH_P_ARP as u16;
        let seen = crate::net::netns::run_in(Some(&ns.path()), || {
            let open = || {
                Socket::new(
                    Domain::PACKET,
                    Type::DGRAM,
                    Some(Protocol::from(i32::from(arp.to_be()))),
                )
                .map_err(io("test socket"))
            };
            let rx = open()?;
            rx.bind(&link_addr(rx_if, arp, [0; 6])?)
                .map_err(io("bind"))?;
            rx.attach_filter(&reply_filter(target))
                .map_err(io("filter"))?;
            let tx = open()?;
            for f in [
                frame(1, target),
                frame(2, Ipv4Addr::new(10, 70, 0, 9)),
                frame(2, target),
            ] {
                tx.send_to(&f, &link_addr(tx_if, arp, [0xff; 6])?)
                    .map_err(io("send"))?;
            }
            rx.set_read_timeout(Some(Duration::from_millis(300)))
                .map_err(io("timeout"))?;
            let mut seen = Vec::new();
            let mut buf = [MaybeUninit::<u8>::uninit(); 1500];
            while let Ok(n) = rx.recv(&mut buf) {
                // SAFETY: recv initialised the first `n` bytes.
                seen.push(
                    buf[..n]
                        .iter()
                        .map(|b| unsafe { b.assume_init() })
                        .collect::<Vec<u8>>(),
                );
            }
            Ok(seen)
        })
        .expect("in the namespace");
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(
            parse_arp_reply(&seen[0]),
            Some((MacAddr([2, 0, 0, 0, 0, 1]), target))
        );
    }

    #[test]
    fn requests_and_probes() {
        let link = Link {
            index: 2,
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            ipv4: Some(Ipv4Addr::new(172, 16, 10, 10)),
        };
        let r = arp_request(&link, Ipv4Addr::new(172, 16, 10, 11), false);
        assert_eq!(r.len(), 28);
        assert_eq!(&r[14..18], &[172, 16, 10, 10]);
        let p = arp_request(&link, Ipv4Addr::new(172, 16, 10, 11), true);
        assert_eq!(&p[14..18], &[0, 0, 0, 0], "RFC 5227: sender 0.0.0.0");
        assert_eq!(parse_arp_reply(&r), None, "a request is not a reply");
    }

    #[test]
    fn solicited_node_address() {
        let t: Ipv6Addr = "fd00:10::1:2:3".parse().expect("ip");
        assert_eq!(
            solicited_node(t),
            "ff02::1:ff02:3".parse::<Ipv6Addr>().expect("ip")
        );
    }

    #[test]
    fn verdicts_say_what_it_means() {
        let r = |b| Responder {
            mac: MacAddr([2, 0, 0, 0, 0, b]),
            rtt: Duration::from_millis(1),
        };
        let t: IpAddr = "10.0.0.5".parse().expect("ip");
        assert!(
            verdict(t, &[r(1), r(2)], false)
                .starts_with("DUPLICATE ADDRESS: 10.0.0.5 is answered by 2")
        );
        assert_eq!(
            verdict(t, &[], true),
            "10.0.0.5 is free: no one answered the probe"
        );
        assert_eq!(
            verdict(t, &[r(1)], false),
            "10.0.0.5 is at 02:00:00:00:00:01"
        );
    }

    // Fuzzing, proptest-driven (issue 11): the reply parser reads bytes
    // straight off a packet socket, from anything on the link, so it must
    // take any frame without panicking, accept exactly the ARP replies for
    // Ethernet/IPv4, and read each field from its offset.
    mod fuzz {
        use proptest::prelude::*;

        use test_support::fuzz::config;

        use super::*;

        /// An ARP reply (RFC 826) for Ethernet and IPv4, with the
        /// padding a short frame may carry.
        fn reply(
            sender: [u8; 6],
            sip: [u8; 4],
            target: [u8; 6],
            tip: [u8; 4],
            pad: &[u8],
        ) -> Vec<u8> {
            let mut p = vec![0, 1, 0x08, 0x00, 6, 4, 0, 2];
            p.extend(sender);
            p.extend(sip);
            p.extend(target);
            p.extend(tip);
            p.extend(pad);
            p
        }

        /// What the parser should say, stated from RFC 826's layout.
        fn expected(p: &[u8]) -> Option<(MacAddr, Ipv4Addr)> {
            let is_reply = p.len() >= 28
                && p[0..2] == [0, 1]
                && p[2..4] == [0x08, 0x00]
                && p[4..6] == [6, 4]
                && p[6..8] == [0, 2];
            is_reply.then(|| {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(&p[8..14]);
                (MacAddr(mac), Ipv4Addr::new(p[14], p[15], p[16], p[17]))
            })
        }

        /// The corpus's ARP frames, from corpus/arp beside this file.
        const CORPUS: &[(&str, &[u8])] = &[
            ("reply.bin", include_bytes!("corpus/arp/reply.bin")),
            (
                "reply-padded.bin",
                include_bytes!("corpus/arp/reply-padded.bin"),
            ),
            ("request.bin", include_bytes!("corpus/arp/request.bin")),
            ("short.bin", include_bytes!("corpus/arp/short.bin")),
            (
                "rarp-reply.bin",
                include_bytes!("corpus/arp/rarp-reply.bin"),
            ),
            (
                "ipv6-ptype.bin",
                include_bytes!("corpus/arp/ipv6-ptype.bin"),
            ),
            ("empty.bin", include_bytes!("corpus/arp/empty.bin")),
        ];

        #[test]
        fn corpus_frames() {
            for (name, p) in CORPUS {
                assert_eq!(parse_arp_reply(p), expected(p), "{name}");
                let accepted = parse_arp_reply(p).is_some();
                assert_eq!(accepted, name.starts_with("reply"), "{name}");
            }
            let (mac, ip) = parse_arp_reply(CORPUS[0].1).expect("reply.bin");
            assert_eq!(
                (mac, ip),
                (
                    MacAddr([0x02, 0x42, 0xac, 0x10, 0x0a, 0x0b]),
                    Ipv4Addr::new(172, 16, 10, 11)
                )
            );
        }

        proptest! {
            #![proptest_config(config(1024))]

            /// Any bytes: no panic, and the answer RFC 826 gives.
            #[test]
            fn any_bytes(p in prop::collection::vec(any::<u8>(), 0..64)) {
                prop_assert_eq!(parse_arp_reply(&p), expected(&p));
            }

            /// Bytes that pass the header check more often than chance.
            #[test]
            fn near_replies(
                head in prop::sample::select(vec![
                    vec![0u8, 1, 8, 0, 6, 4, 0, 2],
                    vec![0, 1, 8, 0, 6, 4, 0, 1],
                    vec![0, 1, 8, 0, 0, 0, 0, 2],
                    vec![0, 1, 8, 0, 255, 255, 0, 2],
                    vec![0, 6, 8, 0, 6, 4, 0, 2],
                    vec![0, 1, 0x86, 0xdd, 6, 4, 0, 2],
                    vec![0, 1, 8, 0, 6, 4, 2, 2],
                ]),
                rest in prop::collection::vec(any::<u8>(), 0..40),
            ) {
                let p = [head, rest].concat();
                prop_assert_eq!(parse_arp_reply(&p), expected(&p));
            }

            /// A well-formed reply is accepted, its sender read from offsets
            /// 8 and 14, whatever the target fields and padding are.
            #[test]
            fn replies_are_read_field_by_field(
                sender in any::<[u8; 6]>(),
                sip in any::<[u8; 4]>(),
                target in any::<[u8; 6]>(),
                tip in any::<[u8; 4]>(),
                pad in prop::collection::vec(any::<u8>(), 0..32),
            ) {
                let p = reply(sender, sip, target, tip, &pad);
                prop_assert_eq!(parse_arp_reply(&p), Some((MacAddr(sender), Ipv4Addr::from(sip))));
            }

            /// One byte of a reply changed: a header byte the parser checks
            /// refuses it, a sender byte changes what is read, any other byte
            /// changes nothing. Cut below 28 bytes, it is refused.
            #[test]
            fn mutated_replies(
                sender in any::<[u8; 6]>(),
                sip in any::<[u8; 4]>(),
                at in 0usize..28,
                x in 1u8..=255,
                cut in 0usize..28,
            ) {
                let good = reply(sender, sip, [0; 6], [10, 0, 0, 1], &[]);
                let mut p = good.clone();
                p[at] ^= x;
                let got = parse_arp_reply(&p);
                match at {
                    0..=7 => prop_assert_eq!(got, None, "header byte {}", at),
                    8..=17 => {
                        let (mac, ip) = got.expect("a sender byte changed");
                        prop_assert_eq!(&mac.0[..], &p[8..14]);
                        prop_assert_eq!(&ip.octets()[..], &p[14..18]);
                        prop_assert!((mac.0, ip.octets()) != (sender, sip));
                    }
                    _ => prop_assert_eq!(got, Some((MacAddr(sender), Ipv4Addr::from(sip)))),
                }
                prop_assert_eq!(parse_arp_reply(&good[..cut]), None);
            }

            /// What `arp_request` builds is never taken for a reply, and
            /// turned into one (opcode 2) it is read back as our own link.
            #[test]
            fn requests_turned_replies_read_back(
                mac in any::<[u8; 6]>(),
                ipv4 in any::<Option<[u8; 4]>>(),
                target in any::<[u8; 4]>(),
                probe in any::<bool>(),
            ) {
                let link = Link { index: 1, mac: MacAddr(mac), ipv4: ipv4.map(Ipv4Addr::from) };
                let mut p = arp_request(&link, Ipv4Addr::from(target), probe);
                prop_assert_eq!(p.len(), 28);
                prop_assert_eq!(parse_arp_reply(&p), None);
                p[7] = 2;
                let sender = if probe { Ipv4Addr::UNSPECIFIED } else { link.ipv4.unwrap_or(Ipv4Addr::UNSPECIFIED) };
                prop_assert_eq!(parse_arp_reply(&p), Some((link.mac, sender)));
            }
        }
    }
}
