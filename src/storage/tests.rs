use super::*;
use crate::spec::{parse_spec, LoadOptions};

fn spec(text: &str) -> Spec {
    parse_spec(text, "test", &LoadOptions::default())
        .unwrap()
        .spec
}

fn exercise(repo: &dyn PackageRepository) {
    let recipe = spec("pkg: my-pkg/1.0.0\nbuild:\n  options:\n    - var: debug/off\n      choices: [on, off]\n  variants: [{debug: on}, {debug: off}]\n");
    repo.publish_recipe(&recipe, false).unwrap();
    assert!(matches!(
        repo.publish_recipe(&recipe, false),
        Err(StorageError::AlreadyExists(_))
    ));
    repo.publish_recipe(&recipe, true).unwrap();
    let builds = bulk::publish_stub_builds(repo, &recipe, &crate::OptionMap::new()).unwrap();
    assert_eq!(builds.len(), 2);
    assert_ne!(builds[0], builds[1], "variants have different build ids");

    let name: PkgName = "my-pkg".parse().unwrap();
    assert_eq!(repo.list_packages().unwrap(), vec![name.clone()]);
    let v: Version = "1.0".parse().unwrap();
    assert_eq!(repo.list_versions(&name).unwrap(), vec![v.clone()]);
    let vi = VersionIdent::new(name.clone(), v);
    assert_eq!(
        repo.read_recipe(&vi).unwrap().as_ref(),
        &recipe,
        "1.0 finds 1.0.0"
    );
    let mut listed = repo.list_builds(&vi).unwrap();
    listed.sort();
    let mut expected = builds.clone();
    expected.sort();
    assert_eq!(listed, expected);
    let b = repo.read_build(&builds[0]).unwrap();
    assert_eq!(b.build_ident().as_ref(), Some(&builds[0]));
    let debug = b.option_values().get_str("debug").unwrap().to_string();
    assert!(debug == "on" || debug == "off");
    let layers = repo.read_components(&builds[0]).unwrap();
    assert!(layers.contains_key(&Component::Run) && layers.contains_key(&Component::Build));

    // Search.
    assert_eq!(repo.search("pkg").unwrap(), vec![vi.clone()]);
    assert!(repo.search("nothing").unwrap().is_empty());

    // Deprecate one build, then the whole version.
    let one: AnyIdent = builds[0].to_string().parse().unwrap();
    assert_eq!(
        repo.set_deprecated(&one, true).unwrap(),
        vec![builds[0].to_string()]
    );
    assert!(repo.read_build(&builds[0]).unwrap().deprecated);
    assert!(!repo.read_build(&builds[1]).unwrap().deprecated);
    assert_eq!(
        repo.read_components(&builds[0]).unwrap(),
        layers,
        "layers survive deprecation"
    );
    let all: AnyIdent = "my-pkg/1.0.0".parse().unwrap();
    assert_eq!(repo.set_deprecated(&all, true).unwrap().len(), 3);
    assert!(repo.read_recipe(&vi).unwrap().deprecated);
    repo.set_deprecated(&all, false).unwrap();
    assert!(!repo.read_build(&builds[1]).unwrap().deprecated);

    // Embedded index.
    let maya = spec("pkg: maya/2019.0.0/ABCDEFGH\ninstall:\n  embedded:\n    - pkg: qt/5.12.6\n");
    repo.publish_build(&maya, &bulk::stub_layers(&maya))
        .unwrap();
    let qt: PkgName = "qt".parse().unwrap();
    assert_eq!(
        repo.embedded_in(&qt).unwrap(),
        vec![maya.build_ident().unwrap()]
    );
    repo.remove(&"maya/2019.0.0/ABCDEFGH".parse().unwrap())
        .unwrap();
    assert!(repo.embedded_in(&qt).unwrap().is_empty());

    // Errors.
    assert!(matches!(
        repo.read_build(&"my-pkg/2.0/ABCDEFGH".parse().unwrap()),
        Err(StorageError::NotFound { .. })
    ));
    assert!(matches!(
        repo.publish_build(&recipe, &ComponentLayers::new()),
        Err(StorageError::Invalid(_))
    ));
    let mut bad_layers = layers.clone();
    bad_layers.insert(Component::Named("nope".into()), spfs::Digest::of(b""));
    assert!(matches!(
        repo.publish_build(&b, &bad_layers),
        Err(StorageError::Invalid(_))
    ));

    // Remove one build, then everything.
    assert_eq!(repo.remove(&one).unwrap(), vec![builds[0].to_string()]);
    assert_eq!(repo.list_builds(&vi).unwrap(), vec![builds[1].clone()]);
    assert_eq!(repo.remove(&all).unwrap().len(), 2);
    assert!(repo.list_packages().unwrap().is_empty());
    assert!(matches!(
        repo.remove(&all),
        Err(StorageError::NotFound { .. })
    ));
}

