//! Fuzzing, proptest-driven, of the fleet spec parser
//! (`linkherdctl::spec::FleetSpec::parse`, issue 11 "Proof: fuzzing").
//!
//! The spec is the one file an operator hands `linkherdctl`, and whatever
//! it accepts is applied to every host of a fleet. So on *any* text the
//! parser must return (quickly) a checked spec or a clean error — never
//! panic, never expand YAML aliases without bound — and what it accepts must
//! hold every rule docs/spec.md states, and must read back the same when
//! printed again.
//!
//! Inputs:
//! - every file of `ctl/tests/corpus/spec/` (hostile and edge specs: empty, only
//!   comments, deep nesting, huge numbers, duplicate keys, alias bombs, tabs,
//!   BOM, CRLF, ...), run every time: `ok-*` must be accepted, `err-*`
//!   refused, and each within a time budget;
//! - the valid example specs of the repository (deploy/examples, the YAML
//!   blocks of docs/ and README.md, the corpus's `ok-*` files), mutated by
//!   byte flips, truncation, duplication, line swaps and inserted YAML
//!   tokens;
//! - random YAML-ish text, and random YAML trees built from the spec's own
//!   field names;
//! - random *valid* specs, which must be accepted.
//!
//! Each property runs 256 cases by default (`PROPTEST_CASES` overrides it);
//! see ctl/tests/corpus/README.md for longer runs.

use std::{
    collections::BTreeSet,
    fmt::Write as _,
    net::IpAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use ipnet::IpNet;
use linkherd_proto::model::{MacvlanMode, NetnsRef};
use linkherdctl::{
    ipam::Pool,
    spec::{FleetSpec, SpecError},
};
use proptest::{prelude::*, sample::select};
use test_support::fuzz::config;

/// A hang guard, not a performance assertion (those live in the
/// benchmark): a parse that runs this long has met an unbounded expansion
/// or a loop. Real specs take milliseconds, the worst bomb about a second
/// in a debug build.
const PARSE_BUDGET: Duration = Duration::from_secs(30);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The files of a directory with extension `ext`, sorted.
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

fn corpus() -> Vec<PathBuf> {
    files(&repo().join("ctl/tests/corpus/spec"), "yaml")
}

/// An alias or merge-key bomb of the corpus.
fn is_bomb(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.contains("laughs") || n.contains("bomb"))
}

/// The corpus less its bombs, to mutate: a mutated bomb is stopped by the
/// same budget as the bomb (which `alias_bombs_are_refused_quickly` runs),
/// at the cost of a second per case.
fn corpus_to_mutate() -> Vec<PathBuf> {
    corpus().into_iter().filter(|p| !is_bomb(p)).collect()
}

