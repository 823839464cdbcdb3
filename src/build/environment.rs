//! The variables a build or test script sees: `PREFIX`, `SPK_OPT_*` and `SPK_PKG_*`.

use crate::option_map::{env_safe, OptionMap};
use crate::spec::Spec;

/// `SPK_PKG_<name>`, `_VERSION`, `_BUILD`, `_VERSION_MAJOR`, `_VERSION_MINOR`,
/// `_VERSION_PATCH` and `_VERSION_BASE` for one package (`-` becomes `_`).
pub fn package_vars(spec: &Spec) -> Vec<(String, String)> {
    let base = format!("SPK_PKG_{}", env_safe(spec.name().as_str()));
    let v = spec.version();
    let ident = match spec.build_ident() {
        Some(b) => b.to_string(),
        None => spec.ident().to_string(),
    };
    let build = spec
        .pkg
        .build
        .as_ref()
        .map(|b| b.to_string())
        .unwrap_or_default();
    vec![
        (base.clone(), ident),
        (format!("{base}_VERSION"), v.to_string()),
        (format!("{base}_BUILD"), build),
        (format!("{base}_VERSION_MAJOR"), v.major().to_string()),
        (format!("{base}_VERSION_MINOR"), v.minor().to_string()),
        (format!("{base}_VERSION_PATCH"), v.patch().to_string()),
        (format!("{base}_VERSION_BASE"), v.base_string()),
    ]
}

/// Everything a build script of `spec` (a build spec) with `options` sees on top of
/// the caller's environment, given the resolved packages of its environment.
pub fn build_vars(spec: &Spec, options: &OptionMap, deps: &[&Spec]) -> Vec<(String, String)> {
    let mut out = vec![
        ("PREFIX".to_string(), "/spfs".to_string()),
        ("SPK_ACTIVE_PREFIX".to_string(), "/spfs".to_string()),
        ("SHELL".to_string(), "bash".to_string()),
    ];
    out.extend(options.to_environment());
    for dep in deps {
        out.extend(package_vars(dep));
    }
    out.extend(package_vars(spec));
    out.push(("SPK_PKG_NAME".into(), spec.name().to_string()));
    out.push(("SPK_PKG_VERSION".into(), spec.version().to_string()));
    out.push((
        "SPK_PKG_BUILD".into(),
        spec.pkg
            .build
            .as_ref()
            .map(|b| b.to_string())
            .unwrap_or_default(),
    ));
    out
}

/// Names of `SPK_*` variables of the calling process, which must not leak into a build.
pub fn stale_spk_vars() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("SPK_"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_variables_follow_the_reference_names() {
        let spec: Spec =
            crate::spec::parse_rendered("pkg: my-lib/1.2.3/src\n", "t", &Default::default())
                .unwrap()
                .spec;
        let vars = package_vars(&spec);
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("SPK_PKG_my_lib"), Some("my-lib/1.2.3/src"));
        assert_eq!(get("SPK_PKG_my_lib_VERSION_MAJOR"), Some("1"));
        assert_eq!(get("SPK_PKG_my_lib_VERSION_MINOR"), Some("2"));
        assert_eq!(get("SPK_PKG_my_lib_VERSION_PATCH"), Some("3"));
        assert_eq!(get("SPK_PKG_my_lib_BUILD"), Some("src"));
    }
}
