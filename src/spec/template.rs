//! Tera rendering of spec files, with the `default_opts`, `compare_version`,
//! `parse_version` and `replace_regex` filters.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

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
    /// True when a limit (nesting, recursion, size, time) was hit, not a syntax error.
    pub limit: bool,
}

/// The data a template sees: `spk.version`, `opt` and `env`.
#[derive(Debug, Clone, Default)]
pub struct TemplateData {
    /// Options (command line `-o name=value` and host options).
    pub opt: OptionMap,
    /// Environment variables.
    pub env: BTreeMap<String, String>,
    /// What rendering may cost.
    pub limits: TemplateLimits,
}

impl TemplateData {
    /// Options only, no environment.
    pub fn with_options(opt: OptionMap) -> Self {
        Self {
            opt,
            env: BTreeMap::new(),
            limits: TemplateLimits::default(),
        }
    }

    /// Options plus the current process environment.
    pub fn with_process_env(opt: OptionMap) -> Self {
        Self {
            opt,
            env: std::env::vars().collect(),
            limits: TemplateLimits::default(),
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
    if needle.is_empty() {
        return None;
    }
    for (i, line) in text.lines().enumerate() {
        if let Some(col) = line.find(needle) {
            if line.contains("{{") || line.contains("{%") {
                return Some((i + 1, line[..col].chars().count() + 1));
            }
        }
    }
    None
}

/// The 1-based line and column (in characters) of byte `offset` of `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    (line, before[line_start..].chars().count() + 1)
}

/// What it may cost to render one spec template. Tera itself has no limits, so these are
/// enforced around it (see docs/spk-specs.md, "Template limits").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateLimits {
    /// Largest rendered output, in bytes.
    pub max_output_bytes: usize,
    /// Deepest nesting of blocks (`if`, `for`, `macro`, `filter`), of brackets inside one
    /// tag, and of macro calls.
    pub max_nesting: usize,
    /// Most numbers all `range()` calls of one render may produce together.
    pub max_range_items: usize,
    /// Longest a render may take.
    pub time_limit: Duration,
}

impl Default for TemplateLimits {
    fn default() -> Self {
        Self {
            max_output_bytes: MAX_SPEC_BYTES,
            max_nesting: 64,
            max_range_items: 10_000,
            time_limit: Duration::from_secs(3),
        }
    }
}

/// The largest spec file, before and after rendering.
pub const MAX_SPEC_BYTES: usize = 1 << 20;

/// Stack of the rendering thread: deep enough for the nesting limits in a debug build.
const RENDER_STACK_BYTES: usize = 256 << 20;

/// Byte offsets found by [`prescan`], used to place errors that Tera reports without one.
#[derive(Debug, Default)]
struct Scan {
    first_tag: Option<usize>,
    first_loop: Option<usize>,
    first_range: Option<usize>,
}

