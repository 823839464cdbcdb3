//! Tag listings read only the part of the tags tree they are asked about.

use spfs::storage::{tag_dirs_read, LocalRepository};
use spfs::Digest;

fn repo_with(tags: &[&str]) -> (tempfile::TempDir, LocalRepository) {
    let dir = tempfile::tempdir().unwrap();
    let repo = LocalRepository::create(dir.path()).unwrap();
    let target = repo.write_blob(b"x").unwrap();
    let batch: Vec<(String, Digest)> = tags.iter().map(|t| (t.to_string(), target)).collect();
    repo.push_tags(&batch).unwrap();
    (dir, repo)
}

#[test]
fn prefix_listing_matches_full_listing_filtered() {
    let (_d, repo) = repo_with(&[
        "spk/spec/a/1.0.0",
        "spk/spec/a/1.0.0/abcd",
        "spk/spec/ab/2.0.0",
        "spk/pkg/a/1.0.0/abcd/run",
        "spx",
        "other/thing",
    ]);
    assert_eq!(
        repo.list_tags("spk/spec/a/").unwrap(),
        vec!["spk/spec/a/1.0.0", "spk/spec/a/1.0.0/abcd"]
    );
    // Without the slash the tag itself is included, but not a sibling that merely shares
    // the text prefix ("ab").
    assert_eq!(
        repo.list_tags("spk/spec/a/1.0.0").unwrap(),
        vec!["spk/spec/a/1.0.0", "spk/spec/a/1.0.0/abcd"]
    );
    // One segment matches by name at the top level.
    assert_eq!(
        repo.list_tags("sp").unwrap(),
        vec![
            "spk/pkg/a/1.0.0/abcd/run",
            "spk/spec/a/1.0.0",
            "spk/spec/a/1.0.0/abcd",
            "spk/spec/ab/2.0.0",
            "spx"
        ]
    );
    assert_eq!(repo.list_tags("other").unwrap(), vec!["other/thing"]);
    assert_eq!(
        repo.list_tags("spk/spec/none/").unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(repo.list_tags("../..").unwrap(), Vec::<String>::new());
    assert_eq!(repo.list_tags("").unwrap().len(), 6);
}

#[test]
fn prefix_listing_reads_only_its_subtree() {
    // A large unrelated subtree: 200 namespaces with one tag each.
    let mut names: Vec<String> = (0..200).map(|i| format!("spk/spec/p{i}/1.0.0")).collect();
    names.push("spk/spec/wanted/1.0.0/b1".into());
    names.push("spk/spec/wanted/2.0.0".into());
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let (_d, repo) = repo_with(&refs);

    let before = tag_dirs_read();
    let listed = repo.list_tags("spk/spec/wanted/").unwrap();
    let reads = tag_dirs_read() - before;
    assert_eq!(
        listed,
        vec!["spk/spec/wanted/1.0.0/b1", "spk/spec/wanted/2.0.0"]
    );
    // wanted/ and wanted/1.0.0/: two directories, whatever else the tree holds.
    assert_eq!(reads, 2);

    let before = tag_dirs_read();
    let level = repo.tag_dir("spk/spec/wanted").unwrap().unwrap();
    assert_eq!(tag_dirs_read() - before, 1);
    assert_eq!(level.dirs, vec!["1.0.0"]);
    assert_eq!(
        level
            .tags
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        vec!["2.0.0"]
    );
    assert!(repo.tag_dir("spk/spec/missing").unwrap().is_none());

    // Resolving one tag reads no directory at all.
    let before = tag_dirs_read();
    assert!(repo.resolve_tag("spk/spec/p7/1.0.0").unwrap().is_some());
    assert_eq!(tag_dirs_read() - before, 0);
}

#[test]
fn stamps_change_when_tags_change() {
    let (_d, repo) = repo_with(&["ns/a", "ns/sub/b"]);
    let first = repo.tag_dir("ns").unwrap().unwrap();
    let other = repo.write_blob(b"y").unwrap();
    repo.push_tag("ns/a", &other).unwrap();
    let second = repo.tag_dir("ns").unwrap().unwrap();
    // The rewritten tag has a new stamp (new file, longer history).
    assert_ne!(first.tags[0].1, second.tags[0].1);
    // Directory stamps only change up to the filesystem's timestamp granularity, which
    // is what the spk package index's racy-stamp rule accounts for; not asserted here.
    assert!(repo.tags_clock().unwrap() > 0);
}

#[test]
fn a_batch_creates_new_tags_without_locks_and_updates_existing_ones_with_history() {
    let dir = tempfile::tempdir().unwrap();
    let repo = LocalRepository::create(dir.path()).unwrap();
    let a = repo.write_blob(b"a").unwrap();
    let b = repo.write_blob(b"b").unwrap();
    // Two new tags, one of them named twice: its history holds both targets.
    repo.push_tags(&[
        ("org/x/one".into(), a),
        ("org/x/two".into(), a),
        ("org/x/two".into(), b),
    ])
    .unwrap();
    assert_eq!(repo.resolve_tag("org/x/one").unwrap(), Some(a));
    let two: Vec<Digest> = repo
        .tag_history("org/x/two")
        .unwrap()
        .iter()
        .map(|e| e.target)
        .collect();
    assert_eq!(two, vec![b, a]);
    // Created by rename, not under a lock: no lock files, nothing left in tmp/.
    let files: Vec<String> = std::fs::read_dir(dir.path().join("tags/org/x"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        files
            .iter()
            .all(|f| f.ends_with(".tag") && !f.ends_with(".lock")),
        "{files:?}"
    );
    assert_eq!(files.len(), 2);
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
    // An existing tag is updated (under its lock) and keeps its history; re-pushing the
    // current target changes nothing.
    repo.push_tags(&[("org/x/one".into(), b), ("org/x/two".into(), b)])
        .unwrap();
    let one: Vec<Digest> = repo
        .tag_history("org/x/one")
        .unwrap()
        .iter()
        .map(|e| e.target)
        .collect();
    assert_eq!(one, vec![b, a]);
    assert_eq!(repo.tag_history("org/x/two").unwrap().len(), 2);
    // A tag removed and pushed again is created anew.
    repo.remove_tag("org/x/one").unwrap();
    repo.push_tag("org/x/one", &a).unwrap();
    assert_eq!(repo.tag_history("org/x/one").unwrap().len(), 1);
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
}
