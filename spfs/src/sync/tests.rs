use std::fs;

use super::*;
use crate::storage::LocalRepository;
use crate::test_fixture::fixture;

/// Nothing left in `tmp/`, and no staged file beside any object or payload.
fn no_temporaries(repo: &LocalRepository) {
    let mut left: Vec<_> = fs::read_dir(repo.tmp_dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    for area in ["objects", "payloads"] {
        for shard in fs::read_dir(repo.root().join(area)).unwrap().flatten() {
            for e in fs::read_dir(shard.path()).unwrap().flatten() {
                if e.file_name().to_string_lossy().starts_with('.') {
                    left.push(e.path());
                }
            }
        }
    }
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

#[test]
fn fetch_missing_takes_each_object_from_the_first_remote_holding_it_without_tags() {
    let f = fixture();
    let a = f.layer("a", &[("x", b"only in the first remote")]);
    let b = f.layer("b", &[("y", b"only in the second remote")]);
    f.src.push_tag("org/a", &a).unwrap();
    // A second remote holding b (and a copy of a, which must not be asked for).
    let second = LocalRepository::create(&f.dir.path().join("second")).unwrap();
    copy(&f.src, &second, &[a, b], &[], &Progress::hidden()).unwrap();
    let first = LocalRepository::create(&f.dir.path().join("first")).unwrap();
    copy(&f.src, &first, &[a], &[], &Progress::hidden()).unwrap();
    let first: std::sync::Arc<dyn Repository> = std::sync::Arc::new(first);
    let second: std::sync::Arc<dyn Repository> = std::sync::Arc::new(second);
    let remotes = Remotes::opened(vec![
        ("first".to_string(), first),
        ("second".to_string(), second),
    ]);
    assert_eq!(missing(&f.dst, &[a, b, a]).unwrap(), vec![a, b]);
    let fetched = fetch_missing(&f.dst, &remotes, &[a, b], &Progress::hidden()).unwrap();
    let who: Vec<(&str, Vec<Digest>)> = fetched
        .iter()
        .map(|x| (x.remote.as_str(), x.digests.clone()))
        .collect();
    assert_eq!(who, vec![("first", vec![a]), ("second", vec![b])]);
    // Layer + manifest + payload from each.
    assert_eq!(fetched[0].report.objects + fetched[1].report.objects, 4);
    assert!(f.dst.has_object(&a) && f.dst.has_object(&b));
    assert!(f.dst.list_tags("").unwrap().is_empty(), "no tag is copied");
    let report = crate::check::check(&f.dst, None, &Progress::hidden()).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    // Nothing missing: nothing asked.
    assert!(
        fetch_missing(&f.dst, &remotes, &[a, b], &Progress::hidden())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn fetch_missing_copies_nothing_when_some_object_is_in_no_remote() {
    let f = fixture();
    let a = f.layer("a", &[("x", b"in the remote")]);
    let b = f.layer("b", &[("y", b"nowhere")]);
    let remote = LocalRepository::create(&f.dir.path().join("remote")).unwrap();
    copy(&f.src, &remote, &[a], &[], &Progress::hidden()).unwrap();
    let remote: std::sync::Arc<dyn Repository> = std::sync::Arc::new(remote);
    let remotes = Remotes::opened(vec![("origin".to_string(), remote)]);
    let err = fetch_missing(&f.dst, &remotes, &[a, b], &Progress::hidden()).unwrap_err();
    match &err {
        Error::NotInRemotes { digests, tried } => {
            assert_eq!(digests, &vec![b]);
            assert_eq!(tried, &vec!["origin".to_string()]);
        }
        other => panic!("{other}"),
    }
    use crate::Help;
    assert!(err.help()[0].contains("origin"), "{:?}", err.help());
    assert!(
        !f.dst.has_object(&a),
        "nothing is pulled when the pull cannot complete"
    );
    // No remotes at all: the hint says so.
    let err = fetch_missing(&f.dst, &Remotes::none(), &[a], &Progress::hidden()).unwrap_err();
    assert!(err.help()[0].contains("no remote is configured"), "{err}");
}
