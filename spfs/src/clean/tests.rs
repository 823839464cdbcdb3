use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::*;
use crate::commit::{commit_layer, CommitOptions};
use crate::progress::Progress;
use crate::runtime::record::{Backend, RuntimeRecord};

struct Fixture {
    dir: tempfile::TempDir,
    repo: LocalRepository,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let repo = LocalRepository::create(&dir.path().join("repo")).unwrap();
    Fixture { dir, repo }
}

impl Fixture {
    /// Commits a tree of `files` (name, content) and returns the layer digest.
    fn layer(&self, name: &str, files: &[(&str, &str)]) -> Digest {
        let src = self.dir.path().join(name);
        fs::create_dir_all(&src).unwrap();
        for (f, content) in files {
            fs::write(src.join(f), content).unwrap();
        }
        commit_layer(
            &self.repo,
            &src,
            &CommitOptions::default(),
            &[],
            &Progress::hidden(),
        )
        .unwrap()
    }

    /// Makes every stored file an hour old.
    fn age_everything(&self) {
        let past = SystemTime::now() - Duration::from_secs(3600);
        age_tree(self.repo.root(), past);
    }
}

fn age_tree(dir: &Path, when: SystemTime) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let ft = entry.file_type().unwrap();
        if ft.is_dir() {
            age_tree(&entry.path(), when);
        }
        if ft.is_file() || ft.is_dir() {
            fs::File::open(entry.path())
                .unwrap()
                .set_modified(when)
                .unwrap();
        }
    }
}

fn opts(grace: u64) -> CleanOptions {
    CleanOptions {
        grace: Duration::from_secs(grace),
        ..Default::default()
    }
}

#[test]
fn durations_parse_with_units() {
    assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
    assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
    assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
    assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604800));
    assert_eq!(parse_duration("1w").unwrap(), Duration::from_secs(604800));
    assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
    for bad in ["", "m", "15", "15x", "-1m", "1.5h"] {
        let e = parse_duration(bad).unwrap_err().to_string();
        assert!(e.contains("is not a duration"), "{bad}: {e}");
    }
}

#[test]
fn unreachable_old_content_goes_and_tagged_content_stays() {
    let f = fixture();
    let kept = f.layer("a", &[("shared", "shared content"), ("only-a", "aaaa")]);
    let gone = f.layer("b", &[("shared", "shared content"), ("only-b", "bbbbbbbb")]);
    f.repo.push_tag("org/a", &kept).unwrap();
    f.age_everything();
    let gone_manifest = f.repo.read_layer(&gone).unwrap().manifest;
    let report = clean(&f.repo, &opts(900)).unwrap();
    // Layer b and its manifest; the payload only b had (8 bytes).
    assert_eq!(report.objects, 2);
    assert_eq!(report.payloads, 1);
    assert!(!f.repo.has_object(&gone));
    assert!(!f.repo.has_object(&gone_manifest));
    assert!(!f.repo.has_payload(&Digest::of(b"bbbbbbbb")));
    assert!(f.repo.has_payload(&Digest::of(b"shared content")));
    assert!(f.repo.has_payload(&Digest::of(b"aaaa")));
    let problems = crate::check::check(&f.repo, None, &Progress::hidden())
        .unwrap()
        .problems;
    assert!(problems.is_empty(), "{problems:?}");
    // Nothing is left to clean.
    let again = clean(&f.repo, &opts(900)).unwrap();
    assert_eq!((again.objects, again.payloads, again.bytes), (0, 0, 0));
}

#[test]
fn young_content_and_everything_it_reaches_is_kept() {
    let f = fixture();
    let old = f.layer("a", &[("x", "old content")]);
    f.age_everything();
    // A new platform (young) on top of the old, untagged layer keeps the layer.
    let platform = crate::commit::store_platform(&f.repo, &[old]).unwrap();
    let report = clean(&f.repo, &opts(900)).unwrap();
    assert_eq!((report.objects, report.payloads), (0, 0));
    assert!(f.repo.has_object(&platform));
    assert!(f.repo.has_payload(&Digest::of(b"old content")));
    // With no grace everything unreachable goes.
    let report = clean(&f.repo, &opts(0)).unwrap();
    assert_eq!((report.objects, report.payloads), (3, 1));
}