fn err_at(text: &str, offset: usize, message: String) -> TemplateError {
    let (line, column) = line_col(text, offset);
    TemplateError {
        message,
        line: Some(line),
        column: Some(column),
        limit: true,
    }
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The identifier starting at `i`, if any.
fn ident_at(b: &[u8], i: usize) -> &[u8] {
    let end = b[i..]
        .iter()
        .position(|&c| !is_ident_byte(c))
        .map_or(b.len(), |n| i + n);
    &b[i..end]
}

fn skip_space(b: &[u8], mut i: usize, end: usize) -> usize {
    while i < end && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

fn find_from(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Checks the template's structure before Tera sees it: nesting of blocks and brackets
/// (Tera's parser and renderer recurse on both), single-file use (no include, import or
/// extends: a spec has no other templates) and macro calls (no recursion, bounded depth).
fn prescan(text: &str, limits: &TemplateLimits) -> Result<Scan, TemplateError> {
    let b = text.as_bytes();
    let max = limits.max_nesting;
    let mut scan = Scan::default();
    let mut blocks: Vec<usize> = Vec::new();
    // Macro name -> offset of its definition, in order; and its calls.
    let mut macros: Vec<(String, usize)> = Vec::new();
    let mut calls: HashMap<String, Vec<(String, usize)>> = HashMap::new();
    let mut current_macro: Option<String> = None;
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] != b'{' || !matches!(b[i + 1], b'{' | b'%' | b'#') {
            i += 1;
            continue;
        }
        let start = i;
        if b[i + 1] == b'#' {
            match find_from(b, i + 2, b"#}") {
                Some(end) => i = end + 2,
                None => break,
            }
            continue;
        }
        scan.first_tag.get_or_insert(start);
        let statement = b[i + 1] == b'%';
        let close: &[u8] = if statement { b"%}" } else { b"}}" };
        // Find the end of the tag, outside string literals, checking bracket depth and
        // noting macro calls (`ns::name(`) and range() calls on the way.
        let mut j = i + 2;
        let mut depth = 0usize;
        let mut end = None;
        while j < b.len() {
            let c = b[j];
            if matches!(c, b'"' | b'\'' | b'`') {
                match b[j + 1..].iter().position(|&q| q == c) {
                    Some(n) => j += n + 2,
                    None => j = b.len(),
                }
                continue;
            }
            if b[j..].starts_with(close) {
                end = Some(j);
                break;
            }
            match c {
                b'(' | b'[' | b'{' => {
                    depth += 1;
                    if depth > max {
                        return Err(err_at(
                            text,
                            j,
                            format!("brackets nested more than {max} deep in a template tag"),
                        ));
                    }
                }
                b')' | b']' | b'}' => depth = depth.saturating_sub(1),
                b':' if b.get(j + 1) == Some(&b':') => {
                    let mut k = j;
                    while k > 0 && b[k - 1].is_ascii_whitespace() {
                        k -= 1;
                    }
                    let ns_end = k;
                    while k > 0 && is_ident_byte(b[k - 1]) {
                        k -= 1;
                    }
                    let n = skip_space(b, j + 2, b.len());
                    let name = ident_at(b, n);
                    if k < ns_end && !name.is_empty() {
                        let caller = current_macro.clone().unwrap_or_default();
                        calls
                            .entry(caller)
                            .or_default()
                            .push((String::from_utf8_lossy(name).into_owned(), k));
                    }
                    j += 1;
                }
                b'r' if (j == 0 || !is_ident_byte(b[j - 1]) && b[j - 1] != b'.')
                    && ident_at(b, j) == b"range"
                    && b.get(skip_space(b, j + 5, b.len())) == Some(&b'(') =>
                {
                    scan.first_range.get_or_insert(j);
                }
                _ => {}
            }
            j += 1;
        }
        let Some(end) = end else {
            break; // unterminated: Tera reports it with a location
        };
        i = end + 2;
        if !statement {
            continue;
        }
        let mut k = skip_space(b, start + 2, end);
        if b.get(k) == Some(&b'-') {
            k = skip_space(b, k + 1, end);
        }
        let keyword = ident_at(b, k);
        match keyword {
            b"if" | b"for" | b"macro" | b"filter" | b"block" => {
                blocks.push(start);
                if blocks.len() > max {
                    return Err(err_at(
                        text,
                        start,
                        format!("template blocks nested more than {max} deep"),
                    ));
                }
                if keyword == b"for" {
                    scan.first_loop.get_or_insert(start);
                }
                if keyword == b"macro" {
                    let n = skip_space(b, k + keyword.len(), end);
                    let name = String::from_utf8_lossy(ident_at(b, n)).into_owned();
                    macros.push((name.clone(), start));
                    current_macro = Some(name);
                }
            }
            b"endif" | b"endfor" | b"endmacro" | b"endfilter" | b"endblock" => {
                blocks.pop();
                if keyword == b"endmacro" {
                    current_macro = None;
                }
            }
            b"raw" => {
                // Literal text up to {% endraw %}.
                let mut from = i;
                loop {
                    let Some(open) = find_from(b, from, b"{%") else {
                        i = b.len();
                        break;
                    };
                    let mut k = skip_space(b, open + 2, b.len());
                    if b.get(k) == Some(&b'-') {
                        k = skip_space(b, k + 1, b.len());
                    }
                    if ident_at(b, k) == b"endraw" {
                        i = find_from(b, k, b"%}").map_or(b.len(), |e| e + 2);
                        break;
                    }
                    from = open + 2;
                }
            }
            b"include" | b"import" | b"extends" => {
                let word = String::from_utf8_lossy(keyword);
                let mut err = err_at(
                    text,
                    start,
                    format!(
                        "'{word}' is not supported: a spec template is a single file and cannot load other templates"
                    ),
                );
                err.limit = false;
                return Err(err);
            }
            _ => {}
        }
    }
    check_macro_calls(text, &macros, &calls, max)?;
    Ok(scan)
}

/// Rejects recursive macros (Tera would recurse until the stack overflows) and chains of
/// macro calls deeper than `max`.
fn check_macro_calls(
    text: &str,
    macros: &[(String, usize)],
    calls: &HashMap<String, Vec<(String, usize)>>,
    max: usize,
) -> Result<(), TemplateError> {
    let defined: HashMap<&str, usize> = macros.iter().map(|(n, o)| (n.as_str(), *o)).collect();
    // 1: on the current path, 2: done (with its depth).
    let mut state: HashMap<&str, u8> = HashMap::new();
    let mut depth: HashMap<&str, usize> = HashMap::new();
    let no_calls = Vec::new();
    for (root, _) in macros {
        if state.contains_key(root.as_str()) {
            continue;
        }
        let mut stack: Vec<(&str, usize)> = vec![(root.as_str(), 0)];
        state.insert(root.as_str(), 1);
        while let Some((node, next)) = stack.last().copied() {
            let edges = calls.get(node).unwrap_or(&no_calls);
            if let Some((callee, at)) = edges.get(next) {
                stack.last_mut().expect("non-empty").1 += 1;
                if !defined.contains_key(callee.as_str()) {
                    continue; // Tera reports unknown macros
                }
                match state.get(callee.as_str()) {
                    Some(1) => {
                        let from = stack.iter().position(|(n, _)| *n == callee).unwrap_or(0);
                        let mut path: Vec<&str> = stack[from..].iter().map(|(n, _)| *n).collect();
                        path.push(callee);
                        let path: Vec<String> =
                            path.iter().map(|p| crate::text::quote(p)).collect();
                        return Err(err_at(
                            text,
                            *at,
                            format!(
                                "macro '{}' calls itself ({}); recursive macros are not supported in spec templates",
                                crate::text::quote(callee),
                                path.join(" -> ")
                            ),
                        ));
                    }
                    Some(_) => {}
                    None => {
                        state.insert(callee.as_str(), 1);
                        stack.push((callee.as_str(), 0));
                    }
                }
                continue;
            }
            let d = 1 + edges
                .iter()
                .filter_map(|(c, _)| depth.get(c.as_str()))
                .max()
                .copied()
                .unwrap_or(0);
            if d > max {
                return Err(err_at(
                    text,
                    defined[node],
                    format!(
                        "macro '{}' starts a chain of more than {max} nested macro calls",
                        crate::text::quote(node)
                    ),
                ));
            }
            depth.insert(node, d);
            state.insert(node, 2);
            stack.pop();
        }
    }
    Ok(())
}

/// Output of a render, capped in size; stops at once when the render was abandoned.
struct CappedOutput<'a> {
    out: Vec<u8>,
    limit: usize,
    overflowed: bool,
    cancel: &'a AtomicBool,
}