/// The fenced ```yaml blocks of a Markdown file.
fn yaml_blocks(md: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(md) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        match &mut cur {
            None if line.trim_start().starts_with("```yaml") => cur = Some(String::new()),
            Some(block) if line.trim_start().starts_with("```") => {
                out.push(std::mem::take(block));
                cur = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    out
}

/// Valid specs to mutate: the examples, the documents' YAML that is a
/// spec, and the corpus's accepted files.
fn seeds() -> Vec<String> {
    let mut v: Vec<String> = files(&repo().join("deploy/examples"), "yaml")
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("an example spec"))
        .collect();
    for md in files(&repo().join("docs"), "md")
        .into_iter()
        .chain([repo().join("README.md")])
    {
        v.extend(
            yaml_blocks(&md)
                .into_iter()
                .filter(|b| FleetSpec::parse(b, "doc").is_ok()),
        );
    }
    for p in corpus() {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with("ok-") {
            v.push(std::fs::read_to_string(&p).expect("a corpus spec"));
        }
    }
    assert!(v.len() >= 4, "too few seed specs: {}", v.len());
    v
}

// ---------------------------------------------------------------------------
// What every parse must give

/// Parses `text` within the budget, and checks what comes back: an
/// accepted spec holds the rules and reads back the same when printed; a
/// refusal is a clean list of issues that point into the text.
fn check(text: &str) -> Result<FleetSpec, SpecError> {
    let started = Instant::now();
    let res = FleetSpec::parse(text, "fuzz.yaml");
    let took = started.elapsed();
    assert!(
        took < PARSE_BUDGET,
        "parsing {} bytes took {took:?}",
        text.len()
    );
    match &res {
        Ok(spec) => {
            assert_rules(spec);
            assert_reads_back(spec);
        }
        Err(e) => assert_clean_error(e, text),
    }
    res
}

/// The lines of `text` as YAML counts them (breaks are CRLF, CR and LF),
/// plus one: the end of input after a last line without a break is
/// reported on the line after it.
fn yaml_lines(text: &str) -> u64 {
    let crlf = text.matches("\r\n").count();
    let breaks = text.matches(['\r', '\n']).count() - crlf;
    u64::try_from(breaks).expect("small") + 2
}

fn assert_clean_error(e: &SpecError, text: &str) {
    let SpecError::Invalid { file, issues } = e else {
        panic!("parsing text gave a read error: {e}");
    };
    assert_eq!(file, "fuzz.yaml");
    assert!(!issues.is_empty(), "an error without issues");
    let shown = e.to_string();
    let lines = yaml_lines(text);
    // Every issue is shown, in order (searched from where the last one
    // was found, so a spec with thousands of issues is checked in linear
    // time).
    let mut from = 0;
    for i in issues {
        assert!(!i.path.is_empty(), "an issue without a path: {i:?}");
        assert!(!i.problem.is_empty(), "an issue without a problem: {i:?}");
        assert_eq!(i.line.is_some(), i.column.is_some(), "{i:?}");
        if let (Some(l), Some(c)) = (i.line, i.column) {
            assert!(l >= 1 && l <= lines, "{}: line {l} of {lines}", i.path);
            assert!(c >= 1, "{}: column {c}", i.path);
        }
        let one = i.to_string();
        match shown[from..].find(&one) {
            Some(at) => from += at + one.len(),
            None => panic!("the error does not show {one:?}"),
        }
    }
}

fn assert_pool(what: &str, p: &Pool, v6: bool) {
    assert_eq!(p.subnet.addr().is_ipv6(), v6, "{what}: {}", p.subnet);
    assert_eq!(
        p.subnet.trunc(),
        p.subnet,
        "{what}: host bits in {}",
        p.subnet
    );
    if let Some(g) = p.gateway {
        assert!(p.subnet.contains(&g), "{what}: gateway {g} outside");
        assert!(
            usable_in(p.subnet, g),
            "{what}: gateway {g} is not a host address"
        );
    }
    if let Some(r) = p.range {
        assert!(
            p.subnet.contains(&r.network()) && p.subnet.contains(&r.broadcast()),
            "{what}: range {r} outside {}",
            p.subnet
        );
    }
    for r in &p.reserved {
        assert!(p.subnet.contains(r), "{what}: reserved {r} outside");
    }
}

/// Not the subnet's network address, nor (IPv4 below /31) its broadcast.
fn usable_in(net: IpNet, a: IpAddr) -> bool {
    match net {
        IpNet::V4(n) => {
            n.prefix_len() >= 31 || (a != IpAddr::V4(n.network()) && a != IpAddr::V4(n.broadcast()))
        }
        IpNet::V6(n) => a != IpAddr::V6(n.network()),
    }
}

/// An endpoint's or host access's fixed address: in its family's pool,
/// not special, not the gateway, not reserved.
fn assert_fixed(what: &str, ip: IpAddr, v4: Option<&Pool>, v6: Option<&Pool>) {
    let pool = if ip.is_ipv4() { v4 } else { v6 };
    let pool = pool.unwrap_or_else(|| panic!("{what}: {ip} has no pool of its family"));
    assert!(
        pool.subnet.contains(&ip),
        "{what}: {ip} outside {}",
        pool.subnet
    );
    assert!(usable_in(pool.subnet, ip), "{what}: {ip} is special");
    assert_ne!(pool.gateway, Some(ip), "{what}: {ip} is the gateway");
    assert!(!pool.reserved.contains(&ip), "{what}: {ip} is reserved");
}

/// The rules of docs/spec.md, stated again.
fn assert_rules(s: &FleetSpec) {
    assert!(!s.hosts.is_empty(), "a spec without hosts");
    for (name, h) in &s.hosts {
        let rest = h
            .address
            .strip_prefix("https://")
            .or_else(|| h.address.strip_prefix("http://"));
        assert!(
            rest.is_some_and(|r| !r.is_empty()),
            "hosts.{name}.address {:?}",
            h.address
        );
        if let Some(p) = &h.parent {
            assert_ifname(&format!("hosts.{name}.parent"), p.as_str());
        }
    }
    let timeout = s.verify.timeout.as_millis();
    assert!(
        (1..=60_000).contains(&timeout),
        "verify.timeout_ms {timeout}"
    );
    for (name, n) in &s.networks {
        let w = format!("networks.{name}");
        assert_eq!(name, &n.name);
        assert!(
            (1..=64).contains(&name.as_str().len())
                && name
                    .as_str()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')),
            "{w}: name"
        );
        if let Some(v) = n.vlan {
            assert!((1..=4094).contains(&v.get()), "{w}.vlan {v}");
        }
        assert!(n.v4.is_some() || n.v6.is_some(), "{w}: no subnet");
        if let Some(p) = &n.v4 {
            assert_pool(&w, p, false);
        }
        if let Some(p) = &n.v6 {
            assert_pool(&w, p, true);
        }
        assert!(MacvlanMode::ALL.contains(&n.mode));
        if let Some(m) = n.mtu {
            assert!((68..=65_535).contains(&m), "{w}.mtu {m}");
        }
        for (h, p) in &n.parents {
            assert!(s.hosts.contains_key(h), "{w}: spans undeclared host {h:?}");
            assert_ifname(&format!("{w}.parents.{h}"), p.as_str());
        }
        for (h, ip) in &n.host_access {
            assert!(
                n.parents.contains_key(h),
                "{w}.host_access.{h}: not spanned"
            );
            assert_fixed(
                &format!("{w}.host_access.{h}"),
                *ip,
                n.v4.as_ref(),
                n.v6.as_ref(),
            );
        }
        let mut fixed: BTreeSet<String> = BTreeSet::new();
        for (ename, e) in &n.endpoints {
            let ew = format!("{w}.endpoints.{ename}");
            assert!(
                n.parents.contains_key(&e.host),
                "{ew}: host {:?} not spanned",
                e.host
            );
            match &e.netns {
                NetnsRef::Named(ns) => {
                    assert!(
                        !ns.is_empty() && ns != "." && ns != ".." && !ns.contains('/'),
                        "{ew}: netns {ns:?}"
                    );
                    assert!(!ns.chars().any(|c| c.is_whitespace() || c.is_control()));
                }
                NetnsRef::Pid(p) => assert_ne!(*p, 0, "{ew}: pid 0"),
                NetnsRef::Path(p) => panic!("{ew}: a spec cannot give a path, got {p:?}"),
            }
            if let Some(ip) = e.ip {
                assert!(ip.is_ipv4(), "{ew}.ip {ip}");
                assert_fixed(&ew, ip, n.v4.as_ref(), None);
                assert!(fixed.insert(format!("ip {ip}")), "{ew}: {ip} fixed twice");
            }
            if let Some(ip) = e.ip6 {
                assert!(ip.is_ipv6(), "{ew}.ip6 {ip}");
                assert_fixed(&ew, ip, None, n.v6.as_ref());
                assert!(fixed.insert(format!("ip {ip}")), "{ew}: {ip} fixed twice");
            }
            if let Some(m) = e.mac {
                assert!(!m.is_multicast() && !m.is_zero(), "{ew}.mac {m}");
                assert!(fixed.insert(format!("mac {m}")), "{ew}: {m} fixed twice");
            }
        }
    }
}

fn assert_ifname(what: &str, s: &str) {
    assert!(
        (1..=15).contains(&s.len())
            && s != "."
            && s != ".."
            && !s
                .chars()
                .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control()),
        "{what}: interface name {s:?}"
    );
}