#[test]
fn memory_repository() {
    exercise(&MemRepository::new());
}

#[test]
fn spfs_repository() {
    let dir = tempfile::tempdir().unwrap();
    let repo = SpfsRepository::open_or_create(dir.path()).unwrap();
    exercise(&repo);
    // Reopening sees the same data.
    let recipe = spec("pkg: other/2.0.0+r.1\n");
    repo.publish_recipe(&recipe, false).unwrap();
    let again = SpfsRepository::open_or_create(dir.path()).unwrap();
    assert_eq!(again.read_recipe(recipe.ident()).unwrap().as_ref(), &recipe);
    // Tag layout is documented in docs/spk-storage.md.
    assert!(repo
        .spfs()
        .resolve_tag("spk/spec/other/2.0.0+r.1")
        .unwrap()
        .is_some());
}

#[test]
fn spfs_tag_layout() {
    let dir = tempfile::tempdir().unwrap();
    let repo = SpfsRepository::open_or_create(dir.path()).unwrap();
    let b = spec("pkg: py/3.7.3/ABCDEFGH\ninstall:\n  components:\n    - name: docs\n");
    let mut layers = bulk::stub_layers(&b);
    // Tags point only at stored content.
    let digest = repo.spfs().write_blob(b"layer").unwrap();
    layers.insert(Component::Named("docs".into()), digest);
    repo.publish_build(&b, &layers).unwrap();
    let s = repo.spfs();
    assert!(s
        .resolve_tag("spk/spec/py/3.7.3/ABCDEFGH")
        .unwrap()
        .is_some());
    assert_eq!(
        s.resolve_tag("spk/spec/py/3.7.3/ABCDEFGH.docs").unwrap(),
        Some(digest)
    );
    assert!(s
        .resolve_tag("spk/spec/py/3.7.3/ABCDEFGH.run")
        .unwrap()
        .is_some());
}

#[test]
fn builds_of_the_first_layout_are_read_moved_on_republish_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let repo = SpfsRepository::open_or_create(dir.path()).unwrap();
    let b = spec("pkg: py/3.7.3/ABCDEFGH\ninstall:\n  components:\n    - name: docs\n");
    let ident = b.build_ident().unwrap();
    let docs = repo.spfs().write_blob(b"docs layer").unwrap();
    let run = repo.spfs().write_blob(b"run layer").unwrap();
    // A build as the first layout stored it: spec tag, components under spk/pkg.
    let s = repo.spfs();
    let spec_blob = s.write_blob(b.to_yaml().as_bytes()).unwrap();
    let old = |c: &str| format!("spk/pkg/py/3.7.3/ABCDEFGH/{c}");
    s.push_tags(&[
        (old("docs"), docs),
        (old("run"), run),
        ("spk/spec/py/3.7.3/ABCDEFGH".to_string(), spec_blob),
    ])
    .unwrap();
    let want: ComponentLayers = [
        (Component::Named("docs".into()), docs),
        (Component::Run, run),
    ]
    .into_iter()
    .collect();
    assert_eq!(repo.read_components(&ident).unwrap(), want);
    assert_eq!(
        repo.list_builds(&ident.version_ident()).unwrap(),
        vec![ident.clone()]
    );

    // Republished with one component fewer: the new layout only, nothing left behind.
    let layers: ComponentLayers = [(Component::Run, run)].into_iter().collect();
    repo.publish_build(&b, &layers).unwrap();
    assert_eq!(repo.read_components(&ident).unwrap(), layers);
    assert!(s.list_tags("spk/pkg/").unwrap().is_empty());
    assert_eq!(
        s.list_tags("spk/spec/py/3.7.3/").unwrap(),
        vec![
            "spk/spec/py/3.7.3/ABCDEFGH".to_string(),
            "spk/spec/py/3.7.3/ABCDEFGH.run".to_string()
        ]
    );

    // Both layouts at once (a pull of the first layout over the second): a component
    // beside the spec wins, the others are read from the first layout, and removing
    // the build removes every one of them.
    s.push_tags(&[(old("docs"), docs), (old("run"), docs)])
        .unwrap();
    assert_eq!(repo.read_components(&ident).unwrap(), want);
    repo.remove_build(&ident).unwrap();
    assert!(s.list_tags("spk/").unwrap().is_empty());
}

