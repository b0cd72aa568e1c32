//! Fuzzing, proptest-driven, of every protobuf -> model conversion in
//! `linkherd_proto::convert` (issue 11, "Proof: fuzzing").
//!
//! These conversions are the agent's input validation: every gRPC request
//! a caller sends is turned into a model value by one of them, and every
//! state an agent reports is read back by `linkherdctl` through the others.
//! So they must take *any* message without panicking, and a value they
//! accept must hold the documented bounds (`model::bounds`) and the rules of
//! the model types, checked here by an independent re-statement of those
//! rules, not by calling the validators again.
//!
//! Inputs come three ways:
//! - arbitrary bytes, decoded with `prost::Message::decode` as each message
//!   type and then converted;
//! - the encodings of structured messages, mutated (bit flips, truncation,
//!   inserted and duplicated bytes), decoded as every message type;
//! - structured messages whose fields are mostly valid and sometimes hostile
//!   (empty, huge, NUL, unicode, `../`, spaces, `=` signs, out-of-range
//!   numbers and enum values, lists at and past their bounds), so that the
//!   accepting paths are reached as often as the refusing ones.
//!
//! Every failed validation is also checked as a client sees it: the error
//! echoes at most `MAX_ECHO` bytes of the value, and its gRPC status
//! carries the same field violation back.
//!
//! Each property runs 256 cases by default (`PROPTEST_CASES` overrides it);
//! see ctl/tests/corpus/README.md for longer runs.

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use ipnet::IpNet;
use linkherd_proto::{
    convert::netns_target,
    field_violations,
    model::{
        self, ArpProbe, DEFAULT_PROBE_TIMEOUT, DeleteEndpoints, Desired, EndpointSelector,
        EndpointSpec, EndpointState, HostAccessSpec, HostAccessState, IfName, Interface,
        InterfaceName, MAX_IFNAME_LEN, MAX_PING_COUNT, MAX_PROBE_TIMEOUT, MAX_PROMISC_LEASE,
        MIN_MTU, MacAddr, MacvlanMode, NetnsRef, ObjName, PingProbe, SetMtu, SetPromiscuous, SetUp,
        TcpProbe, ValidationError, VlanProtocol, VlanSpec, VlanState,
        bounds::{
            MAX_ADDRESSES, MAX_DESIRED_ENDPOINTS, MAX_DESIRED_NETWORKS, MAX_DESIRED_VLANS,
            MAX_ECHO, MAX_NETNS_NAME, MAX_PATH, MAX_ROUTES, MAX_SOURCE_MACS,
        },
    },
    pb::{self, netns_target::Target},
    validation_status,
};
use proptest::{prelude::*, sample::select};
use prost::Message;
use test_support::fuzz::config;

// ---------------------------------------------------------------------------
// Configuration

// ---------------------------------------------------------------------------
// Strategies: hostile and plausible field values

/// Strings meant to trip a validator: edge lengths, separators, NUL,
/// control and multi-byte characters, paths, `key=value`, huge values.
fn hostile() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "[a-z][a-z0-9]{0,6}",
        1 => Just(String::new()),
        3 => select(vec![
            ".", "..", "../etc/passwd", "/", "a/b", "eth0:1", "a b", " eth0", "eth0\n", "a=b",
            "=", "net=x name=y", "linkherd:v1 ep net=a name=b agent=x", "\0", "a\0b", "é",
            "ééééééé", "éééééééé", "💥", "\u{202e}eth0", "\u{feff}eth0", "\t", "\r\n", "%n%s",
            "${HOME}", "-", "_", "0", "-1", "4294967296", "NaN", "null", "~", "\u{85}",
            "\u{2028}", "\u{a0}",
        ])
        .prop_map(str::to_owned),
        2 => (
            "[a-zé.]",
            select(vec![14usize, 15, 16, 63, 64, 65, 80, 81, 127, 128, 129, 1023, 1024, 1025]),
        )
            .prop_map(|(c, n)| c.repeat(n)),
        1 => (any::<char>(), 1usize..300_000).prop_map(|(c, n)| c.to_string().repeat(n)),
        2 => any::<String>(),
        2 => "\\PC{0,24}",
    ]
    .boxed()
}

/// Mostly `valid`, one time in `1 + odds` hostile.
fn mostly(valid: impl Strategy<Value = String> + 'static, odds: u32) -> BoxedStrategy<String> {
    prop_oneof![odds => valid, 1 => hostile()].boxed()
}

fn ifname_ok() -> BoxedStrategy<String> {
    "[a-z][a-z0-9._-]{0,9}".boxed()
}

fn objname_ok() -> BoxedStrategy<String> {
    prop_oneof![4 => "[a-z][a-z0-9_]{0,8}", 1 => "[A-Za-z0-9_.-]{1,64}"].boxed()
}

/// Numbers at and around every bound the conversions know, and any.
fn edge_u32() -> BoxedStrategy<u32> {
    prop_oneof![
        3 => any::<u32>(),
        3 => select(vec![
            0u32, 1, 2, 67, 68, 69, 1500, 4094, 4095, 4096, 9000, 10_000, 10_001, 30_000,
            30_001, 60_000, 60_001, 65_000, 65_001, 65_535, 65_536, 86_400, 86_401,
            i32::MAX as u32, u32::MAX - 1, u32::MAX,
        ]),
        2 => 0u32..100,
    ]
    .boxed()
}

/// Mostly inside `valid`, sometimes any edge value.
fn plausible(valid: std::ops::RangeInclusive<u32>) -> BoxedStrategy<u32> {
    prop_oneof![3 => valid, 1 => edge_u32()].boxed()
}

/// Enum values: the defined ones most often, any `i32` otherwise.
fn enum_i32() -> BoxedStrategy<i32> {
    prop_oneof![4 => 0i32..8, 1 => any::<i32>(), 1 => select(vec![-1, i32::MIN, i32::MAX])].boxed()
}

fn ip_text() -> BoxedStrategy<String> {
    prop_oneof![
        2 => any::<Ipv4Addr>().prop_map(|a| a.to_string()),
        2 => any::<Ipv6Addr>().prop_map(|a| a.to_string()),
        4 => (0u8..3, any::<u8>()).prop_map(|(c, d)| format!("10.0.{c}.{d}")),
        2 => (0u16..6).prop_map(|x| format!("fd00::{x:x}")),
        1 => select(vec![
            "10.0.0.300", "010.0.0.1", "1.2.3", "1.2.3.4.5", "::ffff:10.0.0.1", "fe80::1%eth0",
            " 10.0.0.1", "10.0.0.1 ", "0.0.0.0", "255.255.255.255", "::", "[::1]", "10.0.0.1/24",
        ])
        .prop_map(str::to_owned),
        1 => hostile(),
    ]
    .boxed()
}

fn cidr_text() -> BoxedStrategy<String> {
    prop_oneof![
        2 => (any::<Ipv4Addr>(), 0u8..=34).prop_map(|(a, p)| format!("{a}/{p}")),
        1 => (any::<Ipv6Addr>(), 0u8..=130).prop_map(|(a, p)| format!("{a}/{p}")),
        5 => (0u8..3, any::<u8>(), select(vec![8u8, 16, 22, 24, 30, 31, 32]))
            .prop_map(|(c, d, p)| format!("10.0.{c}.{d}/{p}")),
        2 => (0u16..6, select(vec![48u8, 64, 127, 128]))
            .prop_map(|(x, p)| format!("fd00::{x:x}/{p}")),
        1 => select(vec![
            "10.0.0.1/33", "10.0.0.1/-1", "10.0.0.1/", "/24", "10.0.0.1/24/24", "10.0.0.1 /24",
            "::/0", "0.0.0.0/0", "10.0.0.1/024", "10.0.0.1/+24", "10.0.0.0/24", "10.0.0.255/24",
        ])
        .prop_map(str::to_owned),
        1 => hostile(),
    ]
    .boxed()
}