// ---------------------------------------------------------------------------
// Printing a spec, to read it back

/// A YAML double-quoted scalar. Only what YAML does not print as is
/// (control characters, line and paragraph separators, the BOM, ...) is
/// escaped, so the text stays as long as the value.
fn q(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        let printable = matches!(u32::from(c), 0x20..=0x7e | 0xa0..=0xd7ff | 0xe000..=0xfffd | 0x10000..)
            && !matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}');
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if printable => out.push(c),
            c if u32::from(c) <= 0xffff => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => {
                let _ = write!(out, "\\U{:08x}", u32::from(c));
            }
        }
    }
    out.push('"');
    out
}

/// One `key: value` line of a block mapping at `indent`; a long key (past
/// YAML's 1024 characters of an implicit key) is written as an explicit
/// `? key` instead.
fn entry(out: &mut String, indent: usize, k: &str, v: &str) {
    let pad = " ".repeat(indent);
    let k = q(k);
    if k.chars().count() < 1000 {
        let _ = writeln!(out, "{pad}{k}: {v}");
    } else {
        let _ = writeln!(out, "{pad}? {k}\n{pad}: {v}");
    }
}

fn list<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    let v: Vec<String> = items.into_iter().map(|i| q(&i.to_string())).collect();
    format!("[{}]", v.join(", "))
}

fn print_pool(out: &mut String, p: &Pool, sfx: &str) {
    let _ = writeln!(out, "    subnet{sfx}: {}", q(&p.subnet.to_string()));
    if let Some(g) = p.gateway {
        let _ = writeln!(out, "    gateway{sfx}: {}", q(&g.to_string()));
    }
    if let Some(r) = p.range {
        let _ = writeln!(out, "    ip_range{sfx}: {}", q(&r.to_string()));
    }
    let _ = writeln!(out, "    reserved{sfx}: {}", list(&p.reserved));
}

/// The spec as YAML, every value explicit.
fn print(s: &FleetSpec) -> String {
    let mut out = String::from("hosts:\n");
    for (name, h) in &s.hosts {
        entry(&mut out, 2, name, "");
        let _ = writeln!(out, "    address: {}", q(&h.address));
        if let Some(p) = &h.parent {
            let _ = writeln!(out, "    parent: {}", q(p.as_str()));
        }
        if !h.labels.is_empty() {
            out.push_str("    labels:\n");
            for (k, v) in &h.labels {
                entry(&mut out, 6, k, &q(v));
            }
        }
    }
    out.push_str(if s.networks.is_empty() {
        "networks: {}\n"
    } else {
        "networks:\n"
    });
    for (name, n) in &s.networks {
        let _ = writeln!(out, "  {}:", q(name.as_str()));
        if let Some(v) = n.vlan {
            let _ = writeln!(out, "    vlan: {}", v.get());
        }
        if let Some(p) = &n.v4 {
            print_pool(&mut out, p, "");
        }
        if let Some(p) = &n.v6 {
            print_pool(&mut out, p, "_v6");
        }
        let _ = writeln!(out, "    mode: {}", q(n.mode.as_str()));
        if let Some(m) = n.mtu {
            let _ = writeln!(out, "    mtu: {m}");
        }
        let _ = writeln!(out, "    hosts: {}", list(n.parents.keys()));
        out.push_str(if n.parents.is_empty() {
            "    parents: {}\n"
        } else {
            "    parents:\n"
        });
        for (h, p) in &n.parents {
            entry(&mut out, 6, h, &q(p.as_str()));
        }
        out.push_str(if n.host_access.is_empty() {
            "    host_access: {}\n"
        } else {
            "    host_access:\n"
        });
        for (h, a) in &n.host_access {
            entry(&mut out, 6, h, &q(&a.to_string()));
        }
        if let Some(c) = &n.containers {
            out.push_str("    containers:\n");
            for (sfx, b) in [("", c.v4), ("_v6", c.v6)] {
                if let Some(b) = b {
                    let _ = writeln!(out, "      block{sfx}: {}", b.len);
                    let _ = writeln!(out, "      range{sfx}: {}", q(&b.range.to_string()));
                }
            }
            let _ = writeln!(out, "      hosts: {}", list(c.hosts.iter()));
        }
        out.push_str("    endpoints:\n");
        for (ename, e) in &n.endpoints {
            let _ = writeln!(
                out,
                "      {}:\n        host: {}",
                q(ename.as_str()),
                q(&e.host)
            );
            match &e.netns {
                NetnsRef::Named(ns) => {
                    let _ = writeln!(out, "        netns: {}", q(ns));
                }
                NetnsRef::Pid(p) => {
                    let _ = writeln!(out, "        pid: {p}");
                }
                NetnsRef::Path(p) => panic!("a spec endpoint in {p:?}"),
            }
            for (f, v) in [
                ("ip", e.ip.map(|a| a.to_string())),
                ("ip6", e.ip6.map(|a| a.to_string())),
                ("mac", e.mac.map(|m| m.to_string())),
            ] {
                if let Some(v) = v {
                    let _ = writeln!(out, "        {f}: {}", q(&v));
                }
            }
        }
    }
    let _ = writeln!(
        out,
        "verify:\n  mesh: {}\n  isolation: {}\n  containers: {}\n  mode: {}\n  timeout_ms: {}",
        s.verify.reach,
        s.verify.isolation,
        s.verify.containers,
        match s.verify.mode {
            linkherdctl::spec::VerifyMode::Sampled => "sampled",
            linkherdctl::spec::VerifyMode::Mesh => "mesh",
        },
        s.verify.timeout.as_millis()
    );
    out
}

