use super::*;
use crate::spec::{parse_spec, LoadOptions};

fn spec(text: &str) -> Spec {
    parse_spec(text, "test", &LoadOptions::default())
        .unwrap()
        .spec
}

#[test]
fn reference_guide_examples_parse() {
    let s = spec(
        "pkg: my-package/1.0.0\ncompat: x.a.b\nsources:\n  - git: https://github.com/someuser/someproject\n    ref: main\n    subdir: someproject\n  - path: ./\n    subdir: src\nbuild:\n  options:\n    - pkg: foo:data/1.0\n    - var: color/blue\n      choices: [red, blue, green]\n      inheritance: Strong\n      description: |\n        Control what color the lights will be when lit.\n  variants:\n    - { \"foo:docs\": \"1.0\" }\n    - { \"foo:{docs,examples}\": \"2.0\" }\n  validation:\n    rules:\n      - allow: RecursiveBuild\ninstall:\n  environment:\n    - priority: 99\n    - comment: START\n    - set: MYPKG_VAR\n      value: hello, world\n  requirements:\n    - pkg: python\n      fromBuildEnv: x.x\n    - var: python.abi\n      fromBuildEnv: true\n  components:\n    - name: lib\n      files: [lib/mylib*.so]\n    - name: bin\n      uses: lib\n      requirements:\n        - pkg: python/=3.7.3\n        - pkg: python-requests\n  embedded:\n    - pkg: python/2.7.11\n      build:\n        options:\n          - { var: abi, static: cp27m }\ntests:\n  - stage: build\n    script: python -m \"unittest\"\n",
    );
    assert_eq!(s.install.priority(), 99);
    assert_eq!(s.sources.len(), 2);
    assert_eq!(s.build.variants.len(), 2);
    assert_eq!(
        s.install.embedded[0].option_values().get_str("abi"),
        Some("cp27m")
    );
    let comps = s.resolve_components(&[Component::Named("bin".into())].into_iter().collect());
    assert_eq!(comps.len(), 2, "bin uses lib");
    let reqs = s.requirements_for(&[Component::Named("bin".into())].into_iter().collect());
    assert!(reqs
        .iter()
        .any(|r| matches!(r, Request::Pkg(p) if p.range.to_string() == "=3.7.3")));
    assert!(reqs
        .iter()
        .any(|r| matches!(r, Request::Pkg(p) if p.name.as_str() == "python-requests")));
}

#[test]
fn strong_inheritance_needs_description() {
    let text = "pkg: a/1.0.0\nbuild:\n  options:\n    - var: abi/x\n      inheritance: Strong\n";
    let err = parse_spec(text, "t", &LoadOptions::default()).unwrap_err();
    assert!(err.message.contains("no description"), "{err}");
    assert_eq!(err.line, Some(4));
    let ok =
        format!("{text}  validation:\n    rules:\n      - deny: StrongInheritanceVarDescription\n");
    assert!(parse_spec(&ok, "t", &LoadOptions::default()).is_ok());
    let long = format!(
        "pkg: a/1.0.0\nbuild:\n  options:\n    - var: x\n      description: {}\n",
        "d".repeat(300)
    );
    let err = parse_spec(&long, "t", &LoadOptions::default()).unwrap_err();
    assert!(err.help.unwrap().contains("LongVarDescription"));
}

#[test]
fn options_resolve_and_build_ids_are_stable() {
    let s = spec("pkg: a/1.0.0\nbuild:\n  options:\n    - var: debug/off\n      choices: [on, off]\n    - pkg: python/3\n  variants: [{debug: on}, {debug: off, python: 2.7}]\n");
    let variants = s.variant_options(&OptionMap::new()).unwrap();
    assert_eq!(variants[0].get_str("debug"), Some("on"));
    assert_eq!(variants[0].get_str("python"), Some("3"));
    assert_eq!(variants[1].get_str("python"), Some("2.7"));
    assert_ne!(variants[0].digest(), variants[1].digest());
    assert_eq!(
        variants[0].digest(),
        s.variant_options(&OptionMap::new()).unwrap()[0].digest()
    );
    let mut bad = OptionMap::new();
    bad.insert("debug".parse().unwrap(), "maybe");
    let err = s.resolve_options(&bad).unwrap_err();
    assert!(err.message.contains("not a valid value"), "{err}");
    let mut ns = OptionMap::new();
    ns.insert("a.debug".parse().unwrap(), "on");
    ns.insert("debug".parse().unwrap(), "off");
    assert_eq!(
        s.resolve_options(&ns).unwrap().get_str("debug"),
        Some("on"),
        "namespaced option wins"
    );
}

#[test]
fn build_spec_pins_from_build_env() {
    let recipe = spec("pkg: lib/1.0.0\nbuild:\n  options:\n    - pkg: python/3\n    - var: debug/off\ninstall:\n  requirements:\n    - pkg: python\n      fromBuildEnv: x.x\n    - var: python.abi\n      fromBuildEnv: true\n");
    let python = spec("pkg: python/3.7.3/ABCDEFGH\nbuild:\n  options:\n    - var: abi\n      static: cp37m\n      inheritance: Strong\n      description: the abi\n");
    let opts = recipe.resolve_options(&OptionMap::new()).unwrap();
    let build = recipe
        .to_build_spec(&opts, &[std::sync::Arc::new(python)])
        .unwrap();
    assert_eq!(build.pkg.build, Some(Build::Digest(opts.digest())));
    let texts: Vec<String> = build
        .install
        .requirements
        .iter()
        .map(|r| r.to_string())
        .collect();
    assert!(texts.contains(&"python/3.7".to_string()), "{texts:?}");
    assert!(
        texts.contains(&"var python.abi/cp37m".to_string()),
        "{texts:?}"
    );
    assert_eq!(build.option_values().get_str("python"), Some("3.7.3"));
    assert_eq!(build.option_values().get_str("debug"), Some("off"));
    // The build spec round-trips through YAML.
    let back = spec(&build.to_yaml());
    assert_eq!(back, build);
    let err = recipe.to_build_spec(&opts, &[]).unwrap_err();
    assert!(
        err.message.contains("not in the build environment"),
        "{err}"
    );
}

#[test]
fn unsupported_api_and_bad_names() {
    let err = parse_spec(
        "pkg: a/1.0\napi: v1/platform\n",
        "t",
        &LoadOptions::default(),
    )
    .unwrap_err();
    assert!(err.message.contains("not supported"), "{err}");
    let err = parse_spec("pkg: My_Pkg/1.0\n", "t", &LoadOptions::default()).unwrap_err();
    assert!(err.message.contains("did you mean 'my-pkg'"), "{err}");
    let err = parse_spec("pkg: a/1.0\ninstall:\n  components:\n    - name: a\n      uses: [b]\n    - name: b\n      uses: [a]\n", "t", &LoadOptions::default()).unwrap_err();
    assert!(err.message.contains("cycle"), "{err}");
}
