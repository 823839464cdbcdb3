use std::fs;

use super::*;
use crate::test_fixture::{fixture, Fixture};

/// What archive tests add to the shared fixture.
trait ArchiveFixture {
    fn archive(&self) -> PathBuf;
    fn exported(&self) -> (Digest, PathBuf);
}

impl ArchiveFixture for Fixture {
    fn archive(&self) -> PathBuf {
        self.dir.path().join("out.tar.zst")
    }

    /// A tagged two-file layer exported alone.
    fn exported(&self) -> (Digest, PathBuf) {
        let layer = self.layer("a", &[("x", b"first file"), ("d/y", b"second file")]);
        self.src.push_tag("org/a", &layer).unwrap();
        let out = self.archive();
        let tags = vec![("org/a".to_string(), layer)];
        export(&self.src, &[layer], &tags, &out, false, &Progress::hidden()).unwrap();
        (layer, out)
    }
}

/// Nothing at all under a final name in `repo`, and no staged leftovers.
fn untouched(repo: &LocalRepository) {
    assert!(repo.list_objects().unwrap().is_empty());
    assert!(repo.list_payloads().unwrap().is_empty());
    assert!(repo.list_tags("").unwrap().is_empty());
    let left: Vec<_> = fs::read_dir(repo.tmp_dir()).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
}

/// The decompressed tar stream of an archive.
fn tar_bytes(path: &Path) -> Vec<u8> {
    zstd::stream::decode_all(fs::File::open(path).unwrap()).unwrap()
}

fn write_zstd(path: &Path, tar: &[u8]) {
    fs::write(path, zstd::stream::encode_all(tar, 3).unwrap()).unwrap();
}

/// The entry names of an archive, in order.
fn entry_names(path: &Path) -> Vec<String> {
    let bytes = tar_bytes(path);
    let mut a = tar::Archive::new(&bytes[..]);
    a.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn an_export_imports_whole_with_its_tags() {
    let f = fixture();
    let (layer, out) = f.exported();
    let names = entry_names(&out);
    // The documented layout: header, tags, objects, payloads, end.
    assert_eq!(names[0], "spfs-archive.json");
    assert_eq!(names[1], "tags.json");
    assert!(names[2].starts_with("objects/") && names[3].starts_with("objects/"));
    assert!(names[4].starts_with("payloads/") && names[5].starts_with("payloads/"));
    assert_eq!(names[6], "end.json");
    assert_eq!(names.len(), 7);
    // No temporary left beside the archive.
    let beside: Vec<_> = fs::read_dir(f.dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(beside.is_empty(), "{beside:?}");

    let r = import(&f.dst, &out, None, &Progress::hidden()).unwrap();
    assert_eq!((r.objects, r.payloads, r.tags), (2, 2, 1));
    assert_eq!(f.dst.resolve_tag("org/a").unwrap(), Some(layer));
    assert_eq!(
        f.dst.read_blob(&Digest::of(b"second file")).unwrap(),
        b"second file"
    );
    let check = crate::check::check(&f.dst, None, &Progress::hidden()).unwrap();
    assert!(check.problems.is_empty(), "{:?}", check.problems);
    // Again: nothing new.
    let again = import(&f.dst, &out, None, &Progress::hidden()).unwrap();
    assert_eq!(again, ArchiveReport::default());
}

#[test]
fn a_truncated_archive_imports_nothing() {
    let f = fixture();
    let (_, out) = f.exported();
    let full = fs::read(&out).unwrap();
    for keep in [full.len() - 1, full.len() - 20, full.len() / 2, 40, 0] {
        let cut = f.dir.path().join(format!("cut-{keep}.tar.zst"));
        fs::write(&cut, &full[..keep]).unwrap();
        let err = import(&f.dst, &cut, None, &Progress::hidden()).unwrap_err();
        assert!(matches!(err, Error::Archive { .. }), "{keep}: {err}");
        untouched(&f.dst);
    }
    // Cut cleanly at an entry boundary, before end.json: a valid tar, still refused.
    let bytes = tar_bytes(&out);
    let mut a = tar::Archive::new(&bytes[..]);
    let mut builder = tar::Builder::new(Vec::new());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_string_lossy() == "end.json" {
            break;
        }
        let h = e.header().clone();
        builder.append(&h, &mut e).unwrap();
    }
    let cut = f.dir.path().join("no-end.tar.zst");
    write_zstd(&cut, &builder.into_inner().unwrap());
    let err = import(&f.dst, &cut, None, &Progress::hidden()).unwrap_err();
    assert!(err.to_string().contains("end.json is missing"), "{err}");
    untouched(&f.dst);
}

/// Rewrites the archive, replacing the content of the entries whose name starts with
/// `prefix` by `edit(content)`.
fn rewrite(src: &Path, dst: &Path, prefix: &str, edit: impl Fn(&mut Vec<u8>)) {
    let bytes = tar_bytes(src);
    let mut a = tar::Archive::new(&bytes[..]);
    let mut builder = tar::Builder::new(Vec::new());
    let mut done = false;
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let mut h = e.header().clone();
        let mut content = Vec::new();
        e.read_to_end(&mut content).unwrap();
        if !done && e.path().unwrap().to_string_lossy().starts_with(prefix) {
            edit(&mut content);
            h.set_size(content.len() as u64);
            h.set_cksum();
            done = true;
        }
        builder.append(&h, &content[..]).unwrap();
    }
    assert!(done, "no entry {prefix}");
    write_zstd(dst, &builder.into_inner().unwrap());
}