#[test]
fn a_dry_run_reports_without_removing() {
    let f = fixture();
    f.layer("a", &[("x", "12345")]);
    f.age_everything();
    let before = f.repo.list_objects().unwrap().len();
    let dry = clean(
        &f.repo,
        &CleanOptions {
            dry_run: true,
            ..opts(900)
        },
    )
    .unwrap();
    assert_eq!((dry.objects, dry.payloads), (2, 1));
    assert_eq!(f.repo.list_objects().unwrap().len(), before);
    let real = clean(&f.repo, &opts(900)).unwrap();
    assert_eq!((real.objects, real.payloads, real.bytes), (2, 1, dry.bytes));
}

#[test]
fn reusing_an_existing_object_makes_it_young_again() {
    let f = fixture();
    let layer = f.layer("a", &[("x", "reused")]);
    f.age_everything();
    // The same tree committed again: nothing new is written, but the layer (the
    // commit's result, not yet tagged) must survive a clean.
    assert_eq!(f.layer("a", &[]), layer);
    let report = clean(&f.repo, &opts(900)).unwrap();
    assert_eq!((report.objects, report.payloads), (0, 0));
    assert!(f.repo.has_payload(&Digest::of(b"reused")));
}

#[test]
fn live_and_kept_runtimes_are_roots_and_dead_ones_are_not() {
    let f = fixture();
    let live = f.layer("live", &[("x", "live")]);
    let kept = f.layer("kept", &[("x", "kept")]);
    let dead = f.layer("dead", &[("x", "dead")]);
    let rec = |name: &str, host: &str, keep: bool, layer: Digest| RuntimeRecord {
        name: name.into(),
        pid: 0,
        started: 0,
        host: host.into(),
        created: 0,
        backend: Backend::Render,
        editable: false,
        keep,
        upper: "/nonexistent".into(),
        work: "/nonexistent".into(),
        stack: vec![layer],
        generation: 0,
        payloads_from: None,
    };
    let me = record::hostname();
    // A runtime of another host counts as alive.
    record::save(&f.repo, &rec("rt-live", "some-other-host", false, live)).unwrap();
    record::save(&f.repo, &rec("rt-kept", &me, true, kept)).unwrap();
    record::save(&f.repo, &rec("rt-dead", &me, false, dead)).unwrap();
    f.age_everything();
    clean(&f.repo, &opts(900)).unwrap();
    assert!(f.repo.has_payload(&Digest::of(b"live")));
    assert!(f.repo.has_payload(&Digest::of(b"kept")));
    assert!(!f.repo.has_payload(&Digest::of(b"dead")));
    assert!(!f.repo.has_object(&dead));
}

#[test]
fn an_unreadable_object_aborts_before_anything_is_removed() {
    let f = fixture();
    let tagged = f.layer("a", &[("x", "tagged")]);
    let loose = f.layer("b", &[("x", "loose")]);
    f.repo.push_tag("org/a", &tagged).unwrap();
    // Corrupt the tagged layer: what it protects can no longer be known.
    let path = f.repo.object_path(&tagged);
    fs::remove_file(&path).unwrap();
    fs::write(&path, b"garbage").unwrap();
    f.age_everything();
    let err = clean(&f.repo, &opts(900)).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(f.repo.has_object(&loose));
    assert!(f.repo.has_payload(&Digest::of(b"loose")));
}

#[test]
fn renders_and_proxies_of_unreachable_manifests_go() {
    let f = fixture();
    let src = f.dir.path().join("t");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("x"), "proxied").unwrap();
    // The same content committed with two modes needs a per-mode proxy to render.
    fs::write(src.join("y"), "proxied").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(src.join("y"), fs::Permissions::from_mode(0o755)).unwrap();
    let layer = commit_layer(
        &f.repo,
        &src,
        &CommitOptions::default(),
        &[],
        &Progress::hidden(),
    )
    .unwrap();
    let manifest = f.repo.read_layer(&layer).unwrap().manifest;
    let render = crate::render::render_cached(&f.repo, &manifest).unwrap();
    let proxies = f.repo.renders_dir().join("proxies");
    assert_eq!(count_files(&proxies), 1);
    f.repo.push_tag("org/t", &layer).unwrap();
    f.age_everything();
    // Tagged: the render and the proxy stay.
    let r = clean(&f.repo, &opts(900)).unwrap();
    assert_eq!((r.renders, r.proxies), (0, 0));
    assert!(render.is_dir());
    f.repo.remove_tag("org/t").unwrap();
    let r = clean(&f.repo, &opts(900)).unwrap();
    assert_eq!((r.renders, r.proxies, r.payloads), (1, 1, 1));
    assert!(!render.exists());
    assert_eq!(count_files(&proxies), 0);
}

