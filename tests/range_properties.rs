//! Property tests: intersection, containment and ordering of version ranges agree.

use proptest::prelude::*;
use spk::{Compat, CompatRule, Version, VersionFilter, VersionRange};

fn version() -> impl Strategy<Value = Version> {
    (
        prop::collection::vec(0u32..4, 1..5),
        prop::option::of(0u32..3),
        prop::option::of(0u32..3),
    )
        .prop_map(|(parts, pre, post)| {
            let mut text = parts
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(".");
            if let Some(p) = pre {
                text.push_str(&format!("-rc.{p}"));
            }
            if let Some(p) = post {
                text.push_str(&format!("+r.{p}"));
            }
            text.parse().unwrap()
        })
}

fn range() -> impl Strategy<Value = VersionRange> {
    let ops = prop::sample::select(vec![
        "", "API:", "Binary:", "^", "~", ">", ">=", "<", "<=", "=", "==", "!=", "!==",
    ]);
    prop_oneof![
        (ops, version()).prop_map(|(op, v)| format!("{op}{v}").parse::<VersionRange>().unwrap()),
        prop::collection::vec(prop::option::of(0u32..4), 1..4).prop_map(|mut p| {
            p.push(None);
            VersionRange::Wildcard(p)
        }),
    ]
}

fn compat() -> impl Strategy<Value = Compat> {
    prop::sample::select(vec!["x.a.b", "x.ab", "x.x.x-x+x", "x.x.a.b", "x.b"])
        .prop_map(|s| s.parse().unwrap())
}

fn rule() -> impl Strategy<Value = CompatRule> {
    prop::sample::select(vec![CompatRule::Api, CompatRule::Binary])
}

proptest! {
    #[test]
    fn intersection_is_conjunction(a in range(), b in range(), v in version(), c in compat(), r in rule()) {
        let fa = VersionFilter::single(a);
        let fb = VersionFilter::single(b);
        let both = fa.intersection(&fb);
        prop_assert_eq!(both.contains(&v, &c, r), fa.contains(&v, &c, r) && fb.contains(&v, &c, r));
        // Intersection is commutative in what it admits.
        prop_assert_eq!(both.contains(&v, &c, r), fb.intersection(&fa).contains(&v, &c, r));
    }

    #[test]
    fn ranges_round_trip_through_text(a in range(), v in version(), c in compat(), r in rule()) {
        let text = a.to_string();
        let back: VersionRange = text.parse().unwrap();
        prop_assert_eq!(back.contains(&v, &c, r), a.contains(&v, &c, r));
    }

    #[test]
    fn comparison_ranges_agree_with_ordering(a in version(), b in version()) {
        let c = Compat::default();
        let has = |op: &str| VersionFilter::single(format!("{op}{a}").parse().unwrap()).contains(&b, &c, CompatRule::Binary);
        prop_assert_eq!(has(">"), b > a);
        prop_assert_eq!(has(">="), b >= a);
        prop_assert_eq!(has("<"), b < a);
        prop_assert_eq!(has("<="), b <= a);
        prop_assert_eq!(has("="), b == a);
        prop_assert_eq!(has("!="), b != a);
        prop_assert!(has("==") <= has("="), "== implies =");
        prop_assert_eq!(has("!=="), !has("=="));
    }

    #[test]
    fn ordering_is_total_and_consistent(a in version(), b in version(), c in version()) {
        prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
        if a <= b && b <= c {
            prop_assert!(a <= c);
        }
        prop_assert_eq!(a == b, a.cmp(&b).is_eq());
        let reparsed: Version = a.to_string().parse().unwrap();
        prop_assert!(reparsed.is_identical(&a));
    }

    #[test]
    fn bounded_ranges_are_intervals(a in version(), x in version(), y in version(), m in version(), op in prop::sample::select(vec!["^", "~"])) {
        // Caret and tilde ranges contain their base and are convex: anything between two
        // members is a member.
        let f: VersionFilter = format!("{op}{a}").parse().unwrap();
        let c = Compat::default();
        let has = |v: &Version| f.contains(v, &c, CompatRule::Binary);
        prop_assert!(has(&a));
        let (lo, hi) = if x <= y { (x, y) } else { (y, x) };
        if has(&lo) && has(&hi) && lo <= m && m <= hi {
            prop_assert!(has(&m), "{} in [{}, {}] but not in {}{}", m, lo, hi, op, a);
        }
    }
}