fn mac_text() -> BoxedStrategy<String> {
    let hex = |b: [u8; 6], sep: &str, upper: bool| {
        let s = b
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(sep);
        if upper { s.to_uppercase() } else { s }
    };
    prop_oneof![
        3 => (any::<[u8; 6]>(), any::<bool>(), any::<bool>())
            .prop_map(move |(b, dash, up)| hex(b, if dash { "-" } else { ":" }, up)),
        3 => any::<[u8; 6]>().prop_map(move |mut b| {
            b[0] = (b[0] & 0xfc) | 0x02;
            hex(b, ":", false)
        }),
        1 => select(vec![
            "+2:42:ac:10:0a:0a", "02:42:ac:10:0a", "02:42:ac:10:0a:0a:0b", "02:42:ac:10:0a:0",
            "02:42:ac:10:0a:0g", "02::42:ac:10:0a", "00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff",
            "02:42:AC:10:0A:0A", "02-42-ac-10-0a-0a", "02:42-ac:10-0a:0a", "é2:42:ac:10:0a:0a",
            "02:42:ac:10:0a:0a:", ":02:42:ac:10:0a:0a", "0x:42:ac:10:0a:0a",
        ])
        .prop_map(str::to_owned),
        1 => hostile(),
    ]
    .boxed()
}

fn netns_pb() -> BoxedStrategy<Option<pb::NetnsTarget>> {
    let t = |t: Target| Some(pb::NetnsTarget { target: Some(t) });
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(pb::NetnsTarget { target: None })),
        6 => mostly("[a-z][a-z0-9-]{0,12}", 3).prop_map(move |n| t(Target::Name(n))),
        2 => prop_oneof![
            hostile(),
            hostile().prop_map(|s| format!("/{s}")),
            select(vec!["/proc/1/ns/net", "/run/netns/../../etc/shadow", "/"]).prop_map(str::to_owned),
            (1usize..1100).prop_map(|n| format!("/{}", "p".repeat(n))),
        ]
        .prop_map(move |p| t(Target::Path(p))),
        2 => edge_u32().prop_map(move |p| t(Target::Pid(p))),
    ]
    .boxed()
}

/// A short list of `elem`, or (one time in ten) `bound` or `bound + 1`
/// copies of a short value: a list at and just past its bound.
fn list(
    elem: BoxedStrategy<String>,
    short: &'static str,
    bound: usize,
) -> BoxedStrategy<Vec<String>> {
    prop_oneof![
        9 => prop::collection::vec(elem, 0..4),
        1 => select(vec![bound, bound + 1]).prop_map(move |n| vec![short.to_owned(); n]),
    ]
    .boxed()
}

/// `count` distinct IPv4 host addresses in 10.0.0.0/8.
fn distinct_v4(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            let i = u32::try_from(i).expect("small") + 1;
            format!("10.{}.{}.{}/8", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff)
        })
        .collect()
}

fn counters_pb() -> BoxedStrategy<pb::Counters> {
    (any::<[u64; 7]>(), any::<[u64; 6]>())
        .prop_map(|(a, b)| pb::Counters {
            rx_packets: a[0],
            rx_bytes: a[1],
            rx_errors: a[2],
            rx_dropped: a[3],
            rx_over_errors: a[4],
            rx_frame_errors: a[5],
            multicast: a[6],
            tx_packets: b[0],
            tx_bytes: b[1],
            tx_errors: b[2],
            tx_dropped: b[3],
            tx_carrier_errors: b[4],
            collisions: b[5],
        })
        .boxed()
}

fn details_pb() -> BoxedStrategy<Option<pb::interface::Details>> {
    prop_oneof![
        2 => Just(None),
        1 => (enum_i32(), prop::collection::vec(mac_text(), 0..3)).prop_map(|(mode, source_macs)| {
            Some(pb::interface::Details::Macvlan(pb::MacvlanInfo { mode, source_macs }))
        }),
        1 => (edge_u32(), enum_i32(), any::<bool>()).prop_map(|(id, protocol, reorder_header)| {
            Some(pb::interface::Details::Vlan(pb::VlanInfo { id, protocol, reorder_header }))
        }),
    ]
    .boxed()
}

fn interface_pb() -> BoxedStrategy<pb::Interface> {
    let ids = (
        edge_u32(),
        hostile(),
        enum_i32(),
        hostile(),
        edge_u32(),
        hostile(),
    );
    let link = (
        prop_oneof![2 => Just(String::new()), 3 => mac_text()],
        edge_u32(),
        edge_u32(),
        edge_u32(),
        enum_i32(),
        enum_i32(),
    );
    let rest = (
        prop::collection::vec(hostile(), 0..3),
        any::<bool>(),
        any::<u32>(),
        prop::collection::vec(cidr_text().prop_map(|cidr| pb::IpAddress { cidr }), 0..3),
        prop::option::of(counters_pb()),
        prop_oneof![Just(String::new()), hostile()],
        any::<u32>(),
        details_pb(),
        prop::option::of((any::<u32>(), any::<bool>()).prop_map(
            |(remaining_seconds, revert_to)| pb::PromiscLease {
                remaining_seconds,
                revert_to,
            },
        )),
        prop_oneof![Just(String::new()), hostile()],
    );
    (ids, link, rest)
        .prop_map(
            |(
                (index, name, kind, kind_name, parent_index, parent),
                (mac, mtu, min_mtu, max_mtu, admin_state, oper_state),
                (
                    flags,
                    promiscuous,
                    promiscuity,
                    addresses,
                    counters,
                    alias,
                    group,
                    details,
                    promisc_lease,
                    master,
                ),
            )| pb::Interface {
                index,
                name,
                kind,
                kind_name,
                parent_index,
                parent,
                mac,
                mtu,
                min_mtu,
                max_mtu,
                admin_state,
                oper_state,
                flags,
                promiscuous,
                promiscuity,
                addresses,
                counters,
                alias,
                group,
                details,
                promisc_lease,
                master,
            },
        )
        .boxed()
}

/// Endpoint addresses: a few from two small subnets (so gateways and
/// duplicates meet), or a list at or past its bound.
fn endpoint_addresses() -> BoxedStrategy<Vec<String>> {
    let host = prop_oneof![
        6 => (0u8..2, 1u8..=254).prop_map(|(c, d)| format!("10.0.{c}.{d}/24")),
        2 => (1u16..6).prop_map(|x| format!("fd00::{x:x}/64")),
        2 => cidr_text(),
    ];
    prop_oneof![
        12 => prop::collection::vec(host, 0..4),
        1 => select(vec![MAX_ADDRESSES, MAX_ADDRESSES + 1]).prop_map(distinct_v4),
        1 => select(vec![MAX_ADDRESSES, MAX_ADDRESSES + 1])
            .prop_map(|n| vec!["10.0.0.1/24".to_owned(); n]),
    ]
    .boxed()
}

fn gateway_text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => Just(String::new()),
        3 => (0u8..2).prop_map(|c| format!("10.0.{c}.1")),
        1 => Just("fd00::1".to_owned()),
        1 => ip_text(),
    ]
    .boxed()
}

fn endpoint_wild() -> BoxedStrategy<pb::MacvlanEndpoint> {
    let names = (
        mostly(objname_ok(), 12),
        mostly(objname_ok(), 12),
        mostly(ifname_ok(), 12),
        prop_oneof![8 => 1i32..=5, 1 => enum_i32()],
        netns_pb(),
        prop_oneof![4 => Just(String::new()), 2 => ifname_ok(), 1 => hostile()],
    );
    let addressing = (
        endpoint_addresses(),
        gateway_text(),
        prop_oneof![3 => Just(String::new()), 2 => mac_text()],
        prop_oneof![3 => Just(0u32), 1 => edge_u32()],
        prop_oneof![
            4 => Just(Vec::new()),
            2 => prop::collection::vec(mac_text(), 1..4),
            1 => select(vec![MAX_SOURCE_MACS, MAX_SOURCE_MACS + 1])
                .prop_map(|n| vec!["02:00:00:00:00:01".to_owned(); n]),
        ],
    );
    let observed = (
        any::<[bool; 3]>(),
        prop_oneof![4 => Just(None), 1 => interface_pb().prop_map(Some)],
    );
    (names, addressing, observed)
        .prop_map(
            |(
                (network, name, parent, mode, netns, ifname),
                (addresses, gateway, mac, mtu, source_macs),
                ([owned, parent_created, netns_created], interface),
            )| pb::MacvlanEndpoint {
                network,
                name,
                parent,
                mode,
                netns,
                ifname,
                addresses,
                gateway,
                mac,
                mtu,
                source_macs,
                owned,
                interface,
                parent_created,
                netns_created,
            },
        )
        .boxed()
}

