//! The library's spawnable runtime: several runtimes started at once from the threads
//! of one process, each private, each returning its command's status.

mod common;

use std::fs;
use std::path::Path;
use std::process::Stdio;

use spfs::runtime::monitor::RunOptions;
use spfs::runtime::spawn::RuntimeCommand;
use spfs::runtime::startup::Program;
use spfs::storage::LocalRepository;

use common::*;

fn program(script: &str) -> Program {
    Program::Command(vec!["sh".into(), "-c".into(), script.into()])
}

#[test]
fn two_runtimes_from_one_threaded_process() {
    if !privileged("two_runtimes_from_one_threaded_process") {
        return;
    }
    let env = Env::new();
    let dir = env.path("layer");
    write(&dir.join("shared"), b"from the layer", 0o644);
    let digest = env.commit(&dir, &["base"]);
    let repo = LocalRepository::open(&env.repo).unwrap();
    let layer = spfs::Digest::parse(&digest).unwrap();
    let barrier = std::sync::Barrier::new(2);
    let out_dir = env.path("out");
    fs::create_dir_all(&out_dir).unwrap();
    let results: Vec<(i32, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let (repo, barrier, out_dir) = (&repo, &barrier, &out_dir);
                s.spawn(move || {
                    // Each runtime writes its own file into an editable /spfs, waits
                    // until both runtimes exist, then reports what it sees.
                    let script = format!(
                        "echo {i} > /spfs/mine-{i}; touch {dir}/ready-{i}; \
                         while [ ! -e {dir}/ready-0 ] || [ ! -e {dir}/ready-1 ]; do sleep 0.05; done; \
                         cat /spfs/shared; echo; ls /spfs; echo \"cwd=$(pwd) var=$SPAWN_VAR\"; exit {code}",
                        dir = out_dir.display(),
                        code = 10 + i
                    );
                    let mut opts = RunOptions::new(vec![layer], program(&script));
                    opts.edit = Some(true);
                    opts.cwd = Some("/spfs".into());
                    barrier.wait();
                    let child = RuntimeCommand::new(repo, opts)
                        .monitor_exe(SPFS)
                        .env("SPAWN_VAR", format!("v{i}"))
                        .stdout(Stdio::piped())
                        .spawn()
                        .unwrap();
                    let mut child = child;
                    let mut text = String::new();
                    std::io::Read::read_to_string(&mut child.stdout().unwrap(), &mut text)
                        .unwrap();
                    (child.wait().unwrap(), text)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, (code, text)) in results.iter().enumerate() {
        assert_eq!(*code, 10 + i as i32, "runtime {i}: {text}");
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("from the layer"), "runtime {i}: {text}");
        let listing: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("cwd="))
            .collect();
        let mine = format!("mine-{i}");
        assert!(listing.contains(&mine.as_str()), "runtime {i}: {text}");
        let other = format!("mine-{}", 1 - i);
        assert!(
            !listing.contains(&other.as_str()),
            "runtime {i} sees the other's edit: {text}"
        );
        assert!(
            text.contains(&format!("cwd=/spfs var=v{i}")),
            "runtime {i}: {text}"
        );
    }
    // Nothing leaked into this process's namespace.
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(" /spfs "), "{mounts}");
    assert!(!Path::new("/spfs/mine-0").exists());
}

#[test]
fn setup_errors_come_back_as_errors_and_edits_can_live_on_disk() {
    if !privileged("setup_errors_come_back_as_errors_and_edits_can_live_on_disk") {
        return;
    }
    let env = Env::new();
    let repo = LocalRepository::open_or_create(&env.repo).unwrap();
    // A stack naming an object that does not exist: an error, not an exit status.
    let missing = spfs::Digest::parse(&"ab".repeat(32)).unwrap();
    let err = RuntimeCommand::new(&repo, RunOptions::new(vec![missing], program("true")))
        .monitor_exe(SPFS)
        .stderr(Stdio::null())
        .status()
        .unwrap_err();
    assert!(err.to_string().contains(&missing.to_hex()[..12]), "{err}");
    // The upper dir on disk keeps what the command wrote, for capture after exit.
    let upper = env.path("build-upper");
    let mut opts = RunOptions::new(
        Vec::new(),
        program("mkdir -p /spfs/out && echo hi > /spfs/out/f"),
    );
    opts.upper_dir = Some(upper.clone());
    let code = RuntimeCommand::new(&repo, opts)
        .monitor_exe(SPFS)
        .status()
        .unwrap();
    assert_eq!(code, 0);
    assert_eq!(
        fs::read_to_string(upper.join("upper/out/f")).unwrap(),
        "hi\n"
    );
}

#[test]
fn links_show_spfs_paths_elsewhere_privately() {
    if !privileged("links_show_spfs_paths_elsewhere_privately") {
        return;
    }
    let env = Env::new();
    let dir = env.path("layer");
    write(
        &dir.join("var/vcap/packages/dep/lib.txt"),
        b"dep content",
        0o644,
    );
    let digest = env.commit(&dir, &["deps"]);
    let repo = LocalRepository::open(&env.repo).unwrap();
    let layer = spfs::Digest::parse(&digest).unwrap();
    // A host directory with its own content, which the runtime must not see or change.
    let host = env.path("host/packages");
    write(&host.join("host-only"), b"host", 0o644);
    let missing_parent = env.path("not/yet/there");
    let script = format!(
        "cat {h}/dep/lib.txt; echo; ls {h}; mkdir -p /spfs/var/vcap/packages/me && echo built > {h}/me/out; \
         cat /spfs/var/vcap/packages/me/out; readlink {h}/dep; ls {m}",
        h = host.display(),
        m = missing_parent.display()
    );
    let mut opts = RunOptions::new(vec![layer], program(&script));
    opts.edit = Some(true);
    opts.links = vec![
        (host.join("dep"), "/spfs/var/vcap/packages/dep".into()),
        (host.join("me"), "/spfs/var/vcap/packages/me".into()),
        (missing_parent.join("l"), "/spfs".into()),
    ];
    let mut child = RuntimeCommand::new(&repo, opts)
        .monitor_exe(SPFS)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut child.stdout().unwrap(), &mut text).unwrap();
    assert_eq!(child.wait().unwrap(), 0, "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "dep content",
            "dep",
            "me",
            "built",
            "/spfs/var/vcap/packages/dep",
            "l"
        ],
        "{text}"
    );
    // The host directory is untouched, and the created mount point is empty.
    let names: Vec<_> = fs::read_dir(&host)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["host-only"]);
    assert_eq!(fs::read_dir(&missing_parent).unwrap().count(), 0);
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&host.display().to_string()), "{mounts}");
    // Invalid links fail the runtime before it starts.
    let mut opts = RunOptions::new(vec![layer], program("true"));
    opts.links = vec![("/spfs/x/y".into(), "/spfs".into())];
    let err = RuntimeCommand::new(&repo, opts)
        .monitor_exe(SPFS)
        .stderr(Stdio::null())
        .status()
        .unwrap_err();
    assert!(err.to_string().contains("outside /spfs"), "{err}");
}
