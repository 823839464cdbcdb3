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
        s.resolve_tag("spk/pkg/py/3.7.3/ABCDEFGH/docs").unwrap(),
        Some(digest)
    );
    assert!(s
        .resolve_tag("spk/pkg/py/3.7.3/ABCDEFGH/run")
        .unwrap()
        .is_some());
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
