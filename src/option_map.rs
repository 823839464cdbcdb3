//! Resolved build options, build ids and host options.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::name::{OptName, PkgName};

/// The number of characters in a build id.
pub const BUILD_ID_LEN: usize = 8;

/// A map of option names to values, kept sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OptionMap(BTreeMap<OptName, String>);

impl OptionMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of an option.
    pub fn get(&self, name: &OptName) -> Option<&str> {
        self.0.get(name).map(|s| s.as_str())
    }

    /// The value of an option by its text name.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.as_str() == name)
            .map(|(_, v)| v.as_str())
    }

    /// Removes an option by name; returns its value if it was set.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        let key = self.0.keys().find(|k| k.as_str() == name)?.clone();
        self.0.remove(&key)
    }

    /// Sets an option.
    pub fn insert(&mut self, name: OptName, value: impl Into<String>) {
        self.0.insert(name, value.into());
    }

    /// Iterates options in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&OptName, &str)> {
        self.0.iter().map(|(k, v)| (k, v.as_str()))
    }

    /// Number of options.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds every option of `other`, replacing existing values.
    pub fn extend(&mut self, other: &OptionMap) {
        for (k, v) in other.iter() {
            self.0.insert(k.clone(), v.to_string());
        }
    }

    /// The value that applies to option `name` of package `pkg`: `pkg.name` wins over `name`.
    pub fn value_for(&self, pkg: &PkgName, name: &str) -> Option<&str> {
        let base = name.split_once('.').map(|(_, n)| n).unwrap_or(name);
        self.get_str(&format!("{pkg}.{base}"))
            .or_else(|| self.get_str(base))
    }

    /// The options seen by package `pkg`: global ones plus its namespaced ones (namespace
    /// removed), the namespaced value winning.
    pub fn package_options(&self, pkg: &PkgName) -> OptionMap {
        let mut out = OptionMap::new();
        for (k, v) in self.iter() {
            if k.namespace().is_none() {
                out.0.entry(k.clone()).or_insert_with(|| v.to_string());
            }
        }
        for (k, v) in self.iter() {
            if k.namespace() == Some(pkg.as_str()) {
                let base: OptName = k
                    .base_name()
                    .parse()
                    .expect("base of a valid name is valid");
                out.0.insert(base, v.to_string());
            }
        }
        out
    }

    /// The stable short id of a build with these resolved options.
    ///
    /// BLAKE3 over `name=value\n` lines in name order, the first 40 bits in base32
    /// (RFC 4648 alphabet, `A-Z2-7`).
    pub fn digest(&self) -> String {
        let mut hasher = blake3::Hasher::new();
        for (k, v) in self.iter() {
            hasher.update(k.as_str().as_bytes());
            hasher.update(b"=");
            hasher.update(v.as_bytes());
            hasher.update(b"\n");
        }
        let hash = hasher.finalize();
        base32_prefix(hash.as_bytes(), BUILD_ID_LEN)
    }

    /// The `SPK_OPT_{name}` variables a build script sees; `.` and `-` in names become `_`.
    pub fn to_environment(&self) -> BTreeMap<String, String> {
        self.iter()
            .map(|(k, v)| (format!("SPK_OPT_{}", env_safe(k.as_str())), v.to_string()))
            .collect()
    }
}

/// Makes a name usable in an environment variable name.
pub fn env_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn base32_prefix(bytes: &[u8], len: usize) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(len);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
            if out.len() == len {
                return out;
            }
        }
    }
    out
}

impl fmt::Display for OptionMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        write!(f, "{{{}}}", parts.join(", "))
    }
}

impl FromIterator<(OptName, String)> for OptionMap {
    fn from_iter<T: IntoIterator<Item = (OptName, String)>>(iter: T) -> Self {
        Self(iter.into_iter().collect())
    }
}

/// The options that describe this machine: `arch`, `os`, `distro` and `<distro>: <version>`.
pub fn host_options() -> OptionMap {
    let mut opts = OptionMap::new();
    let name = |s: &str| s.parse::<OptName>().expect("static option names are valid");
    opts.insert(name("arch"), std::env::consts::ARCH);
    opts.insert(name("os"), std::env::consts::OS);
    if let Ok(text) = std::fs::read_to_string("/etc/os-release") {
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .map(|v| v.trim_matches('"').to_string())
        };
        if let Some(id) = field("ID") {
            opts.insert(name("distro"), id.clone());
            if let (Some(ver), Ok(var)) = (field("VERSION_ID"), id.parse::<OptName>()) {
                let major = ver.split('.').next().unwrap_or(&ver).to_string();
                opts.insert(var, major);
            }
        }
    }
    opts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> OptName {
        s.parse().unwrap()
    }

    #[test]
    fn digest_is_stable_and_order_independent() {
        let mut a = OptionMap::new();
        a.insert(n("debug"), "off");
        a.insert(n("python"), "3.7");
        let mut b = OptionMap::new();
        b.insert(n("python"), "3.7");
        b.insert(n("debug"), "off");
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.digest().len(), BUILD_ID_LEN);
        assert!(a.digest().parse::<crate::ident::Build>().is_ok());
        // Pinned: changing this value changes every published build id.
        assert_eq!(
            OptionMap::new().digest(),
            base32_prefix(blake3::hash(b"").as_bytes(), 8)
        );
        b.insert(n("debug"), "on");
        assert_ne!(a.digest(), b.digest());
    }

    #[test]
    fn base32_known_values() {
        assert_eq!(base32_prefix(b"foobar", 8), "MZXW6YTB");
        assert_eq!(base32_prefix(&[0xff; 5], 8), "77777777");
    }

    #[test]
    fn namespaced_options() {
        let mut o = OptionMap::new();
        o.insert(n("abi"), "cp27m");
        o.insert(n("python.abi"), "cp37m");
        o.insert(n("debug"), "on");
        let py: PkgName = "python".parse().unwrap();
        let other: PkgName = "other".parse().unwrap();
        assert_eq!(o.value_for(&py, "abi"), Some("cp37m"));
        assert_eq!(o.value_for(&other, "abi"), Some("cp27m"));
        let p = o.package_options(&py);
        assert_eq!(p.get_str("abi"), Some("cp37m"));
        assert_eq!(p.get_str("debug"), Some("on"));
        let env = o.to_environment();
        assert_eq!(
            env.get("SPK_OPT_python_abi").map(|s| s.as_str()),
            Some("cp37m")
        );
        assert_eq!(env.get("SPK_OPT_debug").map(|s| s.as_str()), Some("on"));
    }

    #[test]
    fn host_has_arch_and_os() {
        let h = host_options();
        assert_eq!(h.get_str("arch"), Some(std::env::consts::ARCH));
        assert_eq!(h.get_str("os"), Some(std::env::consts::OS));
    }
}