fn unicast_mac() -> BoxedStrategy<String> {
    any::<[u8; 6]>()
        .prop_map(|mut b| {
            b[0] = (b[0] & 0xfc) | 0x02;
            MacAddr(b).to_string()
        })
        .boxed()
}

/// An endpoint that validates (by construction), to be mutated.
fn endpoint_valid() -> BoxedStrategy<pb::MacvlanEndpoint> {
    let netns = prop_oneof![
        4 => "[a-z][a-z0-9-]{0,12}".prop_map(Target::Name),
        1 => (1u32..).prop_map(Target::Pid),
        1 => Just(Target::Path("/proc/1/ns/net".into())),
    ];
    (
        (objname_ok(), objname_ok(), ifname_ok(), 1i32..=5, netns),
        prop_oneof![Just(String::new()), ifname_ok()],
        (
            0u8..2,
            prop::collection::btree_set(2u8..=254, 1..4),
            any::<bool>(),
        ),
        prop_oneof![Just(String::new()), unicast_mac()],
        prop_oneof![Just(0u32), 68u32..=9000],
        prop::collection::vec(unicast_mac(), 0..3),
        prop_oneof![3 => Just(None), 1 => interface_pb().prop_map(Some)],
    )
        .prop_map(
            |(
                (network, name, parent, mode, netns),
                ifname,
                (c, hosts, gw),
                mac,
                mtu,
                macs,
                interface,
            )| {
                pb::MacvlanEndpoint {
                    network,
                    name,
                    parent,
                    mode,
                    netns: Some(pb::NetnsTarget {
                        target: Some(netns),
                    }),
                    ifname,
                    addresses: hosts.iter().map(|d| format!("10.0.{c}.{d}/24")).collect(),
                    gateway: if gw {
                        format!("10.0.{c}.1")
                    } else {
                        String::new()
                    },
                    mac,
                    mtu,
                    source_macs: if mode == 5 { macs } else { Vec::new() },
                    interface,
                    ..Default::default()
                }
            },
        )
        .boxed()
}

/// One field of an endpoint set to a hostile value.
#[derive(Debug, Clone)]
enum EndpointField {
    Network(String),
    Name(String),
    Parent(String),
    Mode(i32),
    Netns(Option<pb::NetnsTarget>),
    Ifname(String),
    Addresses(Vec<String>),
    Gateway(String),
    Mac(String),
    Mtu(u32),
    SourceMacs(Vec<String>),
}

fn endpoint_field() -> BoxedStrategy<EndpointField> {
    use EndpointField as F;
    prop_oneof![
        hostile().prop_map(F::Network),
        hostile().prop_map(F::Name),
        hostile().prop_map(F::Parent),
        enum_i32().prop_map(F::Mode),
        netns_pb().prop_map(F::Netns),
        hostile().prop_map(F::Ifname),
        endpoint_addresses().prop_map(F::Addresses),
        ip_text().prop_map(F::Gateway),
        mac_text().prop_map(F::Mac),
        edge_u32().prop_map(F::Mtu),
        prop::collection::vec(mac_text(), 1..3).prop_map(F::SourceMacs),
    ]
    .boxed()
}

fn set_field(mut e: pb::MacvlanEndpoint, f: EndpointField) -> pb::MacvlanEndpoint {
    use EndpointField as F;
    match f {
        F::Network(v) => e.network = v,
        F::Name(v) => e.name = v,
        F::Parent(v) => e.parent = v,
        F::Mode(v) => e.mode = v,
        F::Netns(v) => e.netns = v,
        F::Ifname(v) => e.ifname = v,
        F::Addresses(v) => e.addresses = v,
        F::Gateway(v) => e.gateway = v,
        F::Mac(v) => e.mac = v,
        F::Mtu(v) => e.mtu = v,
        F::SourceMacs(v) => e.source_macs = v,
    }
    e
}

/// Valid endpoints, valid ones with one field made hostile, and endpoints
/// whose every field may be hostile.
fn endpoint_pb() -> BoxedStrategy<pb::MacvlanEndpoint> {
    prop_oneof![
        2 => endpoint_valid(),
        3 => (endpoint_valid(), endpoint_field()).prop_map(|(e, f)| set_field(e, f)),
        2 => endpoint_wild(),
    ]
    .boxed()
}

fn host_access_pb() -> BoxedStrategy<pb::HostAccess> {
    let route = prop_oneof![
        4 => (0u8..3, select(vec![16u8, 24])).prop_map(|(c, p)| format!("10.{c}.0.0/{p}")),
        1 => Just("fd00:1::/64".to_owned()),
        2 => cidr_text(),
    ];
    (
        mostly(objname_ok(), 10),
        mostly(ifname_ok(), 10),
        prop_oneof![3 => Just(String::new()), 2 => ifname_ok(), 1 => hostile()],
        prop_oneof![
            6 => prop::collection::vec(cidr_text(), 0..3),
            1 => select(vec![MAX_ADDRESSES, MAX_ADDRESSES + 1])
                .prop_map(|n| vec!["10.0.0.254/32".to_owned(); n]),
        ],
        prop_oneof![
            6 => prop::collection::vec(route, 0..3),
            1 => select(vec![MAX_ROUTES, MAX_ROUTES + 1])
                .prop_map(|n| vec!["10.1.0.0/16".to_owned(); n]),
        ],
        any::<bool>(),
        prop_oneof![3 => Just(String::new()), 1 => mac_text()],
        prop_oneof![4 => Just(None), 1 => interface_pb().prop_map(Some)],
    )
        .prop_map(
            |(network, parent, name, addresses, routes, owned, mac, interface)| pb::HostAccess {
                network,
                parent,
                name,
                addresses,
                routes,
                owned,
                mac,
                interface,
            },
        )
        .boxed()
}

fn vlan_pb() -> BoxedStrategy<pb::Vlan> {
    (
        prop_oneof![3 => Just(String::new()), 3 => ifname_ok(), 1 => hostile()],
        mostly(ifname_ok(), 8),
        prop_oneof![4 => 1u32..=4094, 1 => edge_u32()],
        prop_oneof![4 => 0i32..=2, 1 => enum_i32()],
        prop_oneof![3 => Just(0u32), 1 => edge_u32()],
        any::<[bool; 2]>(),
        prop_oneof![4 => Just(None), 1 => interface_pb().prop_map(Some)],
        prop_oneof![3 => Just(String::new()), 1 => hostile()],
    )
        .prop_map(
            |(
                name,
                parent,
                id,
                protocol,
                mtu,
                [reorder_header, owned],
                interface,
                auto_for_network,
            )| {
                pb::Vlan {
                    name,
                    parent,
                    id,
                    protocol,
                    mtu,
                    reorder_header,
                    owned,
                    interface,
                    auto_for_network,
                }
            },
        )
        .boxed()
}

fn create_vlan_pb() -> BoxedStrategy<pb::CreateVlanRequest> {
    vlan_pb()
        .prop_map(|v| pb::CreateVlanRequest {
            parent: v.parent,
            id: v.id,
            protocol: v.protocol,
            name: v.name,
            mtu: v.mtu,
        })
        .boxed()
}

/// A catalog network: a plausible one (a /24 with blocks cut from it)
/// more often than not, any texts otherwise.
fn catalog_pb() -> BoxedStrategy<pb::CatalogNetwork> {
    let pool = prop_oneof![
        3 => (0u8..3, prop::collection::vec(0u8..16, 0..4), any::<u8>(), mostly("[a-z0-9' /]{0,40}".boxed(), 6))
            .prop_map(|(c, bs, x, why)| pb::CatalogPool {
                subnet: format!("10.0.{c}.0/24"),
                gateway: format!("10.0.{c}.1"),
                blocks: bs.iter().map(|b| format!("10.0.{c}.{}/28", b * 16)).collect(),
                excluded: vec![pb::Excluded { prefix: format!("10.0.{c}.{x}/32"), why }],
            }),
        1 => (
            cidr_text(),
            ip_text(),
            prop::collection::vec(cidr_text(), 0..3),
            prop::collection::vec((cidr_text(), hostile()), 0..3),
        )
            .prop_map(|(subnet, gateway, blocks, ex)| pb::CatalogPool {
                subnet,
                gateway,
                blocks,
                excluded: ex.into_iter().map(|(prefix, why)| pb::Excluded { prefix, why }).collect(),
            }),
    ];
    (
        objname_ok(),
        mostly(ifname_ok(), 6),
        plausible(0..=4094),
        enum_i32(),
        plausible(0..=9000),
        prop::option::weighted(0.9, pool),
    )
        .prop_map(
            |(name, parent, vlan_id, mode, mtu, v4)| pb::CatalogNetwork {
                name,
                parent,
                vlan_id,
                mode,
                mtu,
                v4,
                v6: None,
            },
        )
        .boxed()
}

