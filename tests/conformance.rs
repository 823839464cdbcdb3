//! Every spec file of the shared conformance corpus must parse (after template rendering
//! with its defaults) into a valid recipe.

use std::path::{Path, PathBuf};

use spk::spec::{load_spec_file, LoadOptions};

fn corpus_dir() -> PathBuf {
    // The corpus lives in shared/, beside the project's root.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/spk-specs");
    assert!(
        dir.is_dir(),
        "conformance corpus not found at {}: shared/ must sit beside the project",
        dir.display()
    );
    dir
}

fn spec_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            spec_files(&p, out);
        } else if p.to_string_lossy().ends_with(".yaml") || p.to_string_lossy().ends_with(".yml") {
            out.push(p);
        }
    }
}

#[test]
fn every_conformance_spec_parses() {
    let dir = corpus_dir();
    let mut files = Vec::new();
    spec_files(&dir, &mut files);
    assert!(
        files.len() >= 60,
        "expected the whole corpus, found {} files",
        files.len()
    );
    let opts = LoadOptions {
        lenient_unknown_fields: true,
        ..Default::default()
    };
    let mut failures = Vec::new();
    let mut warnings = Vec::new();
    for f in &files {
        match load_spec_file(f, &opts) {
            Ok(loaded) => {
                // A parsed recipe serializes and reads back to the same spec.
                let text = loaded.spec.to_yaml();
                let again = spk::spec::parse_spec(&text, "round-trip", &LoadOptions::default())
                    .unwrap_or_else(|e| {
                        panic!(
                            "{}: re-reading the serialized spec failed: {e}\n{text}",
                            f.display()
                        )
                    });
                assert_eq!(
                    again.spec,
                    loaded.spec,
                    "{}: round trip changed the spec",
                    f.display()
                );
                for w in loaded.warnings {
                    warnings.push(format!("{w} ({})", w.help.clone().unwrap_or_default()));
                }
            }
            Err(e) => failures.push(format!("{e} ({})", e.help.clone().unwrap_or_default())),
        }
    }
    assert!(
        failures.is_empty(),
        "{} spec(s) failed to parse:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The corpus has exactly one typo'd key (`uild:`); it is reported, not silently accepted.
    assert_eq!(
        warnings.len(),
        1,
        "unexpected warnings:\n{}",
        warnings.join("\n")
    );
    assert!(
        warnings[0].contains("unknown field 'uild'")
            && warnings[0].contains("did you mean 'build'"),
        "{}",
        warnings[0]
    );
}

#[test]
fn strict_mode_rejects_the_corpus_typo() {
    let path = corpus_dir().join("examples/testing/example.spk.yaml");
    let err = load_spec_file(&path, &LoadOptions::default()).unwrap_err();
    assert_eq!((err.line, err.column), (Some(4), Some(1)), "{err}");
    assert!(err.help.unwrap().contains("did you mean 'build'"));
}

#[test]
fn templated_corpus_specs_take_command_line_options() {
    let path = corpus_dir().join("packages/python/python3.spk.yaml");
    let default = load_spec_file(&path, &LoadOptions::default()).unwrap();
    assert_eq!(default.spec.ident().to_string(), "python/3.7.3");
    let mut opts = spk::OptionMap::new();
    opts.insert("version".parse().unwrap(), "3.9.1");
    let custom = load_spec_file(&path, &LoadOptions::with_options(opts)).unwrap();
    assert_eq!(custom.spec.ident().to_string(), "python/3.9.1");
    let abi = custom
        .spec
        .build
        .options
        .iter()
        .find(|o| o.name() == "abi")
        .unwrap();
    assert_eq!(abi.value(None).as_deref(), Some("cp39m"));
}

#[test]
fn conformance_recipes_read_back_identical_through_the_package_index() {
    use spk::storage::{PackageRepository, SpfsRepository};
    let mut files = Vec::new();
    spec_files(&corpus_dir(), &mut files);
    let opts = LoadOptions {
        lenient_unknown_fields: true,
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let repo = SpfsRepository::open_or_create(dir.path()).unwrap();
    let mut published = Vec::new();
    for f in &files {
        let Ok(loaded) = load_spec_file(f, &opts) else {
            continue;
        };
        if repo.publish_recipe(&loaded.spec, false).is_ok() {
            published.push(loaded.spec);
        }
    }
    assert!(published.len() >= 50, "{}", published.len());
    // The first handle builds and saves the indexes; a second one reads the saved files.
    for handle in 0..2 {
        let repo = SpfsRepository::open(dir.path()).unwrap();
        for spec in &published {
            let package = repo.load_package(spec.name()).unwrap();
            let entry = package
                .versions
                .iter()
                .find(|v| v.version.is_identical(spec.version()))
                .unwrap_or_else(|| panic!("{} missing from the index", spec.pkg));
            let indexed = entry.recipe.as_ref().unwrap();
            assert_eq!(
                &*indexed.spec().unwrap(),
                spec,
                "handle {handle}: {}",
                spec.pkg
            );
            assert_eq!(*indexed.summary, spk::storage::SpecSummary::of(spec));
        }
    }
}
