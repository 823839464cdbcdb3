//! Configuration files and `spfs config` through the binary.

mod common;

use std::fs;

use common::*;

#[test]
fn config_shows_each_value_with_its_source_and_the_root_is_used() {
    let env = Env::new();
    let xdg = env.path("xdg");
    fs::create_dir_all(xdg.join("spfs")).unwrap();
    let root = env.path("configured-repo");
    let user = xdg.join("spfs/spfs.toml");
    fs::write(
        &user,
        format!(
            "[storage]\nroot = \"{}\"\n[remote.origin]\naddress = \"file:///mnt/shared/spfs\"\n",
            root.display()
        ),
    )
    .unwrap();
    let extra = env.path("extra.toml");
    fs::write(&extra, "[runtime]\nbackend = \"fuse\"\n").unwrap();
    let run = |args: &[&str]| {
        let mut c = env.cmd(args);
        c.env_remove("SPFS_ROOT")
            .env("XDG_CONFIG_HOME", &xdg)
            .env("SPFS_CONFIG", &extra)
            .env("SPFS_REMOTE_BACKUP", "tar:///backups/all.tar.zst");
        c.output().unwrap()
    };
    let out = run(&["config"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let expected = format!(
        "storage.root = {}    # from {}\n\
         runtime.backend = fuse    # from {}\n\
         remote.backup.address = tar:///backups/all.tar.zst    # from $SPFS_REMOTE_BACKUP\n\
         remote.origin.address = file:///mnt/shared/spfs    # from {}\n",
        root.display(),
        user.display(),
        extra.display(),
        user.display()
    );
    assert_eq!(text, expected);
    // The configured root is where commands work.
    let dir = env.path("tree");
    write(&dir.join("f"), b"x", 0o644);
    let out = run(&["commit", "layer", "--path", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(root.join("VERSION").is_file());

    // A mistake in a file is reported with the file and the key.
    fs::write(&extra, "[runtime]\nbackend = \"nfs\"\n").unwrap();
    let out = run(&["tags"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}: runtime.backend: unknown runtime backend 'nfs'",
            extra.display()
        )),
        "{stderr}"
    );
    // --repo needs no configuration.
    let out = run(&["--repo", root.to_str().unwrap(), "tags"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