impl std::io::Write for CappedOutput<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("the render was abandoned"));
        }
        if self.out.len() + buf.len() > self.limit {
            self.overflowed = true;
            return Err(std::io::Error::other("the output limit was reached"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Tera's `range(end, start=0, step_by=1)`, bounded: every call of one render draws on a
/// shared budget of numbers, and `step_by=0` (an endless loop in Tera) is an error.
fn bounded_range(
    budget: Arc<AtomicUsize>,
    max: usize,
    cancel: Arc<AtomicBool>,
) -> impl Fn(&HashMap<String, Value>) -> tera::Result<Value> + Send + Sync {
    move |args| {
        if cancel.load(Ordering::Relaxed) {
            return Err(tera::Error::msg("the render was abandoned"));
        }
        let num = |name: &str, default: Option<u64>| -> tera::Result<u64> {
            match args.get(name) {
                Some(v) => v.as_u64().ok_or_else(|| {
                    tera::Error::msg(format!(
                        "range() needs a whole number >= 0 for {name}, got {}",
                        crate::text::quote(&v.to_string())
                    ))
                }),
                None => default.ok_or_else(|| {
                    tera::Error::msg(format!("range() needs {name}=, as in range(end=3)"))
                }),
            }
        };
        let start = num("start", Some(0))?;
        let end = num("end", None)?;
        let step = num("step_by", Some(1))?;
        if step == 0 {
            return Err(tera::Error::msg("range() needs step_by of at least 1"));
        }
        if start > end {
            return Err(tera::Error::msg(format!(
                "range() has start={start} greater than end={end}"
            )));
        }
        let count = (end - start).div_ceil(step);
        let used = budget.fetch_add(count.min(usize::MAX as u64) as usize, Ordering::Relaxed);
        if count > max as u64 || used + count as usize > max {
            return Err(tera::Error::msg(format!(
                "{RANGE_LIMIT_MARK}: range(start={start}, end={end}, step_by={step}) would bring the numbers produced by range() to {}, over the limit of {max} per spec",
                (used as u64).saturating_add(count)
            )));
        }
        Ok(Value::Array(
            (0..count).map(|n| Value::from(start + n * step)).collect(),
        ))
    }
}

const RANGE_LIMIT_MARK: &str = "range() limit";

/// How a render on the worker thread failed.
enum Failure {
    Parse(String),
    Render(String),
    OutputTooLarge,
}

fn render_worker(
    text: &str,
    data: &TemplateData,
    cancel: Arc<AtomicBool>,
) -> Result<String, Failure> {
    let mut tera = Tera::default();
    tera.autoescape_on(vec![]);
    tera.register_filter("default_opts", default_opts);
    tera.register_filter("compare_version", compare_version);
    tera.register_filter("parse_version", parse_version);
    tera.register_filter("replace_regex", replace_regex);
    tera.register_function(
        "range",
        bounded_range(
            Arc::new(AtomicUsize::new(0)),
            data.limits.max_range_items,
            cancel.clone(),
        ),
    );
    if let Err(e) = tera.add_raw_template("spec", text) {
        return Err(Failure::Parse(error_chain(&e)));
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
    let mut output = CappedOutput {
        out: Vec::with_capacity(text.len() + 64),
        limit: data.limits.max_output_bytes,
        overflowed: false,
        cancel: &cancel,
    };
    match tera.render_to("spec", &ctx, &mut output) {
        Ok(()) => Ok(String::from_utf8_lossy(&output.out).into_owned()),
        Err(_) if output.overflowed => Err(Failure::OutputTooLarge),
        Err(e) => Err(Failure::Render(error_chain(&e))),
    }
}

/// Renders spec text through Tera with `spk.version`, `opt` and `env`, within
/// `data.limits`: the structure is checked first ([`prescan`]), then Tera parses and
/// renders on a thread with a large stack while this one waits at most the time limit.
pub fn render(text: &str, data: &TemplateData) -> Result<String, TemplateError> {
    let limits = &data.limits;
    let scan = prescan(text, limits)?;
    // Where to point when Tera cannot say: the first loop (the usual cost), else the
    // first tag.
    let somewhere = |what: Option<usize>| {
        let (line, column) = line_col(
            text,
            what.or(scan.first_loop).or(scan.first_tag).unwrap_or(0),
        );
        (Some(line), Some(column))
    };
    let cancel = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let worker = {
        let text = text.to_string();
        let data = data.clone();
        let cancel = cancel.clone();
        std::thread::Builder::new()
            .name("spec-template".into())
            .stack_size(RENDER_STACK_BYTES)
            .spawn(move || {
                let result = render_worker(&text, &data, cancel);
                let _ = tx.send(result);
            })
    };
    if let Err(e) = worker {
        return Err(TemplateError {
            message: format!("cannot start the template renderer: {e}"),
            line: None,
            column: None,
            limit: false,
        });
    }
    let result = match rx.recv_timeout(limits.time_limit) {
        Ok(r) => r,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            cancel.store(true, Ordering::Relaxed);
            let (line, column) = somewhere(None);
            return Err(TemplateError {
                message: format!(
                    "rendering did not finish within {:?}; a loop or macro here does too much work",
                    limits.time_limit
                ),
                line,
                column,
                limit: true,
            });
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let (line, column) = somewhere(None);
            return Err(TemplateError {
                message: "the template engine failed unexpectedly on this template".into(),
                line,
                column,
                limit: false,
            });
        }
    };
    match result {
        Ok(out) => Ok(out),
        Err(Failure::OutputTooLarge) => {
            let (line, column) = somewhere(None);
            Err(TemplateError {
                message: format!(
                    "the rendered spec would be larger than {} bytes; a loop here produces too much text",
                    limits.max_output_bytes
                ),
                line,
                column,
                limit: true,
            })
        }
        Err(Failure::Parse(message)) => {
            let loc = parse_location(&message)
                .or_else(|| backticked_needle(&message).and_then(|n| locate_in_tags(text, &n)));
            let message = message
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ");
            let (line, column) = match loc {
                Some((l, c)) => (Some(l), Some(c)),
                None => somewhere(None),
            };
            Err(TemplateError {
                message: crate::text::cap_message(&message),
                line,
                column,
                limit: false,
            })
        }
        Err(Failure::Render(message)) => {
            let message = message
                .replace("Failed to render 'spec': ", "")
                .replace("Failed to render 'spec'", "");
            let message = message.trim_start_matches(": ").to_string();
            let limit = message.contains(RANGE_LIMIT_MARK);
            let (line, column) = if limit {
                somewhere(scan.first_range)
            } else {
                match backticked_needle(&message)
                    .or_else(|| message.split('\'').nth(1).map(str::to_string))
                    .and_then(|n| locate_in_tags(text, &n))
                {
                    Some((l, c)) => (Some(l), Some(c)),
                    None => somewhere(None),
                }
            };
            let message = message.replace(&format!("{RANGE_LIMIT_MARK}: "), "");
            Err(TemplateError {
                message: crate::text::cap_message(&message),
                line,
                column,
                limit,
            })
        }
    }
}

/// The first `quoted` part of a Tera message (names the variable, macro or value).
fn backticked_needle(message: &str) -> Option<String> {
    message
        .split('`')
        .nth(1)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
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

    fn fail(text: &str) -> TemplateError {
        render(text, &TemplateData::default()).unwrap_err()
    }

    #[test]
    fn recursive_macros_are_located_errors() {
        // Tera recursed until the stack overflowed (abort), even in a YAML comment.
        let e = fail("pkg: a/1\n# {% macro m() %}{{ self::m() }}{% endmacro m %}{{ self::m() }}\n");
        assert_eq!((e.line, e.column), (Some(2), Some(21)), "{e:?}");
        assert!(
            e.message.contains("macro 'm' calls itself (m -> m)"),
            "{e:?}"
        );
        assert!(e.limit);
        // Through another macro, with spaces around '::'.
        let e = fail(
            "{% macro a() %}{{ self :: b() }}{% endmacro a %}\n{% macro b() %}{{ self::a() }}{% endmacro b %}\n{{ self::a() }}",
        );
        assert_eq!(e.line, Some(2), "{e:?}");
        assert!(e.message.contains("(a -> b -> a)"), "{e:?}");
        // Calls in strings and comments are not calls; a chain without a cycle renders.
        assert_eq!(
            r("{% macro a() %}x{% endmacro a %}{% macro b() %}{{ self::a() }}\"self::b()\"{# self::b() #}{% endmacro b %}{{ self::b() }}"),
            "x\"self::b()\""
        );
    }

    #[test]
    fn deep_nesting_is_rejected_before_parsing() {
        // Both overflowed the stack in Tera's parser.
        let e = fail(&format!(
            "# {{{{ {}1{} }}}}",
            "(".repeat(5000),
            ")".repeat(5000)
        ));
        assert_eq!((e.line, e.column), (Some(1), Some(6 + 64)), "{e:?}");
        assert!(e.message.contains("nested more than 64"), "{e:?}");
        let e = fail(&format!(
            "x\n{}{}",
            "{% if true %}".repeat(2000),
            "{% endif %}".repeat(2000)
        ));
        assert_eq!((e.line, e.column), (Some(2), Some(1 + 64 * 13)), "{e:?}");
        // 64 levels are fine.
        let ok = format!(
            "{}y{}",
            "{% if true %}".repeat(64),
            "{% endif %}".repeat(64)
        );
        assert_eq!(r(&ok), "y");
    }

    #[test]
    fn range_is_bounded() {
        // Took 6 s and 3.9 GB before failing in the YAML parser with a 100 MB message.
        let started = std::time::Instant::now();
        let e = fail("pkg: a/1\n{% for i in range(end=100000000) %}x{% endfor %}\n");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!((e.line, e.column), (Some(2), Some(13)), "{e:?}");
        assert!(e.message.contains("over the limit of 10000"), "{e:?}");
        assert!(e.message.len() < 300, "{e:?}");
        // step_by=0 looped forever in Tera's own range().
        let e = fail("{% for i in range(end=3, step_by=0) %}x{% endfor %}");
        assert!(e.message.contains("step_by of at least 1"), "{e:?}");
        // The budget is shared by every call of one render.
        let e = fail(
            "{% for i in range(end=100) %}{% for j in range(end=100) %}{% endfor %}{% endfor %}",
        );
        assert!(e.message.contains("over the limit"), "{e:?}");
        // Within it, range() behaves like Tera's.
        assert_eq!(
            r("{% for i in range(start=1, end=8, step_by=3) %}{{ i }},{% endfor %}"),
            "1,4,7,"
        );
        assert_eq!(r("{% for i in range(end=0) %}x{% endfor %}"), "");
    }

    #[test]
    fn output_size_is_bounded() {
        let e = fail("a\n{% for i in range(end=9000) %}{% for c in [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20] %}xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx{% endfor %}{% endfor %}");
        assert!(e.message.contains("larger than 1048576 bytes"), "{e:?}");
        assert_eq!((e.line, e.column), (Some(2), Some(1)), "{e:?}");
        assert!(e.limit);
    }

    #[test]
    fn rendering_has_a_time_limit() {
        let mut data = TemplateData::default();
        data.limits.time_limit = Duration::from_millis(50);
        // No output and no function calls: only the deadline stops it (~10^6 iterations
        // keep the abandoned render short).
        let list = (0..100)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let text = format!("pkg: a/1\n{{% set l = [{list}] %}}\n{{% for a in l %}}{{% for b in l %}}{{% for c in l %}}{{% set_global x = a %}}{{% endfor %}}{{% endfor %}}{{% endfor %}}");
        let started = std::time::Instant::now();
        let e = render(&text, &data).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert!(e.message.contains("did not finish within 50ms"), "{e:?}");
        assert_eq!((e.line, e.column), (Some(3), Some(1)), "{e:?}");
    }

    #[test]
    fn unlocated_tera_errors_get_a_location() {
        let e = fail("pkg: a/1\nx: {{ 99999999999999999999 }}\n");
        assert_eq!((e.line, e.column), (Some(2), Some(7)), "{e:?}");
        assert!(e.message.contains("Integer out of bounds"), "{e:?}");
        let e = fail("pkg: a/1\n  {% include \"other.yaml\" %}\n");
        assert_eq!((e.line, e.column), (Some(2), Some(3)), "{e:?}");
        assert!(e.message.contains("'include' is not supported"), "{e:?}");
        let e = fail("{% import \"m.tera\" as m %}");
        assert_eq!((e.line, e.column), (Some(1), Some(1)), "{e:?}");
        let e = fail("{% extends \"base\" %}");
        assert!(e.message.contains("'extends' is not supported"), "{e:?}");
        // Raw blocks are literal text, not tags.
        assert_eq!(
            r("{% raw %}{% include \"x\" %}{% endraw %}"),
            "{% include \"x\" %}"
        );
    }
}