#[test]
fn private_renders_their_markers_and_renders_of_the_previous_format_go() {
    let f = fixture();
    let src = f.dir.path().join("t");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("shared-write"), "group writable").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(src.join("shared-write"), fs::Permissions::from_mode(0o664)).unwrap();
    let layer = commit_layer(
        &f.repo,
        &src,
        &CommitOptions::default(),
        &[],
        &Progress::hidden(),
    )
    .unwrap();
    let manifest = f.repo.read_layer(&layer).unwrap().manifest;
    let render = crate::render::render_cached(&f.repo, &manifest).unwrap();
    let marker = f.repo.renders_dir().join("v2").join(manifest.to_hex());
    assert!(marker.is_file());
    assert!(render.starts_with(f.repo.renders_dir().join("v2/private")));
    // A render of the previous format, directly under renders/.
    let legacy = f.repo.renders_dir().join(manifest.to_hex());
    fs::create_dir_all(&legacy).unwrap();
    fs::write(legacy.join("shared-write"), "group writable").unwrap();
    f.repo.push_tag("org/t", &layer).unwrap();
    f.age_everything();
    let r = clean(&f.repo, &opts(900)).unwrap();
    assert_eq!(r.renders, 0);
    assert!(render.is_dir() && marker.is_file() && legacy.is_dir());
    f.repo.remove_tag("org/t").unwrap();
    let r = clean(&f.repo, &opts(900)).unwrap();
    assert_eq!((r.renders, r.payloads), (2, 1));
    assert!(!render.exists());
    assert!(!marker.exists());
    assert!(!legacy.exists());
}

fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    for e in fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            n += count_files(&e.path());
        } else {
            n += 1;
        }
    }
    n
}

#[test]
fn pruning_rules_follow_keep_over_prune() {
    let now = 1_000_000;
    let d = |b: &[u8]| Digest::of(b);
    let e = |target: Digest, age: u64| TagEntry {
        target,
        time: now - age,
        user: "u".into(),
    };
    // Newest first: index 0 is the current version.
    let h = vec![
        e(d(b"a"), 10),
        e(d(b"b"), 100),
        e(d(b"a"), 1000),
        e(d(b"c"), 10_000),
    ];
    let pruned = |r: &PruneRules| -> Vec<usize> {
        (0..h.len())
            .filter(|i| r.prunes(*i, &h[*i], &h, now))
            .collect()
    };
    let repeated = PruneRules {
        prune_repeated: true,
        ..Default::default()
    };
    assert_eq!(pruned(&repeated), vec![2]);
    let older = PruneRules {
        prune_if_older_than: Some(Duration::from_secs(500)),
        ..Default::default()
    };
    assert_eq!(pruned(&older), vec![2, 3]);
    let more = PruneRules {
        prune_if_more_than: Some(1),
        ..Default::default()
    };
    assert_eq!(pruned(&more), vec![1, 2, 3]);
    let keep_new = PruneRules {
        prune_if_more_than: Some(1),
        keep_if_newer_than: Some(Duration::from_secs(5000)),
        ..Default::default()
    };
    assert_eq!(pruned(&keep_new), vec![3]);
    let keep_few = PruneRules {
        prune_if_more_than: Some(1),
        keep_if_less_than: Some(3),
        ..Default::default()
    };
    assert_eq!(pruned(&keep_few), vec![3]);
    // The current version is never pruned.
    let all = PruneRules {
        prune_if_more_than: Some(0),
        ..Default::default()
    };
    assert_eq!(pruned(&all), vec![1, 2, 3]);
}