/// An accepted spec, printed in full, reads back as the same spec.
fn assert_reads_back(s: &FleetSpec) {
    let text = print(s);
    match FleetSpec::parse(&text, "printed.yaml") {
        Ok(again) => assert_eq!(&again, s, "printed as:\n{text}"),
        Err(e) => panic!("the printed spec is refused: {e}\n{text}"),
    }
}

// ---------------------------------------------------------------------------
// The corpus, every run

fn expectation(p: &Path) -> Option<bool> {
    let name = p.file_name()?.to_str()?;
    if name.starts_with("ok-") {
        Some(true)
    } else if name.starts_with("err-") {
        Some(false)
    } else {
        None
    }
}

/// Every corpus file gives a spec or a clean error, in time; `ok-*` files
/// are accepted and `err-*` files refused.
#[test]
fn every_corpus_spec_is_accepted_or_refused_cleanly() {
    let files = corpus();
    assert!(files.len() >= 20, "the corpus is {} files", files.len());
    let mut wrong = Vec::new();
    for p in &files {
        let bytes = std::fs::read(p).expect("a corpus file");
        let text = String::from_utf8_lossy(&bytes);
        let res = check(&text);
        // The file as linkherdctl reads it, too (but a bomb only once: it
        // costs the parser's whole node budget, a second in a debug build).
        if !is_bomb(p) {
            let loaded = FleetSpec::load(p);
            assert_eq!(
                loaded.is_ok(),
                res.is_ok(),
                "{}: load and parse differ",
                p.display()
            );
        }
        let shown = match &res {
            Ok(_) => "accepted".to_owned(),
            Err(e) => format!(
                "refused: {}",
                e.to_string().chars().take(300).collect::<String>()
            ),
        };
        if let Some(ok) = expectation(p)
            && ok != res.is_ok()
        {
            wrong.push(format!("{}: {shown}", p.display()));
        }
    }
    assert!(
        wrong.is_empty(),
        "unexpected outcomes:\n{}",
        wrong.join("\n")
    );
}

/// The YAML alias bombs of the corpus are refused within the budget: the
/// parser's own limits (nodes, aliases per anchor, scalar bytes) stop the
/// expansion long before it fills memory.
#[test]
fn alias_bombs_are_refused_quickly() {
    let mut seen = 0;
    for p in corpus().into_iter().filter(|p| is_bomb(p)) {
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        seen += 1;
        let text = std::fs::read_to_string(&p).expect("a corpus file");
        let started = Instant::now();
        let res = FleetSpec::parse(&text, &name);
        let took = started.elapsed();
        assert!(res.is_err(), "{name} was accepted");
        assert!(took < PARSE_BUDGET, "{name} took {took:?}");
    }
    assert!(seen >= 2, "the corpus has {seen} alias bombs");
}

/// Many aliases of one large anchored scalar: the expansion is refused or
/// stays within a bound (the parser's 64 MiB of scalar text), however many
/// aliases there are.
#[test]
fn aliases_of_a_large_scalar_are_bounded() {
    let big = "x".repeat(64 * 1024);
    for aliases in [10usize, 100, 1_000, 10_000] {
        let text = format!(
            "hosts:\n  no1:\n    address: https://no1:1\n    labels: {{ a: &big \"{big}\" }}\nnetworks:\n  n:\n    subnet: 10.0.0.0/24\n    reserved: [{}]\n",
            vec!["*big"; aliases].join(", ")
        );
        let started = Instant::now();
        let res = FleetSpec::parse(&text, "aliases.yaml");
        let took = started.elapsed();
        assert!(took < PARSE_BUDGET, "{aliases} aliases took {took:?}");
        let e = res.expect_err("reserved addresses that are not addresses");
        let size: usize = e.issues().iter().map(|i| i.problem.len()).sum();
        assert!(
            size <= 64 * 1024 * 1024,
            "{aliases} aliases: {size} bytes of errors"
        );
    }
}

// ---------------------------------------------------------------------------
// Strategies

