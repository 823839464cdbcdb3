//! The generated recipes the scale and solver benchmarks share: packages in four layers,
//! 20 versions each, whose dependency ranges really constrain each other.

use spk::request::{PkgRequest, Request};
use spk::spec::{Opt, Spec, VarOpt};
use spk::{Version, VersionIdent};

/// Versions generated per package: majors 1-4, minors 0-4.
const VERSIONS_PER_PACKAGE: usize = 20;

/// A recipe `pkg/version` requiring each `(name, range)` of `deps`. With `flavors`, it
/// declares a `flavor` option (a, b or c) and one variant per flavor.
pub fn recipe(pkg: &str, version: &str, deps: &[(String, String)], flavors: bool) -> Spec {
    let mut s = Spec::new(VersionIdent::new(
        pkg.parse().unwrap(),
        version.parse::<Version>().unwrap(),
    ));
    for (d, range) in deps {
        let mut r: PkgRequest = d.parse().unwrap();
        r.range = range.parse().unwrap();
        s.install.requirements.push(Request::Pkg(r));
    }
    if flavors {
        s.build.options.push(Opt::Var(VarOpt {
            var: "flavor".parse().unwrap(),
            default: Some("a".into()),
            choices: vec!["a".into(), "b".into(), "c".into()],
            inheritance: Default::default(),
            description: None,
            static_value: None,
        }));
        s.build.variants = ["a", "b", "c"]
            .iter()
            .map(|f| spk::spec::Variant {
                options: [("flavor".parse().unwrap(), f.to_string())].into(),
                components: Default::default(),
            })
            .collect();
    }
    s
}

/// `versions` flavored recipes: `versions / VERSIONS_PER_PACKAGE` packages named by
/// `name`, one list of recipes per package. Layers of 40/30/20/10 % of the
/// packages; a package of an upper layer depends on 1-4 packages of lower layers with
/// caret, minimum, tilde or compatible ranges whose major follows the depending
/// version's major. Also returns the index of the first package of the upper 30 %.
pub fn layered(
    versions: usize,
    name: impl Fn(usize) -> String,
    rng: &mut fastrand::Rng,
) -> (Vec<Vec<Spec>>, usize) {
    let n = versions / VERSIONS_PER_PACKAGE;
    let bounds = [0, n * 4 / 10, n * 7 / 10, n * 9 / 10, n];
    let mut out = Vec::new();
    for li in 0..4 {
        for i in bounds[li]..bounds[li + 1] {
            let fanout = if li == 0 { 0 } else { rng.usize(1..=4) };
            let deps: Vec<usize> = (0..fanout).map(|_| rng.usize(0..bounds[li])).collect();
            let mut specs = Vec::new();
            for major in 1..=4u32 {
                for minor in 0..5u32 {
                    let ranges: Vec<(String, String)> = deps
                        .iter()
                        .enumerate()
                        .map(|(k, d)| {
                            let dm = (major + k as u32 + *d as u32) % 4 + 1;
                            let range = match (d + k) % 4 {
                                0 => format!("^{dm}.0"),
                                1 => format!(">={dm}.1"),
                                2 => format!("~{dm}.{}", minor % 3),
                                _ => format!("{dm}.0"),
                            };
                            (name(*d), range)
                        })
                        .collect();
                    specs.push(recipe(
                        &name(i),
                        &format!("{major}.{minor}.0"),
                        &ranges,
                        true,
                    ));
                }
            }
            out.push(specs);
        }
    }
    (out, bounds[2])
}