#[test]
fn pruned_tag_versions_no_longer_protect_their_targets() {
    let f = fixture();
    let first = f.layer("one", &[("x", "first")]);
    let second = f.layer("two", &[("x", "second")]);
    f.repo.push_tag("org/t", &first).unwrap();
    f.repo.push_tag("org/t", &second).unwrap();
    f.age_everything();
    let rules = PruneRules {
        prune_if_more_than: Some(1),
        ..Default::default()
    };
    let dry = clean(
        &f.repo,
        &CleanOptions {
            dry_run: true,
            prune: rules.clone(),
            ..opts(900)
        },
    )
    .unwrap();
    assert_eq!((dry.tag_versions, dry.objects), (1, 2));
    assert_eq!(f.repo.tag_history("org/t").unwrap().len(), 2);
    let r = clean(
        &f.repo,
        &CleanOptions {
            prune: rules,
            ..opts(900)
        },
    )
    .unwrap();
    assert_eq!((r.tag_versions, r.objects, r.payloads), (1, 2, 1));
    assert_eq!(f.repo.tag_history("org/t").unwrap().len(), 1);
    assert!(!f.repo.has_payload(&Digest::of(b"first")));
    assert!(f.repo.has_payload(&Digest::of(b"second")));
}

#[test]
fn a_tag_cannot_point_at_what_clean_removed() {
    let f = fixture();
    let layer = f.layer("a", &[("x", "soon gone")]);
    f.age_everything();
    clean(&f.repo, &opts(900)).unwrap();
    let err = f.repo.push_tag("org/late", &layer).unwrap_err();
    assert!(
        matches!(err, Error::MissingObject(d) if d == layer),
        "{err}"
    );
    assert!(f.repo.tag_history("org/late").unwrap().is_empty());
}

#[test]
fn temporaries_go_only_when_stale_whatever_the_grace() {
    let f = fixture();
    let recent = f.repo.tmp_dir().join("tag-in-flight");
    let stale = f.repo.tmp_dir().join(".commit-killed");
    fs::write(&recent, b"x").unwrap();
    fs::write(&stale, b"y").unwrap();
    let set = |p: &Path, secs: u64| {
        fs::File::open(p)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(secs))
            .unwrap()
    };
    set(&recent, 600);
    set(&stale, 7200);
    let r = clean(&f.repo, &opts(0)).unwrap();
    assert_eq!(r.temporaries, 1);
    assert!(recent.exists());
    assert!(!stale.exists());
}

#[test]
fn tag_contents_staged_by_a_killed_writer_go_once_stale() {
    let f = fixture();
    let target = f.repo.write_blob(b"kept").unwrap();
    f.repo.push_tag("org/kept", &target).unwrap();
    let dir = f.repo.root().join("tags/org");
    let recent = dir.join(".stage.in-flight");
    let stale = dir.join(".stage.killed");
    fs::write(&recent, b"x").unwrap();
    fs::write(&stale, b"y").unwrap();
    let set = |p: &Path, secs: u64| {
        fs::File::open(p)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(secs))
            .unwrap()
    };
    set(&recent, 600);
    set(&stale, 7200);
    // Staged files are not tags.
    assert_eq!(
        f.repo.list_tags("org").unwrap(),
        vec!["org/kept".to_string()]
    );
    let r = clean(&f.repo, &opts(0)).unwrap();
    assert_eq!(r.temporaries, 1);
    assert!(recent.exists());
    assert!(!stale.exists());
    assert_eq!(f.repo.resolve_tag("org/kept").unwrap(), Some(target));
}

#[test]
fn objects_and_payloads_staged_by_a_killed_writer_go_once_stale() {
    let f = fixture();
    let kept = f.repo.write_blob(b"kept").unwrap();
    f.repo.push_tag("org/kept", &kept).unwrap();
    let shard = f.repo.payload_path(&kept).parent().unwrap().to_path_buf();
    let objects = f.repo.root().join("objects/ab");
    fs::create_dir_all(&objects).unwrap();
    let recent = shard.join(".stage.in-flight");
    let stale = [shard.join(".stage.killed"), objects.join(".stage.killed")];
    fs::write(&recent, b"x").unwrap();
    let set = |p: &Path, secs: u64| {
        fs::File::open(p)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(secs))
            .unwrap()
    };
    set(&recent, 600);
    for p in &stale {
        fs::write(p, b"y").unwrap();
        set(p, 7200);
    }
    let r = clean(&f.repo, &opts(0)).unwrap();
    assert_eq!(r.temporaries, 2);
    assert!(recent.exists());
    assert!(stale.iter().all(|p| !p.exists()));
    assert_eq!(f.repo.read_blob(&kept).unwrap(), b"kept");
}