fn desired_wild() -> BoxedStrategy<pb::DesiredState> {
    (
        list_of(vlan_pb(), 0..4, pb::Vlan::default(), MAX_DESIRED_VLANS),
        list_of(
            endpoint_pb(),
            0..4,
            pb::MacvlanEndpoint::default(),
            MAX_DESIRED_ENDPOINTS,
        ),
        list_of(
            host_access_pb(),
            0..3,
            pb::HostAccess::default(),
            MAX_DESIRED_NETWORKS,
        ),
        list(mostly(objname_ok(), 10), "n", MAX_DESIRED_NETWORKS),
        list(mostly(ifname_ok(), 6), "eth9", MAX_DESIRED_VLANS),
        prop::collection::vec(catalog_pb(), 0..3),
    )
        .prop_map(
            |(vlans, endpoints, host_access, networks, absent_vlans, catalog)| pb::DesiredState {
                vlans,
                endpoints,
                host_access,
                networks,
                absent_vlans,
                catalog,
            },
        )
        .boxed()
}

/// A desired state whose parts are valid more often than not: distinct
/// VLAN ids and endpoint names, absent VLANs that are not wanted.
fn desired_plausible() -> BoxedStrategy<pb::DesiredState> {
    (
        prop::collection::btree_set(1u32..=4094, 0..4),
        ifname_ok(),
        prop::collection::vec(endpoint_pb(), 0..4),
        prop::collection::vec(host_access_pb(), 0..3),
        prop::collection::vec(objname_ok(), 0..3),
        prop::collection::vec("old[0-9]{1,3}", 0..3),
        any::<bool>(),
    )
        .prop_map(
            |(ids, parent, endpoints, host_access, networks, absent_vlans, clash)| {
                let mut vlans: Vec<pb::Vlan> = ids
                    .into_iter()
                    .map(|id| pb::Vlan {
                        parent: parent.clone(),
                        id,
                        ..Default::default()
                    })
                    .collect();
                let mut absent_vlans = absent_vlans;
                if clash && let Some(v) = vlans.first_mut() {
                    // Wanted and absent at once: must be refused.
                    v.name = "clash".into();
                    absent_vlans.push("clash".into());
                }
                let endpoints = endpoints
                    .into_iter()
                    .enumerate()
                    .map(|(i, mut e)| {
                        e.name = format!("{}{i}", e.name);
                        e
                    })
                    .collect();
                pb::DesiredState {
                    vlans,
                    endpoints,
                    host_access,
                    networks,
                    absent_vlans,
                    ..Default::default()
                }
            },
        )
        .boxed()
}

fn desired_pb() -> BoxedStrategy<pb::DesiredState> {
    prop_oneof![3 => desired_plausible(), 1 => desired_wild()].boxed()
}

/// A few structured messages, or (one time in twenty) `bound` or
/// `bound + 1` copies of `filler`.
fn list_of<T: Clone + std::fmt::Debug + 'static>(
    elem: BoxedStrategy<T>,
    len: std::ops::Range<usize>,
    filler: T,
    bound: usize,
) -> BoxedStrategy<Vec<T>> {
    prop_oneof![
        19 => prop::collection::vec(elem, len),
        1 => select(vec![bound, bound + 1]).prop_map(move |n| vec![filler.clone(); n]),
    ]
    .boxed()
}

fn tcp_pb() -> BoxedStrategy<pb::TcpRequest> {
    (
        netns_pb(),
        prop_oneof![3 => Just(String::new()), 2 => ifname_ok(), 1 => hostile()],
        ip_text(),
        plausible(1..=65_535),
        plausible(0..=30_000),
    )
        .prop_map(
            |(source, interface, destination, port, timeout_ms)| pb::TcpRequest {
                source,
                interface,
                destination,
                port,
                timeout_ms,
            },
        )
        .boxed()
}

fn ping_pb() -> BoxedStrategy<pb::PingRequest> {
    (
        netns_pb(),
        prop_oneof![3 => Just(String::new()), 2 => ifname_ok(), 1 => hostile()],
        ip_text(),
        plausible(0..=10_000),
        plausible(0..=60_000),
        plausible(0..=30_000),
        plausible(0..=65_000),
    )
        .prop_map(
            |(source, interface, destination, count, interval_ms, timeout_ms, payload_size)| {
                pb::PingRequest {
                    source,
                    interface,
                    destination,
                    count,
                    interval_ms,
                    timeout_ms,
                    payload_size,
                }
            },
        )
        .boxed()
}

fn arp_pb() -> BoxedStrategy<pb::ArpRequest> {
    (
        netns_pb(),
        prop_oneof![3 => Just(String::new()), 2 => ifname_ok(), 1 => hostile()],
        ip_text(),
        edge_u32(),
        any::<bool>(),
    )
        .prop_map(
            |(source, interface, address, timeout_ms, free_check)| pb::ArpRequest {
                source,
                interface,
                address,
                timeout_ms,
                free_check,
            },
        )
        .boxed()
}

fn delete_macvlan_pb() -> BoxedStrategy<pb::DeleteMacvlanRequest> {
    (
        prop_oneof![2 => Just(String::new()), 2 => objname_ok(), 1 => hostile()],
        prop_oneof![2 => Just(String::new()), 2 => objname_ok(), 1 => hostile()],
        netns_pb(),
        prop_oneof![2 => Just(String::new()), 2 => ifname_ok(), 1 => hostile()],
        any::<bool>(),
    )
        .prop_map(
            |(network, name, netns, ifname, force)| pb::DeleteMacvlanRequest {
                network,
                name,
                netns,
                ifname,
                force,
            },
        )
        .boxed()
}

/// An encoding to mutate: bit flips, truncation, inserted and duplicated
/// bytes, applied in order.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Duplicate(usize, usize),
}

fn mutation() -> BoxedStrategy<Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 1u8..=255).prop_map(|(i, b)| Mutation::Flip(i, b)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        2 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => (any::<usize>(), 1usize..64).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
    ]
    .boxed()
}

fn mutate(mut b: Vec<u8>, ms: &[Mutation]) -> Vec<u8> {
    for m in ms {
        let len = b.len();
        match m {
            Mutation::Flip(i, x) if len > 0 => b[i % len] ^= x,
            Mutation::Truncate(i) if len > 0 => b.truncate(i % len),
            Mutation::Insert(i, bytes) => {
                let at = i % (len + 1);
                b.splice(at..at, bytes.iter().copied());
            }
            Mutation::Duplicate(i, n) if len > 0 => {
                let from = i % len;
                let to = (from + n).min(len);
                let part = b[from..to].to_vec();
                b.splice(to..to, part);
            }
            _ => {}
        }
    }
    b
}

// ---------------------------------------------------------------------------
// The rules a converted value must hold, stated again independently

fn assert_ifname(what: &str, n: &IfName) {
    let s = n.as_str();
    assert!(
        (1..=MAX_IFNAME_LEN).contains(&s.len()),
        "{what}: interface name {s:?} is {} bytes",
        s.len()
    );
    assert!(s != "." && s != "..", "{what}: interface name {s:?}");
    assert!(
        !s.chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control()),
        "{what}: interface name {s:?} has a character Linux refuses"
    );
}

fn assert_objname(what: &str, n: &ObjName) {
    let s = n.as_str();
    assert!(
        (1..=64).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')),
        "{what}: object name {s:?}"
    );
}