#[test]
fn corrupt_payloads_and_objects_are_refused_and_nothing_is_imported() {
    let f = fixture();
    let (_, out) = f.exported();
    let bad_payload = f.dir.path().join("bad-payload.tar.zst");
    rewrite(&out, &bad_payload, "payloads/", |c| c[0] ^= 1);
    let err = import(&f.dst, &bad_payload, None, &Progress::hidden()).unwrap_err();
    assert!(
        matches!(&err, Error::Archive { reason, .. } if reason.contains("hashing to")),
        "{err}"
    );
    untouched(&f.dst);

    let bad_object = f.dir.path().join("bad-object.tar.zst");
    rewrite(&out, &bad_object, "objects/", |c| {
        let n = c.len();
        c[n - 1] ^= 1
    });
    let err = import(&f.dst, &bad_object, None, &Progress::hidden()).unwrap_err();
    assert!(err.to_string().contains("is corrupt"), "{err}");
    untouched(&f.dst);

    let bad_end = f.dir.path().join("bad-end.tar.zst");
    rewrite(&out, &bad_end, "end.json", |c| {
        *c = br#"{"objects":2,"payloads":3,"tags":1}"#.to_vec()
    });
    let err = import(&f.dst, &bad_end, None, &Progress::hidden()).unwrap_err();
    assert!(err.to_string().contains("end.json records"), "{err}");
    untouched(&f.dst);

    // Not an archive at all.
    let junk = f.dir.path().join("junk.tar.zst");
    fs::write(&junk, b"hello, this is not zstd").unwrap();
    let err = import(&f.dst, &junk, None, &Progress::hidden()).unwrap_err();
    assert!(matches!(err, Error::Archive { .. }), "{err}");
    untouched(&f.dst);
}

#[test]
fn an_archive_missing_a_payload_is_not_self_contained() {
    let f = fixture();
    let (_, out) = f.exported();
    let bytes = tar_bytes(&out);
    let mut a = tar::Archive::new(&bytes[..]);
    let mut builder = tar::Builder::new(Vec::new());
    let mut dropped = false;
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut content = Vec::new();
        e.read_to_end(&mut content).unwrap();
        let mut h = e.header().clone();
        if name.starts_with("payloads/") && !dropped {
            dropped = true;
            continue;
        }
        if name == "end.json" {
            content = br#"{"objects":2,"payloads":1,"tags":1}"#.to_vec();
            h.set_size(content.len() as u64);
            h.set_cksum();
        }
        builder.append(&h, &content[..]).unwrap();
    }
    let holey = f.dir.path().join("holey.tar.zst");
    write_zstd(&holey, &builder.into_inner().unwrap());
    let err = import(&f.dst, &holey, None, &Progress::hidden()).unwrap_err();
    assert!(err.to_string().contains("not self-contained"), "{err}");
    untouched(&f.dst);
}

#[test]
fn a_merging_export_keeps_what_the_archive_held_and_a_named_import_takes_one_closure() {
    let f = fixture();
    let (a, out) = f.exported();
    let b = f.layer("b", &[("z", b"third file"), ("x", b"first file")]);
    let tags = vec![("org/b".to_string(), b)];
    let r = export(&f.src, &[b], &tags, &out, true, &Progress::hidden()).unwrap();
    // New to the archive: layer b and its manifest, "third file", the tag org/b.
    assert_eq!((r.objects, r.payloads, r.tags), (2, 1, 1));
    assert_eq!(
        list_tags(&out).unwrap(),
        vec![("org/a".to_string(), a), ("org/b".to_string(), b)]
    );
    // Only org/b's closure arrives.
    let r = import(
        &f.dst,
        &out,
        Some(&["org/b".to_string()]),
        &Progress::hidden(),
    )
    .unwrap();
    assert_eq!((r.objects, r.payloads, r.tags), (2, 2, 1));
    assert_eq!(f.dst.resolve_tag("org/b").unwrap(), Some(b));
    assert_eq!(f.dst.resolve_tag("org/a").unwrap(), None);
    assert!(!f.dst.has_payload(&Digest::of(b"second file")));
    assert!(!f.dst.has_object(&a));
    // A digest names a closure too, without a tag.
    let r = import(&f.dst, &out, Some(&[a.to_hex()]), &Progress::hidden()).unwrap();
    assert_eq!((r.objects, r.payloads, r.tags), (2, 1, 0));
    let err = import(
        &f.dst,
        &out,
        Some(&["org/none".to_string()]),
        &Progress::hidden(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::UnknownReference(_)), "{err}");
}

#[test]
fn a_corrupt_source_payload_fails_the_export_and_leaves_no_archive() {
    let f = fixture();
    let layer = f.layer("a", &[("x", b"good"), ("y", b"will rot")]);
    let rotten = Digest::of(b"will rot");
    let path = f.src.payload_path(&rotten);
    fs::remove_file(&path).unwrap();
    fs::write(&path, b"will ROT").unwrap();
    let out = f.archive();
    let err = export(&f.src, &[layer], &[], &out, false, &Progress::hidden()).unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { digest, .. } if *digest == rotten),
        "{err}"
    );
    let left: Vec<_> = fs::read_dir(f.dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().contains("out.tar.zst"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
