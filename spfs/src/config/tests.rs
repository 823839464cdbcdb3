use std::fs;

use super::*;

fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    p
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn later_files_and_the_environment_win_and_sources_are_recorded() {
    let d = tempfile::tempdir().unwrap();
    let system = file(
        d.path(),
        "system.toml",
        "[storage]\nroot = \"/srv/spfs\"\n[runtime]\nbackend = \"fuse\"\n[remote.origin]\naddress = \"file:///mnt/shared/spfs\"\n[remote.archive]\naddress = \"tar:///backups/a.tar.zst\"\n",
    );
    let user = file(
        d.path(),
        "user.toml",
        "[remote.origin]\naddress = \"s3://bucket/team/spfs/\"\n",
    );
    let missing = d.path().join("missing.toml");
    let cfg = Config::load_from(
        &[system.clone(), missing, user.clone()],
        &env(&[
            ("SPFS_ROOT", "/env/root"),
            ("SPFS_REMOTE_BACKUP", "file:///b"),
        ]),
    )
    .unwrap();
    assert_eq!(cfg.files, vec![system.clone(), user.clone()]);
    assert_eq!(cfg.root.value, PathBuf::from("/env/root"));
    assert_eq!(cfg.root.source, Source::Env("SPFS_ROOT".into()));
    assert_eq!(cfg.backend.value, "fuse");
    assert_eq!(cfg.backend.source, Source::File(system.clone()));
    let origin = &cfg.remotes["origin"];
    assert_eq!(
        origin.value,
        Address::S3 {
            bucket: "bucket".into(),
            prefix: "team/spfs".into(),
            endpoint: None,
            region: None,
        }
    );
    assert_eq!(origin.source, Source::File(user));
    assert_eq!(
        cfg.remotes["archive"].value,
        Address::Tar("/backups/a.tar.zst".into())
    );
    assert_eq!(cfg.remotes["backup"].value, Address::File("/b".into()));
    // Names and addresses are both accepted wherever a remote is asked for.
    assert_eq!(
        cfg.remote(Some("backup")).unwrap(),
        Address::File("/b".into())
    );
    assert_eq!(
        cfg.remote(Some("file:///elsewhere")).unwrap(),
        Address::File("/elsewhere".into())
    );
    assert_eq!(cfg.remote(None).unwrap(), origin.value);
    let e = cfg.remote(Some("nope")).unwrap_err().to_string();
    assert!(e.contains("no remote named 'nope'"), "{e}");
    assert!(e.contains("configured: archive, backup, origin"), "{e}");
}

#[test]
fn defaults_apply_without_files() {
    let cfg = Config::load_from(&[], &[]).unwrap();
    assert_eq!(cfg.root.source, Source::Default);
    assert_eq!(cfg.root.value, crate::storage::builtin_root());
    assert_eq!(cfg.backend.value, "render");
    assert!(cfg.remotes.is_empty());
    let e = cfg.remote(None).unwrap_err().to_string();
    assert!(e.contains("no remote named 'origin'"), "{e}");
}

#[test]
fn mistakes_name_the_file_and_the_key() {
    let d = tempfile::tempdir().unwrap();
    for (text, expected) in [
        ("[storage\n", "not valid TOML"),
        ("[storage]\nroot = 3\n", "storage.root must be a string"),
        ("[storage]\nrooot = \"/x\"\n", "unknown key storage.rooot"),
        (
            "[runtime]\nbackend = \"nfs\"\n",
            "unknown runtime backend 'nfs'",
        ),
        ("[remote.origin]\n", "remote.origin has no 'address'"),
        (
            "[remote.origin]\naddress = \"/no/scheme\"\n",
            "remote.origin.address: '/no/scheme' is not a remote address: no scheme",
        ),
        (
            "[remote.origin]\naddress = \"file://relative\"\n",
            "the path must be absolute",
        ),
        (
            "[remote.x]\naddress = \"ftp://h/p\"\n",
            "unknown scheme 'ftp'",
        ),
        (
            "[remotes.origin]\naddress = \"file:///x\"\n",
            "unknown section [remotes]",
        ),
        ("root = \"/x\"\n", "'root' must be a table"),
    ] {
        let p = file(d.path(), "c.toml", text);
        let e = Config::load_from(std::slice::from_ref(&p), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains(expected), "{text:?}: {e}");
        if !expected.contains("backend") {
            assert!(e.contains(&p.display().to_string()), "{text:?}: {e}");
        }
    }
    let e = Config::load_from(&[], &env(&[("SPFS_REMOTE_X", "s3://")]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("$SPFS_REMOTE_X") && e.contains("no bucket"),
        "{e}"
    );
}

#[test]
fn addresses_print_as_they_parse() {
    for a in [
        "file:///mnt/x",
        "tar:///a/b.tar.zst",
        "s3://bkt",
        "s3://bkt/p/q",
    ] {
        assert_eq!(Address::parse(a).unwrap().to_string(), a);
    }
}

#[test]
fn s3_remotes_take_an_endpoint_and_a_region_and_other_remotes_refuse_them() {
    let d = tempfile::tempdir().unwrap();
    let p = file(
        d.path(),
        "c.toml",
        "[remote.cloud]\nregion = \"eu-west-1\"\naddress = \"s3://b/p\"\nendpoint = \"http://127.0.0.1:7480\"\n",
    );
    let cfg = Config::load_from(std::slice::from_ref(&p), &[]).unwrap();
    assert_eq!(
        cfg.remotes["cloud"].value,
        Address::S3 {
            bucket: "b".into(),
            prefix: "p".into(),
            endpoint: Some("http://127.0.0.1:7480".into()),
            region: Some("eu-west-1".into()),
        }
    );
    let p = file(
        d.path(),
        "d.toml",
        "[remote.disk]\naddress = \"file:///x\"\nendpoint = \"http://h\"\n",
    );
    let e = Config::load_from(std::slice::from_ref(&p), &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("remote.disk: 'endpoint' and 'region' apply to s3:// addresses only"),
        "{e}"
    );
}

#[test]
fn an_s3_address_keeps_its_endpoint_and_region_in_full_text() {
    let configured = Address::S3 {
        bucket: "b".into(),
        prefix: "p/q".into(),
        endpoint: Some("http://127.0.0.1:7480".into()),
        region: Some("eu-1".into()),
    };
    let text = configured.to_full_string();
    assert_eq!(
        text,
        "s3://b/p/q?endpoint=http://127.0.0.1:7480&region=eu-1"
    );
    assert_eq!(Address::parse(&text).unwrap(), configured);
    // Displayed for people without them; a plain address has no query.
    assert_eq!(configured.to_string(), "s3://b/p/q");
    let plain = Address::parse("s3://b").unwrap();
    assert_eq!(plain.to_full_string(), "s3://b");
    // A `?` that starts no endpoint/region query is part of the key prefix, as before.
    let odd = Address::parse("s3://b/a?b").unwrap();
    assert!(matches!(&odd, Address::S3 { prefix, endpoint: None, .. } if prefix == "a?b"));
    assert_eq!(Address::parse(&odd.to_full_string()).unwrap(), odd);
    // Values holding `&`, `%` or `?`, and a prefix holding `?`, survive the round trip.
    let tricky = Address::S3 {
        bucket: "b".into(),
        prefix: "x?y".into(),
        endpoint: Some("http://h:1/p?a=1&b=%2".into()),
        region: None,
    };
    assert_eq!(Address::parse(&tricky.to_full_string()).unwrap(), tricky);
}