/// A change to a text, at a position taken modulo its length.
#[derive(Debug, Clone)]
enum Edit {
    FlipByte(usize, u8),
    Truncate(usize),
    Duplicate(usize, usize),
    SwapLines(usize, usize),
    DuplicateLine(usize),
    DeleteLine(usize),
    Indent(usize, &'static str),
    Insert(usize, String),
    /// The value after `key: ` on a line, replaced.
    Value(usize, String),
}

/// Fragments that mean something to YAML or to the spec.
fn token() -> BoxedStrategy<String> {
    prop_oneof![
        4 => select(vec![
            ": ", ":", "- ", "? ", "{", "}", "[", "]", ",", "&a ", "*a", "&a", "*b ", "<<: ", "<<: *a",
            "!!str ", "!!int ", "!!binary ", "!custom ", "!<tag:yaml.org,2002:str> ", "%YAML 1.2\n",
            "%TAG ! tag:x,2000:\n", "---\n", "...\n", "#", " #", "\"", "'", "|", ">", "|-", ">+",
            "~", "null", "true", "yes", "on", "0x10", "0o17", "1e9", ".inf", "-.inf", ".nan",
            "-1", "0", "4094", "4095", "65536", "4294967296", "99999999999999999999999", "\t",
            "\r", "\r\n", "\n", "\u{feff}", "\u{85}", "\u{2028}", "\0", "é", "💥", "\\", "\\u0000",
            "\\x", "=", "..", "../", "/", "https://", "10.0.0.0/24", "fd00::/64", "02:42:ac:10:0a:0a",
            "ff:ff:ff:ff:ff:ff", "hosts:", "networks:", "endpoints:", "verify:", "host:", "no1",
        ])
        .prop_map(str::to_owned),
        1 => "\\PC{1,8}",
        1 => (any::<char>(), 1usize..2000).prop_map(|(c, n)| c.to_string().repeat(n)),
    ]
    .boxed()
}

fn edit() -> BoxedStrategy<Edit> {
    prop_oneof![
        4 => (any::<usize>(), 1u8..=255).prop_map(|(i, x)| Edit::FlipByte(i, x)),
        1 => any::<usize>().prop_map(Edit::Truncate),
        1 => (any::<usize>(), 1usize..200).prop_map(|(i, n)| Edit::Duplicate(i, n)),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        1 => any::<usize>().prop_map(Edit::DuplicateLine),
        1 => any::<usize>().prop_map(Edit::DeleteLine),
        1 => (any::<usize>(), select(vec![" ", "  ", "\t", "    "]))
            .prop_map(|(i, s)| Edit::Indent(i, s)),
        4 => (any::<usize>(), token()).prop_map(|(i, t)| Edit::Insert(i, t)),
        4 => (any::<usize>(), scalar()).prop_map(|(i, v)| Edit::Value(i, v)),
    ]
    .boxed()
}

/// One edit most often, up to five.
fn edits() -> BoxedStrategy<Vec<Edit>> {
    prop_oneof![
        3 => prop::collection::vec(edit(), 1..2),
        1 => prop::collection::vec(edit(), 2..6),
    ]
    .boxed()
}

/// `i` moved back to a char boundary of `s`.
fn boundary(s: &str, i: usize) -> usize {
    let mut i = i % (s.len() + 1);
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// `t` with `f` applied to its lines (kept with their line breaks).
fn on_lines(t: &str, f: impl FnOnce(&mut Vec<String>)) -> String {
    let mut lines: Vec<String> = t.split_inclusive('\n').map(str::to_owned).collect();
    if !lines.is_empty() {
        f(&mut lines);
    }
    lines.concat()
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut t = text.to_owned();
    for e in edits {
        t = match e {
            Edit::FlipByte(i, x) if !t.is_empty() => {
                let mut b = t.into_bytes();
                let at = i % b.len();
                b[at] ^= x;
                String::from_utf8_lossy(&b).into_owned()
            }
            Edit::Truncate(i) => t[..boundary(&t, *i)].to_owned(),
            Edit::Duplicate(i, n) => {
                let from = boundary(&t, *i);
                let to = boundary(&t, (from + n).min(t.len()));
                format!("{}{}{}", &t[..to], &t[from..to], &t[to..])
            }
            Edit::SwapLines(a, b) => on_lines(&t, |l| {
                let n = l.len();
                l.swap(a % n, b % n);
            }),
            Edit::DuplicateLine(a) => on_lines(&t, |l| {
                let at = a % l.len();
                l.insert(at, l[at].clone());
            }),
            Edit::DeleteLine(a) => on_lines(&t, |l| {
                let at = a % l.len();
                l.remove(at);
            }),
            Edit::Indent(i, s) => on_lines(&t, |l| {
                let at = i % l.len();
                l[at].insert_str(0, s);
            }),
            Edit::Value(i, v) => on_lines(&t, |l| {
                let with: Vec<usize> = (0..l.len()).filter(|j| l[*j].contains(": ")).collect();
                if let Some(at) = with.get(i % with.len().max(1)) {
                    let line = &l[*at];
                    let key_end = line.find(": ").map_or(0, |k| k + 2);
                    let end = if line.ends_with('\n') { "\n" } else { "" };
                    l[*at] = format!("{}{v}{end}", &line[..key_end]);
                }
            }),
            Edit::Insert(i, tok) => {
                let at = boundary(&t, *i);
                format!("{}{tok}{}", &t[..at], &t[at..])
            }
            _ => t,
        };
    }
    t
}

/// A YAML node over the spec's own vocabulary.
#[derive(Debug, Clone)]
enum Node {
    Scalar(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

fn key() -> BoxedStrategy<String> {
    prop_oneof![
        6 => select(vec![
            "hosts", "networks", "verify", "no1", "no2", "address", "parent", "labels", "n",
            "mac_net10", "vlan", "subnet", "gateway", "ip_range", "reserved", "subnet_v6",
            "gateway_v6", "ip_range_v6", "reserved_v6", "mode", "mtu", "host_access", "parents",
            "endpoints", "b1", "b2", "host", "netns", "pid", "ip", "ip6", "mac", "mesh",
            "isolation", "containers", "timeout_ms", "<<", "?", "", " ", "-",
        ])
        .prop_map(str::to_owned),
        1 => "\\PC{0,6}",
    ]
    .boxed()
}

fn scalar() -> BoxedStrategy<String> {
    prop_oneof![
        6 => select(vec![
            "https://no1.lab:7443", "http://x:1", "https://", "ens192", "eth0", "eth0.10",
            "a/b", "10.0.0.0/24", "10.0.0.1", "10.0.0.5", "10.0.0.255", "10.0.0.0/33",
            "fd00::/64", "fd00::1", "fd00::", "bridge", "vepa", "private", "passthru", "source",
            "macvtap", "02:42:ac:10:0a:0a", "ff:ff:ff:ff:ff:ff", "+2:42:ac:10:0a:0a", "no1",
            "no2", "b1", "1", "0", "-1", "68", "65535", "65536", "4094", "4095", "60000",
            "60001", "4294967296", "1e3", "true", "false", "~", "null", "''", "\"\"", "..",
            "../../etc", "a b", "a=b",
        ])
        .prop_map(str::to_owned),
        1 => "\\PC{0,12}",
    ]
    .boxed()
}

fn node() -> BoxedStrategy<Node> {
    scalar()
        .prop_map(Node::Scalar)
        .prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Node::Seq),
                prop::collection::vec((key(), inner), 0..6).prop_map(Node::Map),
            ]
        })
        .boxed()
}