/// A repository whose build writes fail after `ok_builds` successes.
struct FailingBuilds {
    inner: MemRepository,
    ok_builds: std::sync::atomic::AtomicUsize,
}

impl PackageRepository for FailingBuilds {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn list_packages(&self) -> Result<Vec<PkgName>> {
        self.inner.list_packages()
    }
    fn list_versions(&self, name: &PkgName) -> Result<Vec<Version>> {
        self.inner.list_versions(name)
    }
    fn list_builds(&self, ident: &VersionIdent) -> Result<Vec<BuildIdent>> {
        self.inner.list_builds(ident)
    }
    fn read_recipe(&self, ident: &VersionIdent) -> Result<Arc<Spec>> {
        self.inner.read_recipe(ident)
    }
    fn read_build(&self, ident: &BuildIdent) -> Result<Arc<Spec>> {
        self.inner.read_build(ident)
    }
    fn read_components(&self, ident: &BuildIdent) -> Result<ComponentLayers> {
        self.inner.read_components(ident)
    }
    fn publish_recipe(&self, spec: &Spec, force: bool) -> Result<()> {
        self.inner.publish_recipe(spec, force)
    }
    fn publish_build(&self, spec: &Spec, components: &ComponentLayers) -> Result<()> {
        use std::sync::atomic::Ordering;
        if self.ok_builds.load(Ordering::SeqCst) == 0 {
            return Err(StorageError::Invalid("disk full".into()));
        }
        self.ok_builds.fetch_sub(1, Ordering::SeqCst);
        self.inner.publish_build(spec, components)
    }
    fn remove_recipe(&self, ident: &VersionIdent) -> Result<()> {
        self.inner.remove_recipe(ident)
    }
    fn remove_build(&self, ident: &BuildIdent) -> Result<()> {
        self.inner.remove_build(ident)
    }
    fn embedded_in(&self, name: &PkgName) -> Result<Vec<BuildIdent>> {
        self.inner.embedded_in(name)
    }
}

#[test]
fn failed_publish_leaves_the_repository_as_it_was() {
    let repo = FailingBuilds {
        inner: MemRepository::new(),
        ok_builds: 1.into(),
    };
    let old = spec("pkg: a/1.0.0\nmeta:\n  description: old\n");
    repo.publish_recipe(&old, false).unwrap();
    let specs = [
        spec("pkg: a/1.0.0\nmeta:\n  description: new\n"),
        spec("pkg: b/1.0.0\n"),
    ];
    // Two recipes and their two stub builds: the second build write fails.
    let err = bulk::publish_specs(&repo, &specs, &crate::OptionMap::new(), true, true).unwrap_err();
    assert!(err.to_string().contains("disk full"), "{err}");
    let a = VersionIdent::new("a".parse().unwrap(), "1.0.0".parse().unwrap());
    assert_eq!(
        repo.read_recipe(&a).unwrap().as_ref(),
        &old,
        "replaced recipe restored"
    );
    assert!(
        repo.list_builds(&a).unwrap().is_empty(),
        "written build removed"
    );
    assert_eq!(repo.list_packages().unwrap(), vec!["a".parse().unwrap()]);
    // Duplicates are refused before anything is written.
    let err = bulk::publish_specs(
        &repo.inner,
        &[spec("pkg: c/1.0\n"), spec("pkg: c/1.0\n")],
        &crate::OptionMap::new(),
        false,
        false,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "c/1.0 is defined twice: in spec #1 and in spec #2; nothing was published"
    );
    assert!(repo
        .inner
        .list_versions(&"c".parse().unwrap())
        .unwrap()
        .is_empty());
}

/// A store that records every tag listing asked of it and lists one level only the
/// default way (from every name under it), as a store without directories would.
struct Counting {
    inner: spfs::storage::LocalRepository,
    listed: std::sync::Mutex<Vec<String>>,
}