fn assert_netns(what: &str, n: &NetnsRef) {
    match n {
        NetnsRef::Named(s) => {
            assert!(
                (1..=MAX_NETNS_NAME).contains(&s.len()),
                "{what}: namespace name of {} bytes",
                s.len()
            );
            assert!(
                s != "." && s != ".." && !s.contains('/'),
                "{what}: namespace name {s:?} leaves /run/netns"
            );
            assert!(
                !s.chars().any(|c| c.is_whitespace() || c.is_control()),
                "{what}: namespace name {s:?}"
            );
        }
        NetnsRef::Path(p) => {
            let s = p.to_str().expect("a path from a string is UTF-8");
            assert!(s.starts_with('/'), "{what}: relative namespace path {s:?}");
            assert!(
                s.len() <= MAX_PATH,
                "{what}: namespace path of {} bytes",
                s.len()
            );
        }
        NetnsRef::Pid(p) => assert_ne!(*p, 0, "{what}: pid 0"),
    }
}

fn assert_unicast(what: &str, m: &MacAddr) {
    assert!(!m.is_multicast(), "{what}: multicast MAC {m}");
    assert!(!m.is_zero(), "{what}: all-zero MAC");
}

fn assert_mtu(what: &str, m: Option<u32>, raw: u32) {
    assert_eq!(
        m,
        (raw != 0).then_some(raw),
        "{what}: MTU {raw} read as {m:?}"
    );
    assert!(m.is_none_or(|m| m >= MIN_MTU), "{what}: MTU {m:?}");
}

