//! The types of setting values, each read by one parser whether it comes
//! from a flag or variable (text, through `FromStr`) or from the TOML file
//! (a number or text, through serde): sizes, durations, rates, address
//! ranges and pinned names.

use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::units::{NumberOrText, parse_duration, parse_rate, parse_size};

/// Reads a value from the file as a number or a text through `number` and
/// `text` (a file may say `db_cache = 33554432` or `db_cache = "32MiB"`).
fn from_number_or_text<'de, D, T>(
    deserializer: D,
    read: impl Fn(&NumberOrText) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    read(&NumberOrText::deserialize(deserializer)?).map_err(serde::de::Error::custom)
}

/// A size in bytes: `32MiB`, `1GB`, `1048576`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bytes(pub u64);

impl FromStr for Bytes {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_size(text.trim()).map(Bytes)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_number_or_text(deserializer, NumberOrText::to_size).map(Bytes)
    }
}

/// A duration: `30s`, `2ms`, `1d`; a bare number is seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

impl FromStr for Span {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_duration(text.trim()).map(Span)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_number_or_text(deserializer, NumberOrText::to_duration).map(Span)
    }
}

/// Requests a second: `20/s`, `600/m`, `off` (no limit); a bare number is a second's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate(pub f64);

impl FromStr for Rate {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_rate(text.trim()).map(Rate)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_number_or_text(deserializer, NumberOrText::to_rate).map(Rate)
    }
}

/// A CIDR range (`127.0.0.0/8`), or one address as its own range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range(pub ipnet::IpNet);

impl FromStr for Range {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        text.parse::<ipnet::IpNet>()
            .or_else(|_| text.parse::<IpAddr>().map(ipnet::IpNet::from))
            .map(Range)
            .map_err(|_| format!("{text:?} is not a CIDR range like \"127.0.0.0/8\" or an address"))
    }
}

impl<'de> Deserialize<'de> for Range {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A name resolved to a fixed address: `internal.example=10.0.0.5`
/// (IPv6 in brackets or not); the name is kept in lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The host name.
    pub name: String,
    /// Its address.
    pub address: IpAddr,
}

impl FromStr for Pin {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let pair = text.trim();
        let (name, address) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?} is not name=address"))?;
        let address = address
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .map_err(|error| format!("{pair:?}: {error}"))?;
        Ok(Pin {
            name: name.trim().to_ascii_lowercase(),
            address,
        })
    }
}

impl<'de> Deserialize<'de> for Pin {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_numbers_read_the_same_way_from_either_source() {
        assert_eq!("32MiB".parse::<Bytes>(), Ok(Bytes(32 << 20)));
        assert_eq!(
            toml::from_str::<toml::Table>("v = 1024").unwrap()["v"]
                .clone()
                .try_into::<Bytes>(),
            Ok(Bytes(1024))
        );
        assert_eq!(" 2ms ".parse::<Span>(), Ok(Span(Duration::from_millis(2))));
        assert_eq!(
            toml::Value::Integer(5).try_into::<Span>(),
            Ok(Span(Duration::from_secs(5)))
        );
        assert_eq!("600/m".parse::<Rate>(), Ok(Rate(10.0)));
        assert_eq!("off".parse::<Rate>(), Ok(Rate(0.0)));
        assert_eq!("10.0.0.1".parse::<Range>().unwrap().0.to_string(), "10.0.0.1/32");
        assert_eq!(
            "Internal.Example=[::1]".parse::<Pin>(),
            Ok(Pin {
                name: "internal.example".into(),
                address: "::1".parse().unwrap(),
            })
        );
        for bad in ["lots", ""] {
            assert!(bad.parse::<Bytes>().is_err(), "{bad:?}");
        }
        assert!("nowhere".parse::<Range>().is_err());
        assert!("no-equals".parse::<Pin>().is_err());
    }
}