impl spfs::storage::ObjectStore for Counting {
    fn has_object(&self, d: &Digest) -> spfs::Result<bool> {
        spfs::storage::ObjectStore::has_object(&self.inner, d)
    }
    fn read_object_bytes(&self, d: &Digest) -> spfs::Result<Vec<u8>> {
        self.inner.read_object_bytes(d)
    }
    fn write_object_bytes(&self, d: &Digest, b: &[u8]) -> spfs::Result<()> {
        self.inner.write_object_bytes(d, b)
    }
    fn list_objects(&self) -> spfs::Result<Vec<Digest>> {
        self.inner.list_objects()
    }
}

impl spfs::storage::PayloadStore for Counting {
    fn has_payload(&self, d: &Digest) -> spfs::Result<bool> {
        spfs::storage::PayloadStore::has_payload(&self.inner, d)
    }
    fn open_payload_stream(
        &self,
        d: &Digest,
    ) -> spfs::Result<(Box<dyn std::io::Read + Send>, u64, u32)> {
        self.inner.open_payload_stream(d)
    }
    fn write_payload_stream(
        &self,
        d: &Digest,
        r: &mut dyn std::io::Read,
        mode: u32,
    ) -> spfs::Result<u64> {
        self.inner.write_payload_stream(d, r, mode)
    }
    fn list_payloads(&self) -> spfs::Result<Vec<Digest>> {
        self.inner.list_payloads()
    }
}

impl spfs::storage::TagStore for Counting {
    fn list_tag_names(&self, prefix: &str) -> spfs::Result<Vec<String>> {
        self.listed.lock().unwrap().push(prefix.to_string());
        self.inner.list_tags(prefix)
    }
    fn tag_versions(&self, name: &str) -> spfs::Result<Vec<spfs::storage::TagEntry>> {
        self.inner.tag_history(name)
    }
    fn set_tags(&self, tags: &[(String, Digest)]) -> spfs::Result<()> {
        self.inner.push_tags(tags)
    }
}

impl spfs::storage::Repository for Counting {
    fn describe(&self) -> String {
        "counting".into()
    }
    fn hold_for_writing(&self) -> spfs::Result<Box<dyn std::any::Any>> {
        spfs::storage::Repository::hold_for_writing(&self.inner)
    }
}

fn counting(root: &std::path::Path) -> Arc<Counting> {
    Arc::new(Counting {
        inner: spfs::storage::LocalRepository::open(root).unwrap(),
        listed: std::sync::Mutex::new(Vec::new()),
    })
}

#[test]
fn a_remote_reads_the_same_packages_listing_only_the_prefix_of_the_package_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let local = SpfsRepository::open_or_create(dir.path()).unwrap();
    let recipe = spec("pkg: my-pkg/1.0.0\nbuild:\n  options:\n    - var: debug/off\n      choices: [on, off]\n  variants: [{debug: on}, {debug: off}]\n");
    local.publish_recipe(&recipe, false).unwrap();
    bulk::publish_stub_builds(&local, &recipe, &crate::OptionMap::new()).unwrap();
    local
        .publish_recipe(&spec("pkg: my-pkg/0.9\n"), false)
        .unwrap();
    let other = spec("pkg: other/2.0.0+r.1\n");
    local.publish_recipe(&other, false).unwrap();
    let store = counting(dir.path());
    let remote = RemoteRepository::new("origin", store.clone());
    let name: PkgName = "my-pkg".parse().unwrap();

    // The same versions, recipes and builds as the local reader finds.
    let want = local.load_package(&name).unwrap();
    let got = remote.load_package(&name).unwrap();
    type Summary = Vec<(String, Option<Spec>, Vec<(String, Spec)>)>;
    let summary = |p: &PackageVersions| -> Summary {
        p.versions
            .iter()
            .map(|v| {
                (
                    v.version.to_string(),
                    v.recipe.as_ref().map(|r| (*r.spec().unwrap()).clone()),
                    v.builds
                        .iter()
                        .map(|(b, s)| (b.to_string(), (*s.spec().unwrap()).clone()))
                        .collect(),
                )
            })
            .collect()
    };
    assert_eq!(summary(&got), summary(&want));
    assert_eq!(got.versions.len(), 2);
    assert_eq!(*store.listed.lock().unwrap(), vec!["spk/spec/my-pkg/"]);
    // Read once: answered from memory afterwards.
    let builds = remote.list_builds(&VersionIdent::new(name.clone(), "1.0".parse().unwrap()));
    let builds = builds.unwrap();
    assert_eq!(builds.len(), 2);
    assert_eq!(store.listed.lock().unwrap().len(), 1);
    assert_eq!(
        remote.read_components(&builds[0]).unwrap(),
        local.read_components(&builds[0]).unwrap()
    );
    // A build's components: one listing of the version's level (every component its
    // spec names is there, so the first layout's directory is not listed).
    assert_eq!(
        store.listed.lock().unwrap()[1..],
        ["spk/spec/my-pkg/1.0.0/".to_string()]
    );
    // Listing packages reads the spec prefix only, not the whole store.
    store.listed.lock().unwrap().clear();
    let names: Vec<String> = remote
        .list_packages()
        .unwrap()
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(names, vec!["my-pkg", "other"]);
    assert_eq!(*store.listed.lock().unwrap(), vec!["spk/spec/"]);
    // Versions of a package not read yet: one level of its prefix, no spec read.
    store.listed.lock().unwrap().clear();
    let other_name: PkgName = "other".parse().unwrap();
    assert_eq!(
        remote.list_versions(&other_name).unwrap(),
        vec![other.version().clone()]
    );
    assert_eq!(*store.listed.lock().unwrap(), vec!["spk/spec/other/"]);
    // A remote is not written through spk's package interface.
    let err = remote.publish_recipe(&other, true).unwrap_err();
    assert!(err.to_string().contains("remote 'origin'"), "{err}");
    use spfs::Help;
    assert!(err.help()[0].contains("spk push"), "{:?}", err.help());
}