/// YAML text of a node: block style, with flow style below `flow_at`.
fn render(n: &Node, depth: usize, flow_at: usize, quote: bool, out: &mut String) {
    let scalar = |s: &str| if quote { q(s) } else { s.to_owned() };
    let pad = "  ".repeat(depth);
    match n {
        Node::Scalar(s) => {
            let _ = writeln!(out, "{}", scalar(s));
        }
        _ if depth >= flow_at => {
            let _ = writeln!(out, "{}", flow(n, quote));
        }
        Node::Seq(items) if items.is_empty() => out.push_str("[]\n"),
        Node::Map(items) if items.is_empty() => out.push_str("{}\n"),
        Node::Seq(items) => {
            out.push('\n');
            for i in items {
                let _ = write!(out, "{pad}- ");
                render(i, depth + 1, flow_at, quote, out);
            }
        }
        Node::Map(items) => {
            out.push('\n');
            for (k, v) in items {
                let _ = write!(out, "{pad}{}: ", scalar(k));
                render(v, depth + 1, flow_at, quote, out);
            }
        }
    }
}

fn flow(n: &Node, quote: bool) -> String {
    match n {
        Node::Scalar(s) => {
            if quote {
                q(s)
            } else {
                s.clone()
            }
        }
        Node::Seq(items) => {
            let v: Vec<String> = items.iter().map(|i| flow(i, quote)).collect();
            format!("[{}]", v.join(", "))
        }
        Node::Map(items) => {
            let v: Vec<String> = items
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}: {}",
                        if quote { q(k) } else { k.clone() },
                        flow(v, quote)
                    )
                })
                .collect();
            format!("{{{}}}", v.join(", "))
        }
    }
}

/// A spec-shaped YAML document: the top-level keys of a spec, with random
/// trees under them.
fn yamlish_tree() -> BoxedStrategy<String> {
    (
        prop::collection::vec(
            (select(vec!["hosts", "networks", "verify", "extra"]), node()),
            0..4,
        ),
        0usize..4,
        any::<bool>(),
    )
        .prop_map(|(top, flow_at, quote)| {
            let mut out = String::new();
            for (k, v) in top {
                out.push_str(k);
                out.push_str(": ");
                render(&v, 1, flow_at, quote, &mut out);
            }
            out
        })
        .boxed()
}

/// Text made of YAML's punctuation, spec words and noise.
fn yamlish_soup() -> BoxedStrategy<String> {
    prop_oneof![
        2 => prop::collection::vec(prop_oneof![token(), key(), scalar()], 0..60)
            .prop_map(|v| v.concat()),
        1 => "[ -~\t\n]{0,400}",
        1 => any::<String>(),
    ]
    .boxed()
}

// ---- valid specs

#[derive(Debug, Clone)]
struct GenHost {
    name: String,
    parent: Option<String>,
    labels: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
struct GenEndpoint {
    name: String,
    host: usize,
    netns: u8,
    ip: bool,
    ip6: bool,
    mac: bool,
}

#[derive(Debug, Clone)]
struct GenNetwork {
    name: String,
    vlan: Option<u16>,
    prefix: u8,
    gateway: bool,
    range: bool,
    reserved: BTreeSet<u8>,
    v6: bool,
    v4: bool,
    mode: MacvlanMode,
    mtu: Option<u32>,
    list_hosts: bool,
    overrides: Vec<(usize, String)>,
    host_access: Vec<usize>,
    endpoints: Vec<GenEndpoint>,
}

#[derive(Debug, Clone)]
struct GenSpec {
    hosts: Vec<GenHost>,
    networks: Vec<GenNetwork>,
    verify: Option<(Option<bool>, Option<bool>, Option<u64>)>,
    flow: bool,
}

fn label_text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "[a-z0-9_-]{1,8}",
        1 => select(vec!["a b", "a=b", "é", "💥", "\u{202e}x", "'", "\"", "#", ": ", "- x", "~", "null", "true", "1e3", "\u{2028}", "\\", "&a", "*a", "!x", "%", "@", "`"])
            .prop_map(str::to_owned),
        1 => "\\PC{0,12}",
    ]
    .boxed()
}

fn gen_host() -> BoxedStrategy<GenHost> {
    (
        prop_oneof![4 => "[a-z][a-z0-9-]{0,7}", 1 => "[A-Za-z0-9_.-]{1,12}"],
        prop::option::weighted(0.8, "[a-z][a-z0-9]{0,9}"),
        prop::collection::btree_map(
            label_text().prop_filter("a label name", |k| !k.is_empty()),
            label_text(),
            0..3,
        ),
    )
        .prop_map(|(name, parent, labels)| GenHost {
            name,
            parent,
            labels,
        })
        .boxed()
}