/// `text` read by the documented MAC syntax alone: six pairs of hex
/// digits separated by ':' or '-', nothing else.
fn strict_mac(text: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = text.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut out = [0u8; 6];
    for (b, p) in out.iter_mut().zip(parts) {
        if p.len() != 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    Some(out)
}

/// An accepted MAC has the bytes its text says (when the text is in the
/// documented syntax: that it always is, is `macs_are_read_strictly`).
fn assert_mac_reads(what: &str, m: &MacAddr, text: &str) {
    if let Some(bytes) = strict_mac(text) {
        assert_eq!(m.0, bytes, "{what}: {text:?} was read as {m}");
    }
}

fn assert_endpoint(spec: &EndpointSpec, raw: &pb::MacvlanEndpoint, create_netns: bool) {
    assert_objname("endpoint.network", &spec.network);
    assert_objname("endpoint.name", &spec.name);
    assert_eq!(spec.network.as_str(), raw.network);
    assert_eq!(spec.name.as_str(), raw.name);
    assert_ifname("endpoint.parent", &spec.parent);
    assert_eq!(spec.parent.as_str(), raw.parent);
    assert_ifname("endpoint.ifname", &spec.ifname);
    let want_ifname = if raw.ifname.is_empty() {
        "eth0"
    } else {
        raw.ifname.as_str()
    };
    assert_eq!(spec.ifname.as_str(), want_ifname);
    assert_eq!(
        i32::from(pb::MacvlanMode::from(spec.mode)),
        raw.mode,
        "mode {} read as {:?}",
        raw.mode,
        spec.mode
    );
    assert_netns("endpoint.netns", &spec.netns);
    assert_eq!(spec.create_netns, create_netns);
    if spec.create_netns {
        assert!(
            matches!(spec.netns, NetnsRef::Named(_)),
            "only a named netns is created"
        );
    }
    assert!(
        spec.addresses.len() <= MAX_ADDRESSES,
        "{} addresses",
        spec.addresses.len()
    );
    assert_eq!(spec.addresses.len(), raw.addresses.len());
    let distinct: BTreeSet<IpAddr> = spec.addresses.iter().map(IpNet::addr).collect();
    assert_eq!(
        distinct.len(),
        spec.addresses.len(),
        "an address is given twice"
    );
    for (a, text) in spec.addresses.iter().zip(&raw.addresses) {
        assert_eq!(Ok(*a), text.parse::<IpNet>(), "{text:?} read as {a}");
        if let IpNet::V4(v4) = a
            && v4.prefix_len() <= 30
        {
            assert!(
                v4.addr() != v4.network() && v4.addr() != v4.broadcast(),
                "{a} is not a host address"
            );
        }
    }
    match spec.gateway {
        None => assert!(raw.gateway.is_empty()),
        Some(g) => {
            let same: Vec<&IpNet> = spec
                .addresses
                .iter()
                .filter(|a| a.addr().is_ipv4() == g.is_ipv4())
                .collect();
            assert!(
                same.iter().any(|a| a.contains(&g)),
                "gateway {g} outside {same:?}"
            );
            assert!(
                !same.iter().any(|a| a.addr() == g),
                "gateway {g} is our own"
            );
        }
    }
    match &spec.mac {
        None => assert!(raw.mac.is_empty()),
        Some(m) => {
            assert_unicast("endpoint.mac", m);
            assert_mac_reads("endpoint.mac", m, &raw.mac);
        }
    }
    assert_mtu("endpoint.mtu", spec.mtu, raw.mtu);
    assert!(spec.source_macs.len() <= MAX_SOURCE_MACS);
    assert_eq!(spec.source_macs.len(), raw.source_macs.len());
    if !spec.source_macs.is_empty() {
        assert_eq!(
            spec.mode,
            MacvlanMode::Source,
            "source MACs outside mode source"
        );
    }
    for (m, text) in spec.source_macs.iter().zip(&raw.source_macs) {
        assert_unicast("endpoint.source_macs", m);
        assert_mac_reads("endpoint.source_macs", m, text);
    }
    let _ = spec.effective_mac();
}

fn assert_host_access(spec: &HostAccessSpec, raw: &pb::HostAccess) {
    assert_objname("host_access.network", &spec.network);
    assert_eq!(spec.network.as_str(), raw.network);
    assert_ifname("host_access.parent", &spec.parent);
    assert_ifname("host_access.name", &spec.name);
    if raw.name.is_empty() {
        let want: String = format!("lh-{}", raw.network)
            .chars()
            .take(MAX_IFNAME_LEN)
            .collect();
        assert_eq!(spec.name.as_str(), want);
    } else {
        assert_eq!(spec.name.as_str(), raw.name);
    }
    assert!((1..=MAX_ADDRESSES).contains(&spec.addresses.len()));
    assert!(spec.routes.len() <= MAX_ROUTES);
    for r in &spec.routes {
        assert_eq!(r.trunc(), *r, "route {r} has host bits");
    }
    assert_unicast("host_access.mac()", &spec.mac());
}

fn assert_vlan(spec: &VlanSpec, raw: &pb::CreateVlanRequest) {
    assert_ifname("vlan.parent", &spec.parent);
    assert_ifname("vlan.name", &spec.name);
    assert!((1..=4094).contains(&spec.id.get()), "VLAN id {}", spec.id);
    assert_eq!(u32::from(spec.id.get()), raw.id);
    if raw.name.is_empty() {
        assert_eq!(spec.name.to_string(), format!("{}.{}", raw.parent, raw.id));
    }
    let want = match raw.protocol {
        0 | 1 => VlanProtocol::Ieee8021Q,
        2 => VlanProtocol::Ieee8021Ad,
        p => panic!("protocol {p} accepted"),
    };
    assert_eq!(spec.protocol, want);
    assert_mtu("vlan.mtu", spec.mtu, raw.mtu);
}

fn assert_desired(d: &Desired) {
    assert!(d.vlans.len() <= MAX_DESIRED_VLANS);
    assert!(d.absent_vlans.len() <= MAX_DESIRED_VLANS);
    assert!(d.endpoints.len() <= MAX_DESIRED_ENDPOINTS);
    assert!(d.host_access.len() <= MAX_DESIRED_NETWORKS);
    assert!(d.networks.len() <= MAX_DESIRED_NETWORKS);
    let names: BTreeSet<&IfName> = d.vlans.iter().map(|v| &v.name).collect();
    assert_eq!(names.len(), d.vlans.len(), "a VLAN is listed twice");
    for a in &d.absent_vlans {
        assert_ifname("desired.absent_vlans", a);
        assert!(!names.contains(a), "{a} is both wanted and absent");
    }
    let keys: BTreeSet<(&ObjName, &ObjName)> =
        d.endpoints.iter().map(|e| (&e.network, &e.name)).collect();
    assert_eq!(keys.len(), d.endpoints.len(), "an endpoint is listed twice");
    for e in &d.endpoints {
        assert_eq!(e.create_netns, matches!(e.netns, NetnsRef::Named(_)));
    }
    for n in &d.networks {
        assert_objname("desired.networks", n);
    }
    let names: BTreeSet<&ObjName> = d.catalog.iter().map(|n| &n.name).collect();
    assert_eq!(
        names.len(),
        d.catalog.len(),
        "a catalog network is listed twice"
    );
    for n in &d.catalog {
        assert_eq!(n.check("catalog"), Ok(()), "an unchecked catalog network");
    }
    let scope = d.scope();
    for e in &d.endpoints {
        assert!(scope.contains(e.network.as_str()));
    }
    // The wire form a client sends reads back as the same state.
    let wire = pb::DesiredState::from(d);
    assert_eq!(
        Desired::try_from(wire).as_ref(),
        Ok(d),
        "desired state round trip"
    );
}

/// An error tells its field, echoes a bounded piece of the value, stays
/// bounded as a whole, and survives the trip through a gRPC status.
fn assert_error(e: &ValidationError) {
    assert!(!e.field.is_empty(), "{e:?}");
    // The cut value: MAX_ECHO bytes, "… (N bytes)".
    assert!(
        e.value.len() <= MAX_ECHO + 32,
        "{}: value echoed with {} bytes",
        e.field,
        e.value.len()
    );
    let text = e.to_string();
    assert!(
        text.len() <= 16 * 1024,
        "{}: error of {} bytes",
        e.field,
        text.len()
    );
    let status = validation_status(e);
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(status.message(), text);
    assert_eq!(
        field_violations(&status),
        vec![(
            e.field.clone(),
            format!("{:?}: {}; {}", e.value, e.problem, e.fix)
        )]
    );
}

fn assert_timeout(t: Duration, raw: u32, zero: Duration) {
    let want = if raw == 0 {
        zero
    } else {
        Duration::from_millis(raw.into())
    };
    assert_eq!(t, want);
    assert!(!t.is_zero() && t <= MAX_PROBE_TIMEOUT, "timeout {t:?}");
}

// ---------------------------------------------------------------------------
// Every conversion, run on one message, with its rules checked

fn get_interface(r: pb::GetInterfaceRequest) {
    match InterfaceName::try_from(r.clone()) {
        Ok(n) => {
            assert_ifname("name", &n.0);
            assert_eq!(n.0.as_str(), r.name);
        }
        Err(e) => assert_error(&e),
    }
}

fn set_promiscuous(r: pb::SetPromiscuousRequest) {
    match SetPromiscuous::try_from(r.clone()) {
        Ok(p) => {
            assert_ifname("name", &p.name);
            assert_eq!(p.enabled, r.enabled);
            let want = (r.lease_seconds != 0).then(|| Duration::from_secs(r.lease_seconds.into()));
            assert_eq!(p.lease, want);
            assert!(p.lease.is_none_or(|l| l <= MAX_PROMISC_LEASE));
        }
        Err(e) => assert_error(&e),
    }
}

fn set_up(r: pb::SetUpRequest) {
    match SetUp::try_from(r.clone()) {
        Ok(s) => {
            assert_ifname("name", &s.name);
            assert_eq!((s.name.as_str(), s.up), (r.name.as_str(), r.up));
        }
        Err(e) => assert_error(&e),
    }
}

fn set_mtu(r: pb::SetMtuRequest) {
    match SetMtu::try_from(r.clone()) {
        Ok(s) => {
            assert_ifname("name", &s.name);
            assert!(s.mtu != 0 && s.mtu == r.mtu);
        }
        Err(e) => assert_error(&e),
    }
}

fn create_vlan(r: pb::CreateVlanRequest) {
    match VlanSpec::try_from(r.clone()) {
        Ok(v) => assert_vlan(&v, &r),
        Err(e) => assert_error(&e),
    }
}

fn create_macvlan(r: pb::CreateMacvlanRequest) {
    match EndpointSpec::try_from(r.clone()) {
        Ok(s) => assert_endpoint(&s, &r.endpoint.unwrap_or_default(), r.create_netns),
        Err(e) => assert_error(&e),
    }
}

fn create_host_access(r: pb::CreateHostAccessRequest) {
    match HostAccessSpec::try_from(r.clone()) {
        Ok(s) => assert_host_access(&s, &r.host_access.unwrap_or_default()),
        Err(e) => assert_error(&e),
    }
}

fn delete_macvlan(r: pb::DeleteMacvlanRequest) {
    match DeleteEndpoints::try_from(r.clone()) {
        Ok(d) => {
            assert_eq!(d.force, r.force);
            match d.selector {
                EndpointSelector::Named { network, name } => {
                    assert_objname("network", &network);
                    assert_objname("name", &name);
                    assert_eq!((network.as_str(), name.as_str()), (&*r.network, &*r.name));
                }
                EndpointSelector::Network(n) => {
                    assert_objname("network", &n);
                    assert!(r.name.is_empty());
                }
                EndpointSelector::Located { netns, ifname } => {
                    assert!(r.network.is_empty(), "a located delete ignores a network");
                    assert_netns("netns", &netns);
                    assert_ifname("ifname", &ifname);
                }
            }
        }
        Err(e) => assert_error(&e),
    }
}

fn desired(d: pb::DesiredState) {
    match Desired::try_from(d) {
        Ok(d) => assert_desired(&d),
        Err(e) => assert_error(&e),
    }
}

fn tcp(r: pb::TcpRequest) {
    match TcpProbe::try_from(r.clone()) {
        Ok(p) => {
            assert_eq!(u32::from(p.to.port()), r.port);
            assert_ne!(p.to.port(), 0);
            assert_eq!(Ok(p.to.ip()), r.destination.parse::<IpAddr>());
            assert_timeout(p.timeout, r.timeout_ms, DEFAULT_PROBE_TIMEOUT);
            if let Some(n) = &p.netns {
                assert_netns("source", n);
            }
            if let Some(i) = &p.interface {
                assert_ifname("interface", i);
            }
        }
        Err(e) => assert_error(&e),
    }
}

fn ping(r: pb::PingRequest) {
    match PingProbe::try_from(r.clone()) {
        Ok(p) => {
            assert!((1..=MAX_PING_COUNT).contains(&p.count), "count {}", p.count);
            assert_eq!(p.count, if r.count == 0 { 3 } else { r.count });
            assert!(!p.interval.is_zero() && p.interval <= Duration::from_secs(60));
            assert!(p.size <= 65_000 && p.size > 0, "size {}", p.size);
            assert_timeout(p.timeout, r.timeout_ms, Duration::from_secs(1));
            assert_eq!(Ok(p.to), r.destination.parse::<IpAddr>());
            if let Some(n) = &p.netns {
                assert_netns("source", n);
            }
            if let Some(i) = &p.interface {
                assert_ifname("interface", i);
            }
        }
        Err(e) => assert_error(&e),
    }
}

fn arp(r: pb::ArpRequest) {
    match ArpProbe::try_from(r.clone()) {
        Ok(p) => {
            assert!(!p.free_check || p.target.is_ipv4(), "IPv6 free check");
            assert_eq!(p.free_check, r.free_check);
            assert_ifname("interface", &p.interface);
            assert_eq!(Ok(p.target), r.address.parse::<IpAddr>());
            assert_timeout(p.timeout, r.timeout_ms, Duration::from_secs(1));
            if let Some(n) = &p.netns {
                assert_netns("source", n);
            }
        }
        Err(e) => assert_error(&e),
    }
}

/// The read-back conversions (`linkherdctl` reading an agent's answer):
/// what decodes once decodes again to the same value from its own wire form.
fn interface(i: pb::Interface) {
    if let Ok(m) = Interface::try_from(i.clone()) {
        assert_eq!(m.addresses.len(), i.addresses.len());
        if let Some(mac) = &m.mac {
            assert_mac_reads("interface.mac", mac, &i.mac);
        }
        assert_eq!(Interface::try_from(pb::Interface::from(m.clone())), Ok(m));
    }
}

fn vlan_state(v: pb::Vlan) {
    if let Ok(m) = VlanState::try_from(v.clone()) {
        assert_eq!(u32::from(m.id), v.id);
        assert_eq!(VlanState::try_from(pb::Vlan::from(m.clone())), Ok(m));
    }
}

fn endpoint_state(e: pb::MacvlanEndpoint) {
    if let Ok(m) = EndpointState::try_from(e.clone()) {
        assert_netns("endpoint.netns", &m.netns);
        assert_eq!(m.addresses.len(), e.addresses.len());
        assert_eq!(
            EndpointState::try_from(pb::MacvlanEndpoint::from(m.clone())),
            Ok(m)
        );
    }
}

fn host_access_state(h: pb::HostAccess) {
    if let Ok(m) = HostAccessState::try_from(h.clone()) {
        assert_eq!(m.routes.len(), h.routes.len());
        assert_eq!(
            HostAccessState::try_from(pb::HostAccess::from(m.clone())),
            Ok(m)
        );
    }
}

/// `bytes` decoded as every message type that has a conversion, and each
/// that decodes converted.
fn every_conversion(bytes: &[u8]) {
    macro_rules! each {
        ($($ty:ty => $run:expr),* $(,)?) => {
            $( if let Ok(m) = <$ty>::decode(bytes) { $run(m) } )*
        };
    }
    each! {
        pb::GetInterfaceRequest => get_interface,
        pb::SetPromiscuousRequest => set_promiscuous,
        pb::SetUpRequest => set_up,
        pb::SetMtuRequest => set_mtu,
        pb::CreateVlanRequest => create_vlan,
        pb::CreateMacvlanRequest => create_macvlan,
        pb::CreateHostAccessRequest => create_host_access,
        pb::DeleteMacvlanRequest => delete_macvlan,
        pb::DesiredState => desired,
        pb::TcpRequest => tcp,
        pb::PingRequest => ping,
        pb::ArpRequest => arp,
        pb::Interface => interface,
        pb::Vlan => vlan_state,
        pb::MacvlanEndpoint => endpoint_state,
        pb::HostAccess => host_access_state,
        pb::NetnsTarget => |t| { let _ = netns_target("netns", Some(t)); },
        pb::Counters => |c: pb::Counters| {
            assert_eq!(pb::Counters::from(model::Counters::from(c)), c);
        },
    }
    // The same bytes as a status's details, as `linkherdctl` reads them.
    let status = tonic::Status::with_details(
        tonic::Code::InvalidArgument,
        "bad",
        tonic::codegen::Bytes::copy_from_slice(bytes),
    );
    let _ = field_violations(&status);
}

// ---------------------------------------------------------------------------
// The properties

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn arbitrary_bytes_never_panic_any_conversion(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        every_conversion(&bytes);
    }

    #[test]
    fn mutated_encodings_never_panic_any_conversion(
        d in desired_pb(),
        ms in prop::collection::vec(mutation(), 1..6),
    ) {
        let b = d.encode_to_vec();
        every_conversion(&mutate(b, &ms));
    }

    #[test]
    fn mutated_endpoint_encodings_never_panic(
        e in endpoint_pb(),
        create_netns in any::<bool>(),
        ms in prop::collection::vec(mutation(), 1..4),
    ) {
        let b = pb::CreateMacvlanRequest { endpoint: Some(e), create_netns }.encode_to_vec();
        every_conversion(&mutate(b, &ms));
    }

    #[test]
    fn interface_requests(name in hostile(), on in any::<bool>(), n in edge_u32()) {
        get_interface(pb::GetInterfaceRequest { name: name.clone() });
        set_promiscuous(pb::SetPromiscuousRequest { name: name.clone(), enabled: on, lease_seconds: n });
        set_up(pb::SetUpRequest { name: name.clone(), up: on });
        set_mtu(pb::SetMtuRequest { name, mtu: n });
    }

    #[test]
    fn vlan_requests(r in create_vlan_pb()) {
        create_vlan(r);
    }

    #[test]
    fn macvlan_requests(e in endpoint_pb(), create_netns in any::<bool>()) {
        create_macvlan(pb::CreateMacvlanRequest { endpoint: Some(e.clone()), create_netns });
        create_macvlan(pb::CreateMacvlanRequest { endpoint: None, create_netns });
        endpoint_state(e);
    }

    #[test]
    fn host_access_requests(h in host_access_pb()) {
        create_host_access(pb::CreateHostAccessRequest { host_access: Some(h.clone()) });
        host_access_state(h);
    }

    #[test]
    fn delete_requests(r in delete_macvlan_pb()) {
        delete_macvlan(r);
    }

    #[test]
    fn desired_states(d in desired_pb()) {
        desired(d);
    }

    #[test]
    fn probe_requests(t in tcp_pb(), p in ping_pb(), a in arp_pb()) {
        tcp(t);
        ping(p);
        arp(a);
    }

    #[test]
    fn observed_objects(i in interface_pb(), v in vlan_pb()) {
        interface(i);
        vlan_state(v);
    }

    /// Enum values: a known one maps to its model value and back; zero
    /// means the documented default; an unknown one never panics.
    #[test]
    fn enums_map_both_ways(v in any::<i32>()) {
        if let Ok(k) = pb::LinkKind::try_from(v) {
            let back = pb::LinkKind::from(model::LinkKind::from(k));
            prop_assert_eq!(back, if k == pb::LinkKind::Unspecified { pb::LinkKind::Other } else { k });
        }
        if let Ok(s) = pb::OperState::try_from(v) {
            let back = pb::OperState::from(model::OperState::from(s));
            prop_assert_eq!(back, if s == pb::OperState::Unspecified { pb::OperState::Unknown } else { s });
        }
        if let Ok(m) = pb::MacvlanMode::try_from(v) {
            match MacvlanMode::try_from(m) {
                Ok(mm) => prop_assert_eq!(pb::MacvlanMode::from(mm), m),
                Err(e) => {
                    prop_assert_eq!(m, pb::MacvlanMode::Unspecified);
                    assert_error(&e);
                }
            }
        }
        if let Ok(p) = pb::VlanProtocol::try_from(v) {
            let back = pb::VlanProtocol::from(VlanProtocol::from(p));
            let want = if p == pb::VlanProtocol::Unspecified { pb::VlanProtocol::VlanProtocol8021q } else { p };
            prop_assert_eq!(back, want);
        }
        if let Ok(r) = pb::Role::try_from(v) {
            match Option::<model::Role>::from(r) {
                Some(role) => prop_assert_eq!(pb::Role::from(role), r),
                None => prop_assert_eq!(r, pb::Role::Unspecified),
            }
        }
    }

    /// Every MAC field accepts only the documented syntax. Everything that
    /// reads a MAC from a request, a state or a spec goes through
    /// `MacAddr::parse`, so this is checked on it and on each field.
    #[test]
    fn macs_are_read_strictly(text in mac_text(), b in any::<[u8; 6]>()) {
        let parsed = MacAddr::parse("mac", &text).ok();
        prop_assert_eq!(parsed.map(|m| m.0), strict_mac(&text), "MacAddr::parse({:?})", text);
        let wire = pb::Interface { mac: text.clone(), ..Default::default() };
        let read = Interface::try_from(wire).ok().and_then(|i| i.mac).map(|m| m.0);
        prop_assert_eq!(read, strict_mac(&text), "interface.mac {:?}", text);
        // Printed and read back: the same bytes.
        prop_assert_eq!(MacAddr::parse("mac", &MacAddr(b).to_string()), Ok(MacAddr(b)));
    }

    #[test]
    fn counters_are_copied_whole(c in counters_pb()) {
        prop_assert_eq!(pb::Counters::from(model::Counters::from(c)), c);
    }

    /// Counts are checked before elements: a list past its bound is refused
    /// by its count, whatever its elements are.
    #[test]
    fn lists_past_their_bound_are_refused_by_count(
        garbage in hostile().prop_filter("short", |s| s.len() < 64),
        extra in 1usize..4,
    ) {
        let over = |bound: usize| vec![garbage.clone(); bound + extra];
        let cases: Vec<(pb::DesiredState, &str)> = vec![
            (pb::DesiredState { vlans: vec![pb::Vlan { name: garbage.clone(), ..Default::default() }; MAX_DESIRED_VLANS + extra], ..Default::default() }, "desired.vlans"),
            (pb::DesiredState { absent_vlans: over(MAX_DESIRED_VLANS), ..Default::default() }, "desired.absent_vlans"),
            (pb::DesiredState { endpoints: vec![pb::MacvlanEndpoint { name: garbage.clone(), ..Default::default() }; MAX_DESIRED_ENDPOINTS + extra], ..Default::default() }, "desired.endpoints"),
            (pb::DesiredState { host_access: vec![pb::HostAccess { network: garbage.clone(), ..Default::default() }; MAX_DESIRED_NETWORKS + extra], ..Default::default() }, "desired.host_access"),
            (pb::DesiredState { networks: over(MAX_DESIRED_NETWORKS), ..Default::default() }, "desired.networks"),
        ];
        for (d, field) in cases {
            let e = Desired::try_from(d).expect_err("past the bound");
            prop_assert_eq!(&e.field, field);
            prop_assert!(e.problem.starts_with("is more than"), "{}", e.problem);
            assert_error(&e);
        }
        let ep = |addresses: Vec<String>, source_macs: Vec<String>| pb::CreateMacvlanRequest {
            endpoint: Some(pb::MacvlanEndpoint {
                network: "n".into(),
                name: "b1".into(),
                parent: "eth0".into(),
                mode: pb::MacvlanMode::Source.into(),
                netns: Some(pb::NetnsTarget { target: Some(Target::Name("b1".into())) }),
                addresses,
                source_macs,
                ..Default::default()
            }),
            create_netns: false,
        };
        let e = EndpointSpec::try_from(ep(over(MAX_ADDRESSES), vec![])).expect_err("addresses");
        prop_assert_eq!(e.field.as_str(), "endpoint.addresses");
        prop_assert!(e.problem.starts_with("is more than"), "{}", e.problem);
        let e = EndpointSpec::try_from(ep(vec![], over(MAX_SOURCE_MACS))).expect_err("macs");
        prop_assert_eq!(e.field.as_str(), "endpoint.source_macs");
        prop_assert!(e.problem.starts_with("is more than"), "{}", e.problem);
        let ha = |addresses: Vec<String>, routes: Vec<String>| pb::CreateHostAccessRequest {
            host_access: Some(pb::HostAccess {
                network: "n".into(),
                parent: "eth0".into(),
                addresses,
                routes,
                ..Default::default()
            }),
        };
        let e = HostAccessSpec::try_from(ha(over(MAX_ADDRESSES), vec![])).expect_err("addresses");
        prop_assert_eq!(e.field.as_str(), "host_access.addresses");
        let e = HostAccessSpec::try_from(ha(vec!["10.0.0.254/32".into()], over(MAX_ROUTES)))
            .expect_err("routes");
        prop_assert_eq!(e.field.as_str(), "host_access.routes");
    }

    /// A list exactly at its bound, of valid distinct elements, is taken.
    #[test]
    fn lists_at_their_bound_are_taken(prefix in select(vec![8u8, 16, 32]), netns in "[a-z]{1,8}") {
        let addresses: Vec<String> = distinct_v4(MAX_ADDRESSES)
            .into_iter()
            .map(|a| a.replace("/8", &format!("/{prefix}")))
            .collect();
        let spec = EndpointSpec::try_from(pb::CreateMacvlanRequest {
            endpoint: Some(pb::MacvlanEndpoint {
                network: "n".into(),
                name: "b1".into(),
                parent: "eth0".into(),
                mode: pb::MacvlanMode::Source.into(),
                netns: Some(pb::NetnsTarget { target: Some(Target::Name(netns)) }),
                addresses: addresses.clone(),
                source_macs: vec!["02:00:00:00:00:01".into(); MAX_SOURCE_MACS],
                ..Default::default()
            }),
            create_netns: true,
        });
        let spec = spec.map_err(|e| e.to_string());
        prop_assert!(spec.is_ok(), "{:?}", spec);
    }
}