#[test]
fn a_stack_prefers_the_first_repository_and_says_where_each_build_is() {
    let local_dir = tempfile::tempdir().unwrap();
    let remote_dir = tempfile::tempdir().unwrap();
    let local = SpfsRepository::open_or_create(local_dir.path()).unwrap();
    let remote_repo = SpfsRepository::open_or_create(remote_dir.path()).unwrap();
    let both = spec("pkg: tool/1.0.0\nbuild:\n  options:\n    - var: debug/off\n      choices: [on, off]\n  variants: [{debug: on}, {debug: off}]\n");
    // The local repository has 1.0.0 with one build; the remote has both builds and 2.0.
    local.publish_recipe(&both, false).unwrap();
    let local_builds = bulk::publish_stub_builds(&local, &both, &crate::OptionMap::new()).unwrap();
    remote_repo.publish_recipe(&both, false).unwrap();
    let remote_builds =
        bulk::publish_stub_builds(&remote_repo, &both, &crate::OptionMap::new()).unwrap();
    let only_local = &local_builds[0];
    local.remove_build(&local_builds[1]).unwrap();
    let newer = spec("pkg: tool/2.0.0\n");
    remote_repo.publish_recipe(&newer, false).unwrap();
    let remote = RemoteRepository::new("origin", counting(remote_dir.path()));
    let stack = RepositoryStack::new(vec![
        ("local".to_string(), &local as &dyn PackageRepository),
        ("origin".to_string(), &remote as &dyn PackageRepository),
    ]);
    let name: PkgName = "tool".parse().unwrap();
    let merged = stack.load_package(&name).unwrap();
    let versions: Vec<String> = merged
        .versions
        .iter()
        .map(|v| v.version.to_string())
        .collect();
    assert_eq!(versions, vec!["1.0.0", "2.0.0"]);
    assert_eq!(merged.versions[0].builds.len(), 2);
    assert!(merged.versions[1].builds.is_empty());
    let from_remote = remote_builds.iter().find(|b| *b != only_local).unwrap();
    assert_eq!(stack.origin(only_local).unwrap(), Some("local"));
    assert_eq!(stack.origin(from_remote).unwrap(), Some("origin"));
    assert_eq!(
        stack.read_components(from_remote).unwrap(),
        remote_repo.read_components(from_remote).unwrap()
    );
    assert_eq!(
        stack.holders(&name, Some(&"1.0".parse().unwrap())).unwrap(),
        vec!["local", "origin"]
    );
    assert_eq!(
        stack.holders(&name, Some(&"2".parse().unwrap())).unwrap(),
        vec!["origin"]
    );
    // Writes go to the first repository.
    stack
        .publish_recipe(&spec("pkg: fresh/1.0.0\n"), false)
        .unwrap();
    assert!(local
        .read_recipe(&VersionIdent::new(
            "fresh".parse().unwrap(),
            "1".parse().unwrap()
        ))
        .is_ok());
}