fn gen_network() -> BoxedStrategy<GenNetwork> {
    let endpoint = ("[a-z][a-z0-9_]{0,6}", 0usize..8, 0u8..3, any::<[bool; 3]>()).prop_map(
        |(name, host, netns, [ip, ip6, mac])| GenEndpoint {
            name,
            host,
            netns,
            ip,
            ip6,
            mac,
        },
    );
    (
        (
            "[a-z][a-z0-9_.-]{0,10}",
            prop::option::of(1u16..=4094),
            select(vec![16u8, 24, 28]),
            any::<[bool; 5]>(),
            prop::collection::btree_set(2u8..10, 0..3),
        ),
        (
            select(MacvlanMode::ALL.to_vec()),
            prop::option::of(68u32..=65_535),
            prop::collection::vec((0usize..8, "[a-z][a-z0-9]{0,9}"), 0..2),
            prop::collection::vec(0usize..8, 0..2),
            prop::collection::vec(endpoint, 0..4),
        ),
    )
        .prop_map(
            |(
                (name, vlan, prefix, [gateway, range, v6, v4, list_hosts], reserved),
                (mode, mtu, overrides, host_access, endpoints),
            )| GenNetwork {
                name,
                vlan,
                prefix,
                gateway,
                range,
                reserved,
                v6,
                v4: v4 || !v6,
                mode,
                mtu,
                list_hosts,
                overrides,
                host_access,
                endpoints,
            },
        )
        .boxed()
}

fn gen_spec() -> BoxedStrategy<GenSpec> {
    (
        prop::collection::vec(gen_host(), 1..4),
        prop::collection::vec(gen_network(), 0..4),
        prop::option::of((
            prop::option::of(any::<bool>()),
            prop::option::of(any::<bool>()),
            prop::option::of(1u64..=60_000),
        )),
        any::<bool>(),
    )
        .prop_map(|(mut hosts, mut networks, verify, flow)| {
            // Distinct names: host names by index, network and endpoint
            // names by position.
            for (i, h) in hosts.iter_mut().enumerate() {
                h.name = format!("{}{i}", h.name);
            }
            for (i, n) in networks.iter_mut().enumerate() {
                n.name = format!("{}{i}", n.name.chars().take(50).collect::<String>());
                for (j, e) in n.endpoints.iter_mut().enumerate() {
                    e.name = format!("{}{j}", e.name);
                }
            }
            GenSpec {
                hosts,
                networks,
                verify,
                flow,
            }
        })
        .boxed()
}

/// What a generated spec must read as, in numbers.
struct Expected {
    hosts: usize,
    networks: usize,
    endpoints: usize,
}

/// The YAML text of a generated spec. Every rule is kept by construction:
/// network `k` owns 10.k.0.0/PREFIX and fd00:k::/64, endpoint `j` gets .20+j,
/// host access `i` gets .200+i (a /28 has neither, so they are left out).
fn gen_text(g: &GenSpec) -> (String, Expected) {
    let mut out = String::from("hosts:\n");
    for h in &g.hosts {
        let _ = writeln!(out, "  {}:", q(&h.name));
        let _ = writeln!(
            out,
            "    address: {}",
            q(&format!("https://{}:7443", h.name))
        );
        if let Some(p) = &h.parent {
            let _ = writeln!(out, "    parent: {p}");
        }
        if !h.labels.is_empty() {
            let l: Vec<String> = h
                .labels
                .iter()
                .map(|(k, v)| format!("{}: {}", q(k), q(v)))
                .collect();
            let _ = writeln!(out, "    labels: {{{}}}", l.join(", "));
        }
    }
    out.push_str(if g.networks.is_empty() {
        "networks: {}\n"
    } else {
        "networks:\n"
    });
    let nh = g.hosts.len();
    let mut endpoints = 0;
    for (k, n) in g.networks.iter().enumerate() {
        let _ = writeln!(out, "  {}:", n.name);
        if let Some(v) = n.vlan {
            let _ = writeln!(out, "    vlan: {v}");
        }
        let big = n.prefix <= 24;
        if n.v4 {
            let _ = writeln!(out, "    subnet: 10.{k}.0.0/{}", n.prefix);
            if n.gateway {
                let _ = writeln!(out, "    gateway: 10.{k}.0.1");
            }
            if n.range {
                let _ = writeln!(out, "    ip_range: 10.{k}.0.0/{}", n.prefix + 1);
            }
            if !n.reserved.is_empty() {
                let r: Vec<String> = n.reserved.iter().map(|d| format!("10.{k}.0.{d}")).collect();
                let _ = writeln!(out, "    reserved: [{}]", r.join(", "));
            }
        }
        if n.v6 {
            let _ = writeln!(out, "    subnet_v6: fd00:{k}::/64");
            if n.gateway {
                let _ = writeln!(out, "    gateway_v6: fd00:{k}::1");
            }
        }
        let _ = writeln!(out, "    mode: {}", n.mode.as_str());
        if let Some(m) = n.mtu {
            let _ = writeln!(out, "    mtu: {m}");
        }
        // The hosts spanned: endpoints' and host accesses', plus, when the
        // list is written, every host with an override.
        let mut span: BTreeSet<usize> = n.endpoints.iter().map(|e| e.host % nh).collect();
        let access: BTreeSet<usize> = if n.v4 && big {
            n.host_access.iter().map(|h| h % nh).collect()
        } else {
            BTreeSet::new()
        };
        span.extend(&access);
        if n.list_hosts {
            span.extend(n.overrides.iter().map(|(h, _)| h % nh));
            let l: Vec<String> = span.iter().map(|h| q(&g.hosts[*h].name)).collect();
            let _ = writeln!(out, "    hosts: [{}]", l.join(", "));
        }
        let mut parents: Vec<String> = Vec::new();
        let mut given = BTreeSet::new();
        for (h, p) in &n.overrides {
            let h = h % nh;
            if span.contains(&h) && given.insert(h) {
                parents.push(format!("{}: {p}", q(&g.hosts[h].name)));
            }
        }
        for h in &span {
            if g.hosts[*h].parent.is_none() && given.insert(*h) {
                parents.push(format!("{}: eth9", q(&g.hosts[*h].name)));
            }
        }
        if !parents.is_empty() {
            let _ = writeln!(out, "    parents: {{{}}}", parents.join(", "));
        }
        if !access.is_empty() {
            let l: Vec<String> = access
                .iter()
                .enumerate()
                .map(|(i, h)| format!("{}: 10.{k}.0.{}", q(&g.hosts[*h].name), 200 + i))
                .collect();
            let _ = writeln!(out, "    host_access: {{{}}}", l.join(", "));
        }
        if !n.endpoints.is_empty() {
            out.push_str("    endpoints:\n");
        }
        for (j, e) in n.endpoints.iter().enumerate() {
            endpoints += 1;
            let mut fields = vec![format!("host: {}", q(&g.hosts[e.host % nh].name))];
            match e.netns {
                1 => fields.push(format!("netns: ns-{k}-{j}")),
                2 => fields.push(format!("pid: {}", 100 + j)),
                _ => {}
            }
            if e.ip && n.v4 && big {
                fields.push(format!("ip: 10.{k}.0.{}", 20 + j));
            }
            if e.ip6 && n.v6 {
                fields.push(format!("ip6: fd00:{k}::{:x}", 20 + j));
            }
            if e.mac {
                fields.push(format!("mac: 02:00:00:00:{k:02x}:{j:02x}"));
            }
            if g.flow {
                let _ = writeln!(out, "      {}: {{ {} }}", e.name, fields.join(", "));
            } else {
                let _ = writeln!(out, "      {}:", e.name);
                for f in fields {
                    let _ = writeln!(out, "        {f}");
                }
            }
        }
    }
    if let Some((mesh, isolation, timeout)) = g.verify {
        out.push_str("verify:\n");
        for (k, v) in [
            ("mesh", mesh.map(|b| b.to_string())),
            ("isolation", isolation.map(|b| b.to_string())),
            ("timeout_ms", timeout.map(|t| t.to_string())),
        ] {
            if let Some(v) = v {
                let _ = writeln!(out, "  {k}: {v}");
            }
        }
    }
    (
        out,
        Expected {
            hosts: nh,
            networks: g.networks.len(),
            endpoints,
        },
    )
}

