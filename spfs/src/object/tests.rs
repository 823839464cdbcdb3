use super::*;
use crate::digest::Digest;

fn sample_manifest() -> Manifest {
    let mut sub = Tree::new();
    sub.insert(
        b"run.sh".to_vec(),
        Entry::file(0o755, 19, Digest::of(b"#!/bin/sh\necho run\n")),
    );
    sub.insert(b"link".to_vec(), Entry::symlink(b"../x.txt".to_vec()));
    let mut root = Tree::new();
    root.insert(b"bin".to_vec(), Entry::dir(0o755, sub));
    root.insert(
        b"x.txt".to_vec(),
        Entry::file(0o644, 3, Digest::of(b"hi\n")),
    );
    root.insert(b"gone".to_vec(), Entry::mask());
    root.insert(b"empty".to_vec(), Entry::dir(0o700, Tree::new()));
    root.insert(vec![b'n', 0xff], Entry::file(0o600, 0, Digest::of(b"")));
    Manifest::new(root)
}

// Golden digests pin the on-disk encoding (docs/object-encoding.md). A change here is
// a format change: bump ENCODING_VERSION instead of editing these values.
#[test]
fn golden_empty_manifest() {
    let o = Object::Manifest(Manifest::default());
    assert_eq!(o.encode(), b"SPFS\x01\x01\x00\x00\x00\x00".to_vec());
    assert_eq!(
        o.digest().to_string(),
        "a26c4ce01a170d965cfb8671628834399765e5ece80d111069aa0e38b30fa6ad"
    );
}

#[test]
fn golden_sample_objects() {
    let m = Object::Manifest(sample_manifest());
    assert_eq!(
        m.digest().to_string(),
        "da2ee60ae6a7e35981f9c388b3802464401c291f5b023e88a262fb0df6d38f6e"
    );
    let mut layer = Layer::new(m.digest());
    layer
        .annotations
        .insert("spk:pkg".into(), "python/3.7.3/ABCDEF".into());
    let l = Object::Layer(layer);
    assert_eq!(
        l.digest().to_string(),
        "3a753ff1a288bd450f46416dbc9f868a99ee59ce1598d5eb020526d8e25aca1d"
    );
    let p = Object::Platform(Platform {
        layers: vec![l.digest(), Digest::of(b"other")],
    });
    assert_eq!(
        p.digest().to_string(),
        "e4e4fb79adf3c785fb0baa0f24dbf419e752c65d2b0d48855da4a439d2df5ee5"
    );
}

#[test]
fn blob_digest_is_blake3_of_bytes() {
    assert_eq!(
        Digest::of(b"hello").to_string(),
        blake3::hash(b"hello").to_hex().to_string()
    );
}

#[test]
fn objects_round_trip() {
    let m = Object::Manifest(sample_manifest());
    assert_eq!(Object::decode(&m.encode()).unwrap(), m);
    let mut layer = Layer::new(m.digest());
    layer.annotations.insert("a".into(), "1".into());
    layer.annotations.insert("b".into(), "ü".into());
    let l = Object::Layer(layer);
    assert_eq!(Object::decode(&l.encode()).unwrap(), l);
    let p = Object::Platform(Platform {
        layers: vec![l.digest(), m.digest()],
    });
    assert_eq!(Object::decode(&p.encode()).unwrap(), p);
}

#[test]
fn corrupt_encodings_are_rejected_not_panicked() {
    let bytes = Object::Manifest(sample_manifest()).encode();
    // Every truncation fails cleanly.
    for n in 0..bytes.len() {
        assert!(
            Object::decode(&bytes[..n]).is_err(),
            "prefix of {n} bytes accepted"
        );
    }
    // Trailing garbage, bad magic, unknown version and kind.
    let mut extra = bytes.clone();
    extra.push(0);
    assert!(Object::decode(&extra).is_err());
    let mut magic = bytes.clone();
    magic[0] = b'X';
    assert!(Object::decode(&magic).is_err());
    let mut version = bytes.clone();
    version[4] = 9;
    assert!(Object::decode(&version)
        .unwrap_err()
        .0
        .contains("version 9"));
    let mut kind = bytes.clone();
    kind[5] = 7;
    assert!(Object::decode(&kind).is_err());
    // Flipping any single byte never panics.
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x5a;
        let _ = Object::decode(&b);
    }
}

#[test]
fn non_canonical_order_is_rejected() {
    let mut w = crate::encoding::Writer::new();
    w.raw(MAGIC);
    w.u8(ENCODING_VERSION);
    w.u8(1);
    w.u32(2);
    for name in [b"b", b"a"] {
        w.u16(1);
        w.raw(name);
        w.u8(4);
    }
    let err = Object::decode(&w.finish()).unwrap_err();
    assert!(err.0.contains("canonical order"), "{}", err.0);
}

#[test]
fn huge_counts_do_not_allocate() {
    let mut w = crate::encoding::Writer::new();
    w.raw(MAGIC);
    w.u8(ENCODING_VERSION);
    w.u8(3);
    w.u32(u32::MAX);
    assert!(Object::decode(&w.finish()).is_err());
}

#[test]
fn overlay_applies_masks_and_merges_dirs() {
    let mut lower = sample_manifest();
    let mut upper_root = Tree::new();
    upper_root.insert(b"x.txt".to_vec(), Entry::mask());
    let mut bin = Tree::new();
    bin.insert(b"new".to_vec(), Entry::file(0o644, 1, Digest::of(b"n")));
    bin.insert(b"link".to_vec(), Entry::mask());
    upper_root.insert(b"bin".to_vec(), Entry::dir(0o750, bin));
    upper_root.insert(b"empty".to_vec(), Entry::file(0o644, 0, Digest::of(b"")));
    lower.overlay(&Manifest::new(upper_root));
    assert!(lower.get(b"x.txt").is_none());
    assert!(lower.get(b"bin/link").is_none());
    assert!(lower.get(b"bin/run.sh").is_some());
    assert!(lower.get(b"bin/new").is_some());
    assert_eq!(lower.get(b"bin").unwrap().mode, 0o750);
    assert!(!lower.get(b"empty").unwrap().is_dir());
}

#[test]
fn overlay_of_new_dir_drops_its_masks() {
    let mut lower = Manifest::default();
    let mut d = Tree::new();
    d.insert(b"m".to_vec(), Entry::mask());
    d.insert(b"f".to_vec(), Entry::file(0o644, 0, Digest::of(b"")));
    let mut root = Tree::new();
    root.insert(b"d".to_vec(), Entry::dir(0o755, d));
    lower.overlay(&Manifest::new(root));
    assert_eq!(lower.counts(), (1, 1, 0, 0));
}
