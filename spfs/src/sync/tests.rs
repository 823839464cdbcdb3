use std::fs;

use super::*;
use crate::commit::{commit_layer, CommitOptions};
use crate::storage::LocalRepository;

struct Fixture {
    dir: tempfile::TempDir,
    src: LocalRepository,
    dst: LocalRepository,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let src = LocalRepository::create(&dir.path().join("src")).unwrap();
    let dst = LocalRepository::create(&dir.path().join("dst")).unwrap();
    Fixture { dir, src, dst }
}

impl Fixture {
    fn layer(&self, name: &str, files: &[(&str, &[u8])]) -> Digest {
        let tree = self.dir.path().join(name);
        for (f, content) in files {
            let p = tree.join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, content).unwrap();
        }
        commit_layer(
            &self.src,
            &tree,
            &CommitOptions::default(),
            &[],
            &Progress::hidden(),
        )
        .unwrap()
    }
}

fn no_temporaries(repo: &LocalRepository) {
    let left: Vec<_> = fs::read_dir(repo.tmp_dir()).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_closure_arrives_whole_and_a_second_copy_sends_nothing() {
    let f = fixture();
    let big = vec![7u8; 3 << 20];
    let layer = f.layer(
        "a",
        &[
            ("x", b"one"),
            ("d/y", b"two"),
            ("big", &big),
            ("dup", b"one"),
        ],
    );
    f.src.push_tag("org/a", &layer).unwrap();
    let (tag, d) = resolve(&f.src, "org/a").unwrap();
    assert_eq!((tag.as_deref(), d), (Some("org/a"), layer));
    let tags = vec![("org/a".to_string(), layer)];
    let r = copy(&f.src, &f.dst, &[layer], &tags, &Progress::hidden()).unwrap();
    // A layer and its manifest; three distinct contents.
    assert_eq!((r.objects, r.payloads, r.tags), (2, 3, 1));
    assert!(r.bytes > (3 << 20));
    assert_eq!(f.dst.resolve_tag("org/a").unwrap(), Some(layer));
    assert_eq!(f.dst.read_blob(&Digest::of(&big)).unwrap(), big);
    let report = crate::check::check(&f.dst, None, &Progress::hidden()).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    no_temporaries(&f.dst);
    let again = copy(&f.src, &f.dst, &[layer], &tags, &Progress::hidden()).unwrap();
    assert_eq!(again, SyncReport::default());
}

#[test]
fn an_interrupted_copy_resumes_with_what_is_missing() {
    let f = fixture();
    let layer = f.layer("a", &[("x", b"first"), ("y", b"second")]);
    // As if a previous transfer stopped after one payload.
    f.dst.write_blob(b"first").unwrap();
    let r = copy(&f.src, &f.dst, &[layer], &[], &Progress::hidden()).unwrap();
    assert_eq!((r.objects, r.payloads, r.tags), (2, 1, 0));
    assert!(f.dst.tag_history("org/a").unwrap().is_empty());
}

#[test]
fn corrupt_content_is_refused_and_nothing_partial_remains() {
    let f = fixture();
    let layer = f.layer("a", &[("x", b"good content"), ("y", b"will rot")]);
    let rotten = Digest::of(b"will rot");
    let path = f.src.payload_path(&rotten);
    fs::remove_file(&path).unwrap();
    fs::write(&path, b"will ROT").unwrap();
    let err = copy(&f.src, &f.dst, &[layer], &[], &Progress::hidden()).unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { digest, .. } if *digest == rotten),
        "{err}"
    );
    assert!(!f.dst.has_payload(&rotten));
    // No object refers to what did not arrive.
    assert!(!f.dst.has_object(&layer));
    no_temporaries(&f.dst);
}

#[test]
fn a_corrupt_object_is_refused_on_arrival() {
    let f = fixture();
    use crate::storage::ObjectStore;
    let e = f
        .dst
        .write_object_bytes(&Digest::of(b"y"), b"x")
        .unwrap_err();
    assert!(e.to_string().contains("arrived hashing to"), "{e}");
    let e = f
        .dst
        .write_object_bytes(&Digest::of(b"x"), b"x")
        .unwrap_err();
    assert!(e.to_string().contains("does not decode"), "{e}");
    assert!(f.dst.list_objects().unwrap().is_empty());
    let missing = resolve(&f.src, "no/such").unwrap_err();
    assert!(matches!(missing, Error::UnknownReference(_)), "{missing}");
}
