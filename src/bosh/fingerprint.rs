//! The BOSH package fingerprint, as bosh-cli computes it ("v2", sha256):
//! `sha256("v2" + for each file sorted by path: path + "sha256:" + hex + mode
//! [+ sorted dependency names joined by ","])`, where the files are `packaging`,
//! `pre_packaging` (mode empty) and every selected file (`100755` when executable,
//! `100644` otherwise, `symlink` for a symbolic link whose content is its link text).

use std::fs;
use std::io::Read;
use std::path::Path;

use ring::digest::{Algorithm, Context, SHA1_FOR_LEGACY_USE_ONLY, SHA256};

/// One file entering the fingerprint.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Path inside the package.
    pub rel: String,
    /// Hex sha256 of the content.
    pub sha256: String,
    /// `""`, `"symlink"`, `"100755"` or `"100644"`.
    pub mode: &'static str,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex sha256 of `data`.
pub fn hex_sha256(data: &[u8]) -> String {
    hex(ring::digest::digest(&SHA256, data).as_ref())
}

fn hash_file(algo: &'static Algorithm, path: &Path) -> std::io::Result<String> {
    let mut f = fs::File::open(path)?;
    let mut cx = Context::new(algo);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        cx.update(&buf[..n]);
    }
    Ok(hex(cx.finish().as_ref()))
}

/// Hex sha256 of a file's content.
pub fn hex_sha256_file(path: &Path) -> std::io::Result<String> {
    hash_file(&SHA256, path)
}

/// Hex sha1 of a file's content (blob checksums of older releases).
pub fn hex_sha1_file(path: &Path) -> std::io::Result<String> {
    hash_file(&SHA1_FOR_LEGACY_USE_ONLY, path)
}

/// The fingerprint of a package with these files and dependencies.
pub fn fingerprint(mut entries: Vec<Entry>, dependencies: &[String]) -> String {
    entries.sort_by(|a, b| a.rel.as_bytes().cmp(b.rel.as_bytes()));
    let mut pre = String::from("v2");
    for e in &entries {
        pre.push_str(&e.rel);
        pre.push_str("sha256:");
        pre.push_str(&e.sha256);
        pre.push_str(e.mode);
    }
    if !dependencies.is_empty() {
        let mut deps: Vec<&str> = dependencies.iter().map(String::as_str).collect();
        deps.sort();
        pre.push_str(&deps.join(","));
    }
    hex_sha256(pre.as_bytes())
}

/// The identity of a package build: its fingerprint and its dependencies' identities.
pub fn identity(fingerprint: &str, deps: &[(String, String)]) -> String {
    let mut deps = deps.to_vec();
    deps.sort();
    let mut pre = format!("spk-bosh-identity-v1\n{fingerprint}\n");
    for (name, id) in deps {
        pre.push_str(&format!("{name}={id}\n"));
    }
    hex_sha256(pre.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_known_answers() {
        // FIPS 180-2 test vectors.
        assert_eq!(
            hex_sha256(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex_sha256(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn fingerprint_pre_image_by_hand() {
        // Pre-image written out by hand from the documented rule:
        // v2 + "a.c" sha256:<abc> 100644 + "packaging" sha256:<empty> (no mode) + "b,z"
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let pre = format!("v2a.csha256:{abc}100644packagingsha256:{empty}b,z");
        let fp = fingerprint(
            vec![
                Entry {
                    rel: "packaging".into(),
                    sha256: empty.into(),
                    mode: "",
                },
                Entry {
                    rel: "a.c".into(),
                    sha256: abc.into(),
                    mode: "100644",
                },
            ],
            &["z".into(), "b".into()],
        );
        assert_eq!(fp, hex_sha256(pre.as_bytes()));
        // Without dependencies nothing is appended.
        let fp = fingerprint(
            vec![Entry {
                rel: "packaging".into(),
                sha256: empty.into(),
                mode: "",
            }],
            &[],
        );
        assert_eq!(
            fp,
            hex_sha256(format!("v2packagingsha256:{empty}").as_bytes())
        );
    }

    #[test]
    fn identity_depends_on_dependency_identities() {
        let a = identity("f", &[("x".into(), "1".into())]);
        let b = identity("f", &[("x".into(), "2".into())]);
        assert_ne!(a, b);
        assert_eq!(a, identity("f", &[("x".into(), "1".into())]));
    }
}
