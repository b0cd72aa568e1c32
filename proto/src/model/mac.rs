use std::{fmt, str::FromStr};

use serde::{Serialize, Serializer};

use super::ValidationError;

/// An Ethernet MAC address, printed as lowercase colon-separated hex like
/// `ip link` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// Parses `aa:bb:cc:dd:ee:ff` (or with `-`) given in request field `field`.
    pub fn parse(field: &str, value: &str) -> Result<Self, ValidationError> {
        let bad = || {
            ValidationError::new(
                field,
                value,
                "is not a MAC address",
                "write six hex byte pairs separated by ':', e.g. 02:42:ac:10:0a:0a",
            )
        };
        let mut out = [0u8; 6];
        let mut parts = value.split([':', '-']);
        for byte in &mut out {
            let part = parts.next().ok_or_else(bad)?;
            // from_str_radix alone would take "+2" as a byte.
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Self(out))
    }

    /// Multicast/broadcast addresses (I/G bit set) cannot be a NIC's address.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for MacAddr {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse("mac", s)
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Read back from the `aa:bb:cc:dd:ee:ff` form it is written in.
impl<'de> serde::Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse("mac", &s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_normalises_case() {
        let mac = MacAddr::parse("mac", "00:50:56:B0:80:C6").expect("valid");
        assert_eq!(mac.0, [0x00, 0x50, 0x56, 0xb0, 0x80, 0xc6]);
        assert_eq!(mac.to_string(), "00:50:56:b0:80:c6");
        assert_eq!(MacAddr::parse("mac", "00-50-56-b0-80-c6"), Ok(mac));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "00:50:56:b0:80",
            "00:50:56:b0:80:c6:00",
            "0:50:56:b0:80:c6",
            "zz:50:56:b0:80:c6",
            // Found by the fuzzer: a sign is not a hex digit.
            "+2:42:ac:10:0a:0a",
            "02:42:ac:10:0a:+a",
        ] {
            let err = MacAddr::parse("mac", bad).expect_err(bad);
            assert_eq!((err.field.as_str(), err.value.as_str()), ("mac", bad));
        }
    }

    #[test]
    fn multicast_bit() {
        assert!(MacAddr([0x01, 0, 0x5e, 0, 0, 1]).is_multicast());
        assert!(!MacAddr([0x02, 0x42, 0, 0, 0, 1]).is_multicast());
    }
}
