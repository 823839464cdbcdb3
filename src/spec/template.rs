//! Tera rendering of spec files, with the `default_opts`, `compare_version`,
//! `parse_version` and `replace_regex` filters.

use std::collections::{BTreeMap, HashMap};

use tera::{Context, Tera, Value};

use crate::option_map::OptionMap;
use crate::version::{CompatRule, Version, VersionFilter};

/// A template that failed to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// What went wrong, from the innermost cause outwards.
    pub message: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
}

/// The data a template sees: `spk.version`, `opt` and `env`.
#[derive(Debug, Clone, Default)]
pub struct TemplateData {
    /// Options (command line `-o name=value` and host options).
    pub opt: OptionMap,
    /// Environment variables.
    pub env: BTreeMap<String, String>,
}

impl TemplateData {
    /// Options only, no environment.
    pub fn with_options(opt: OptionMap) -> Self {
        Self {
            opt,
            env: BTreeMap::new(),
        }
    }

    /// Options plus the current process environment.
    pub fn with_process_env(opt: OptionMap) -> Self {
        Self {
            opt,
            env: std::env::vars().collect(),
        }
    }
}

fn arg_str(args: &HashMap<String, Value>, name: &str) -> Option<String> {
    args.get(name).map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

fn value_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn default_opts(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let mut map = match value {
        Value::Object(m) => m.clone(),
        Value::Null => Default::default(),
        other => {
            return Err(tera::Error::msg(format!(
                "default_opts needs the 'opt' map, got {other}"
            )))
        }
    };
    let mut keys: Vec<&String> = args.keys().collect();
    keys.sort();
    for key in keys {
        key.parse::<crate::name::OptName>()
            .map_err(|e| tera::Error::msg(format!("default_opts: {e}")))?;
        let v = &args[key];
        let v = Value::String(value_str(v));
        match map.get(key.as_str()) {
            Some(existing) if !existing.is_null() => {}
            _ => {
                map.insert(key.clone(), v);
            }
        }
    }
    Ok(Value::Object(map))
}

fn compare_version(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let lhs = value_str(value);
    let version: Version = lhs
        .parse()
        .map_err(|e| tera::Error::msg(format!("compare_version: {e}")))?;
    let op = arg_str(args, "op").ok_or_else(|| {
        tera::Error::msg("compare_version needs op=, as in compare_version(op=\">=3\")")
    })?;
    let text = match arg_str(args, "rhs") {
        Some(rhs) => format!("{op}{rhs}"),
        None => op,
    };
    let range: VersionFilter = text
        .parse()
        .map_err(|e| tera::Error::msg(format!("compare_version: {e}")))?;
    Ok(Value::Bool(range.contains(
        &version,
        &crate::version::Compat::default(),
        CompatRule::Api,
    )))
}

fn parse_version(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let v: Version = value_str(value)
        .parse()
        .map_err(|e| tera::Error::msg(format!("parse_version: {e}")))?;
    let tags = |t: &crate::version::TagSet| {
        Value::Object(
            t.iter()
                .map(|(k, n)| (k.to_string(), Value::from(n)))
                .collect(),
        )
    };
    let mut obj = tera::Map::new();
    obj.insert("base".into(), Value::String(v.base_string()));
    obj.insert("major".into(), Value::from(v.major()));
    obj.insert("minor".into(), Value::from(v.minor()));
    obj.insert("patch".into(), Value::from(v.patch()));
    obj.insert(
        "parts".into(),
        Value::Array(v.parts.iter().map(|p| Value::from(*p)).collect()),
    );
    obj.insert("pre".into(), tags(&v.pre));
    obj.insert("post".into(), tags(&v.post));
    match arg_str(args, "field") {
        Some(field) => obj.get(&field).cloned().ok_or_else(|| {
            tera::Error::msg(format!(
                "parse_version: no field '{field}'; use base, major, minor, patch, parts, pre or post"
            ))
        }),
        None => Ok(Value::Object(obj)),
    }
}

fn replace_regex(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let text = value_str(value);
    let from =
        arg_str(args, "from").ok_or_else(|| tera::Error::msg("replace_regex needs from="))?;
    let to = arg_str(args, "to").ok_or_else(|| tera::Error::msg("replace_regex needs to="))?;
    let re = regex::Regex::new(&from)
        .map_err(|e| tera::Error::msg(format!("replace_regex: invalid pattern '{from}': {e}")))?;
    Ok(Value::String(
        re.replace_all(&text, to.as_str()).into_owned(),
    ))
}

fn error_chain(err: &tera::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.join(": ")
}

/// Finds ` --> L:C` in a parser message.
fn parse_location(message: &str) -> Option<(usize, usize)> {
    let idx = message.find("--> ")?;
    let rest = &message[idx + 4..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == ':'))
        .unwrap_or(rest.len());
    let (l, c) = rest[..end].split_once(':')?;
    Some((l.parse().ok()?, c.parse().ok()?))
}

