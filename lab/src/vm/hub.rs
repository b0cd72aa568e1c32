//! The lab's wire: an Ethernet hub for QEMU `-netdev socket` NICs.
//!
//! Each guest's data NIC connects to the hub over loopback TCP; QEMU frames
//! each Ethernet frame with a 4-byte big-endian length. The hub repeats
//! every frame to every other guest and writes it to a pcap file, which is
//! how the tests see the real 802.1Q tags on the wire.

use std::{
    fs::File,
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::Path,
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use pcap_file::{
    DataLink,
    pcap::{PcapHeader, PcapPacket, PcapWriter},
};

type Ports = Arc<Mutex<Vec<(usize, TcpStream)>>>;
// Unbuffered: every frame is in the file as soon as it crossed the wire.
type Capture = Arc<Mutex<PcapWriter<File>>>;

/// Largest frame accepted (jumbo frames plus VLAN tags).
const MAX_FRAME: usize = 65_536;

fn read_frame(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes"),
        ));
    }
    let mut frame = vec![0u8; len];
    s.read_exact(&mut frame)?;
    Ok(frame)
}

fn repeat(ports: &Ports, from: usize, frame: &[u8]) {
    let len = u32::try_from(frame.len()).unwrap_or(0).to_be_bytes();
    let mut ports = ports.lock().unwrap_or_else(|p| p.into_inner());
    // A port whose write fails is gone (its guest stopped).
    ports.retain_mut(|(id, s)| {
        *id == from || (s.write_all(&len).is_ok() && s.write_all(frame).is_ok())
    });
}

fn capture(cap: &Capture, frame: &[u8]) {
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut w = cap.lock().unwrap_or_else(|p| p.into_inner());
    let _ = w.write_packet(&PcapPacket::new(
        ts,
        u32::try_from(frame.len()).unwrap_or(0),
        frame,
    ));
}

/// Serves the hub on `listener` until the process is killed.
pub fn serve(listener: TcpListener, pcap: &Path) -> std::io::Result<()> {
    let file = File::create(pcap)?;
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        ..PcapHeader::default()
    };
    let cap: Capture = Arc::new(Mutex::new(
        PcapWriter::with_header(file, header).map_err(|e| std::io::Error::other(e.to_string()))?,
    ));
    let ports: Ports = Arc::default();
    for (id, stream) in listener.incoming().enumerate() {
        let Ok(stream) = stream else { continue };
        let _ = stream.set_nodelay(true);
        let Ok(mut reader) = stream.try_clone() else {
            continue;
        };
        ports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((id, stream));
        let (ports, cap) = (ports.clone(), cap.clone());
        std::thread::spawn(move || {
            while let Ok(frame) = read_frame(&mut reader) {
                capture(&cap, &frame);
                repeat(&ports, id, &frame);
            }
            ports
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|(i, _)| *i != id);
        });
    }
    Ok(())
}

/// Every 802.1Q frame of a capture, as (VLAN id, source MAC).
fn tagged(pcap: &Path) -> std::io::Result<Vec<(u16, [u8; 6])>> {
    let mut reader = pcap_file::pcap::PcapReader::new(File::open(pcap)?)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut out = Vec::new();
    while let Some(pkt) = reader.next_packet() {
        let Ok(pkt) = pkt else { break };
        let d = &pkt.data;
        if d.len() >= 16 && d[12] == 0x81 && d[13] == 0x00 {
            let vid = u16::from_be_bytes([d[14], d[15]]) & 0x0fff;
            let mut src = [0u8; 6];
            src.copy_from_slice(&d[6..12]);
            out.push((vid, src));
        }
    }
    Ok(out)
}

/// 802.1Q VLAN ids seen in a capture, with how many frames carried each.
pub fn vlan_ids(pcap: &Path) -> std::io::Result<std::collections::BTreeMap<u16, usize>> {
    let mut seen = std::collections::BTreeMap::new();
    for (vid, _) in tagged(pcap)? {
        *seen.entry(vid).or_insert(0) += 1;
    }
    Ok(seen)
}

/// Per VLAN id of a capture, the source MACs (`02:ab:..`) of its frames:
/// who spoke on which VLAN.
pub fn vlan_senders(
    pcap: &Path,
) -> std::io::Result<std::collections::BTreeMap<u16, std::collections::BTreeSet<String>>> {
    let mut seen: std::collections::BTreeMap<u16, std::collections::BTreeSet<String>> =
        Default::default();
    for (vid, src) in tagged(pcap)? {
        let mac: Vec<String> = src.iter().map(|b| format!("{b:02x}")).collect();
        seen.entry(vid).or_default().insert(mac.join(":"));
    }
    Ok(seen)
}