/// A request at every bound at once validates, whole.
#[test]
fn a_state_at_every_bound_validates() {
    let vlans = (1..=MAX_DESIRED_VLANS)
        .map(|id| pb::Vlan {
            parent: "eth0".into(),
            id: u32::try_from(id).expect("small"),
            ..Default::default()
        })
        .collect();
    let addresses = distinct_v4(MAX_DESIRED_ENDPOINTS);
    let endpoints = (0..MAX_DESIRED_ENDPOINTS)
        .map(|i| pb::MacvlanEndpoint {
            network: "n".into(),
            name: format!("b{i}"),
            parent: "eth0".into(),
            mode: pb::MacvlanMode::Bridge.into(),
            netns: Some(pb::NetnsTarget {
                target: Some(Target::Name(format!("b{i}"))),
            }),
            addresses: vec![addresses[i].clone()],
            ..Default::default()
        })
        .collect();
    let host_access = (0..MAX_DESIRED_NETWORKS)
        .map(|i| pb::HostAccess {
            network: format!("n{i}"),
            parent: "eth0".into(),
            addresses: vec![format!("10.0.0.{}/32", i % 250 + 1)],
            routes: vec!["10.1.0.0/16".into()],
            ..Default::default()
        })
        .collect();
    let wire = pb::DesiredState {
        vlans,
        endpoints,
        host_access,
        networks: (0..MAX_DESIRED_NETWORKS).map(|i| format!("x{i}")).collect(),
        absent_vlans: (0..MAX_DESIRED_VLANS).map(|i| format!("old{i}")).collect(),
        catalog: (0..MAX_DESIRED_NETWORKS)
            .map(|i| pb::CatalogNetwork {
                name: format!("c{i}"),
                parent: "eth0".into(),
                mode: pb::MacvlanMode::Bridge.into(),
                v4: Some(pb::CatalogPool {
                    subnet: "10.0.0.0/16".into(),
                    blocks: vec![format!("10.0.{}.0/24", i % 256)],
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect(),
    };
    let d = Desired::try_from(wire).expect("every list at its bound");
    assert_eq!(d.vlans.len(), MAX_DESIRED_VLANS);
    assert_eq!(d.endpoints.len(), MAX_DESIRED_ENDPOINTS);
    assert_desired(&d);
}

/// The same value many times over: refused at the first duplicate (the
/// cost of the check is the benchmark's business, not this test's).
#[test]
fn duplicates_are_found_by_set() {
    let e = Desired::try_from(pb::DesiredState {
        vlans: vec![
            pb::Vlan {
                parent: "eth0".into(),
                id: 10,
                ..Default::default()
            };
            MAX_DESIRED_VLANS
        ],
        ..Default::default()
    })
    .expect_err("twice");
    assert_eq!(
        (e.field.as_str(), e.problem.as_str()),
        ("desired.vlans[1].name", "is listed twice")
    );
}

/// A huge value (4 MiB, the gRPC message limit) in every string field of a
/// request is refused with an error that echoes a bounded part of it.
#[test]
fn huge_values_are_echoed_cut() {
    let huge = "é".repeat(2 * 1024 * 1024);
    let e = EndpointSpec::try_from(pb::CreateMacvlanRequest {
        endpoint: Some(pb::MacvlanEndpoint {
            network: huge.clone(),
            ..Default::default()
        }),
        create_netns: false,
    })
    .expect_err("huge network");
    assert_error(&e);
    for r in [
        pb::MacvlanEndpoint {
            network: "n".into(),
            name: "b1".into(),
            parent: "eth0".into(),
            mode: 3,
            netns: Some(pb::NetnsTarget {
                target: Some(Target::Name("b1".into())),
            }),
            addresses: vec![huge.clone()],
            ..Default::default()
        },
        pb::MacvlanEndpoint {
            network: "n".into(),
            name: "b1".into(),
            parent: "eth0".into(),
            mode: 3,
            netns: Some(pb::NetnsTarget {
                target: Some(Target::Path(format!("/{huge}"))),
            }),
            ..Default::default()
        },
        pb::MacvlanEndpoint {
            network: "n".into(),
            name: "b1".into(),
            parent: "eth0".into(),
            mode: 3,
            netns: Some(pb::NetnsTarget {
                target: Some(Target::Name("b1".into())),
            }),
            source_macs: vec![huge.clone(); 4],
            ..Default::default()
        },
    ] {
        let e = EndpointSpec::try_from(pb::CreateMacvlanRequest {
            endpoint: Some(r),
            create_netns: false,
        })
        .expect_err("huge");
        assert_error(&e);
    }
}