/// Where `needle` first appears inside a `{{ }}` or `{% %}` tag of `text`.
fn locate_in_tags(text: &str, needle: &str) -> Option<(usize, usize)> {
    for (i, line) in text.lines().enumerate() {
        if let Some(col) = line.find(needle) {
            if line.contains("{{") || line.contains("{%") {
                return Some((i + 1, col + 1));
            }
        }
    }
    None
}

/// Renders spec text through Tera with `spk.version`, `opt` and `env`.
pub fn render(text: &str, data: &TemplateData) -> Result<String, TemplateError> {
    let mut tera = Tera::default();
    tera.autoescape_on(vec![]);
    tera.register_filter("default_opts", default_opts);
    tera.register_filter("compare_version", compare_version);
    tera.register_filter("parse_version", parse_version);
    tera.register_filter("replace_regex", replace_regex);
    if let Err(e) = tera.add_raw_template("spec", text) {
        let message = error_chain(&e);
        let loc = parse_location(&message);
        let message = message
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ");
        return Err(TemplateError {
            message,
            line: loc.map(|l| l.0),
            column: loc.map(|l| l.1),
        });
    }
    let mut ctx = Context::new();
    let mut spk = tera::Map::new();
    spk.insert(
        "version".into(),
        Value::String(env!("CARGO_PKG_VERSION").into()),
    );
    ctx.insert("spk", &spk);
    let opt: BTreeMap<&str, &str> = data.opt.iter().map(|(k, v)| (k.as_str(), v)).collect();
    ctx.insert("opt", &opt);
    ctx.insert("env", &data.env);
    tera.render("spec", &ctx).map_err(|e| {
        let message = error_chain(&e)
            .replace("Failed to render 'spec': ", "")
            .replace("Failed to render 'spec'", "");
        let message = message.trim_start_matches(": ").to_string();
        let needle = message
            .split('`')
            .nth(1)
            .map(str::to_string)
            .or_else(|| message.split('\'').nth(1).map(str::to_string));
        let loc = needle.and_then(|n| locate_in_tags(text, &n));
        TemplateError {
            message,
            line: loc.map(|l| l.0),
            column: loc.map(|l| l.1),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(text: &str) -> String {
        render(text, &TemplateData::default()).unwrap()
    }

    #[test]
    fn default_opts_and_overrides() {
        let t =
            "# {% set opt = opt | default_opts(version=\"2.3.4\") %}\npkg: p/{{ opt.version }}\n";
        assert_eq!(r(t), "# \npkg: p/2.3.4\n");
        let mut o = OptionMap::new();
        o.insert("version".parse().unwrap(), "9.0");
        let out = render(t, &TemplateData::with_options(o)).unwrap();
        assert!(out.contains("pkg: p/9.0"));
    }

    #[test]
    fn version_filters() {
        assert_eq!(r("{{ \"3.10\" | compare_version(op=\">=3\") }}"), "true");
        assert_eq!(
            r("{{ \"3.10\" | compare_version(op=\">=\", rhs=4) }}"),
            "false"
        );
        assert_eq!(
            r("{% set three = 3 %}{{ \"3.10\" | compare_version(op=\">=\", rhs=three) }}"),
            "true"
        );
        assert_eq!(r("{% set v = \"1.2.3.4-alpha.0+r.4\" | parse_version %}{{ v.base }} {{ v.major }} {{ v.minor }} {{ v.patch }} {{ v.parts[3] }} {{ v.post.r }} {{ v.pre.alpha }}"), "1.2.3.4 1 2 3 4 4 0");
        assert_eq!(
            r("{{ \"1.2.3.4-alpha.0+r.4\" | parse_version(field=\"minor\") }}"),
            "2"
        );
        assert_eq!(
            r("{{ \"3.7.3\" | replace_regex(from=\"(\\d+)\\.(\\d+).*\", to=\"cp$1$2\") }}"),
            "cp37"
        );
    }

    #[test]
    fn errors_have_locations() {
        let e = render("pkg: a/1\nx: {{ opt.missing }}\n", &TemplateData::default()).unwrap_err();
        assert_eq!(e.line, Some(2), "{e:?}");
        assert!(e.message.contains("opt.missing"), "{e:?}");
        let e = render("pkg: a/1\n{% if %}\n", &TemplateData::default()).unwrap_err();
        assert_eq!(e.line, Some(2), "{e:?}");
        let e = render("{{ \"x\" | parse_version }}", &TemplateData::default()).unwrap_err();
        assert!(e.message.contains("parse_version"), "{e:?}");
    }
}