// ---------------------------------------------------------------------------
// The properties

proptest! {
    #![proptest_config(config(256))]

    /// A valid example spec, mutated: a spec or a clean error, in time.
    #[test]
    fn mutated_seed_specs(
        seed in select(seeds()),
        edits in edits(),
    ) {
        let _ = check(&apply(&seed, &edits));
    }

    /// A corpus file, mutated.
    #[test]
    fn mutated_corpus_specs(
        file in select(corpus_to_mutate()),
        edits in edits(),
    ) {
        let bytes = std::fs::read(&file).expect("a corpus file");
        let _ = check(&apply(&String::from_utf8_lossy(&bytes), &edits));
    }

    /// Random YAML trees over the spec's own field names.
    #[test]
    fn random_yaml_trees(text in yamlish_tree()) {
        let _ = check(&text);
    }

    /// Random YAML-ish text.
    #[test]
    fn random_yaml_soup(text in yamlish_soup()) {
        let _ = check(&text);
    }

    /// A valid spec, generated, is accepted as written (and, as every
    /// accepted spec, reads back the same when printed).
    #[test]
    fn valid_specs_are_accepted(g in gen_spec()) {
        let (text, want) = gen_text(&g);
        let spec = check(&text).map_err(|e| format!("{e}\n{text}"));
        let spec = match spec {
            Ok(s) => s,
            Err(e) => return Err(TestCaseError::fail(format!("a valid spec was refused: {e}"))),
        };
        prop_assert_eq!(spec.hosts.len(), want.hosts);
        prop_assert_eq!(spec.networks.len(), want.networks);
        let endpoints: usize = spec.networks.values().map(|n| n.endpoints.len()).sum();
        prop_assert_eq!(endpoints, want.endpoints);
        for h in &g.hosts {
            let got = &spec.hosts[&h.name];
            prop_assert_eq!(&got.labels, &h.labels);
            prop_assert_eq!(got.parent.as_ref().map(|p| p.as_str()), h.parent.as_deref());
        }
        for (k, n) in g.networks.iter().enumerate() {
            let name = linkherd_proto::model::ObjName::parse("n", &n.name).expect("a valid name");
            let got = &spec.networks[&name];
            prop_assert_eq!(got.vlan.map(|v| v.get()), n.vlan);
            prop_assert_eq!((got.mode, got.mtu), (n.mode, n.mtu));
            prop_assert_eq!(
                got.v4.as_ref().map(|p| p.subnet.to_string()),
                n.v4.then(|| format!("10.{k}.0.0/{}", n.prefix))
            );
            prop_assert_eq!(got.v6.is_some(), n.v6);
            for (j, e) in n.endpoints.iter().enumerate() {
                let ename = linkherd_proto::model::ObjName::parse("n", &e.name).expect("a valid name");
                let decl = &got.endpoints[&ename];
                let ip = (e.ip && n.v4 && n.prefix <= 24).then(|| format!("10.{k}.0.{}", 20 + j));
                prop_assert_eq!(decl.ip.map(|a| a.to_string()), ip);
                prop_assert_eq!(decl.mac.is_some(), e.mac);
                let want_ns = match e.netns {
                    1 => NetnsRef::Named(format!("ns-{k}-{j}")),
                    2 => NetnsRef::Pid(u32::try_from(100 + j).expect("small")),
                    _ => NetnsRef::Named(e.name.clone()),
                };
                prop_assert_eq!(&decl.netns, &want_ns);
            }
        }
    }

    /// A valid spec, then mutated: the mutations land in a spec that uses
    /// every field.
    #[test]
    fn mutated_valid_specs(
        g in gen_spec(),
        edits in edits(),
    ) {
        let (text, _) = gen_text(&g);
        let _ = check(&apply(&text, &edits));
    }
}
