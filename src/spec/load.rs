//! Reading spec files: template rendering, YAML parsing and validation, with errors that
//! name the file, line and column and say how to fix the problem.

use std::fmt;
use std::path::Path;

use crate::option_map::OptionMap;

use super::template::{self, TemplateData, MAX_SPEC_BYTES};
use super::Spec;

/// A spec that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SpecError {
    /// The file (or label) read.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
}

impl spfs::Help for SpecError {
    fn help(&self) -> Vec<String> {
        self.help.iter().cloned().collect()
    }
}

impl SpecError {
    fn new(file: &str, message: impl Into<String>) -> Self {
        Self {
            file: file.to_string(),
            line: None,
            column: None,
            message: crate::text::cap_message(&message.into()),
            help: None,
        }
    }

    fn at(mut self, line: Option<usize>, column: Option<usize>) -> Self {
        self.line = line;
        self.column = column;
        self
    }

    fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// `file:line:column` (as much as is known).
    pub fn location(&self) -> String {
        match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}", self.file),
            (Some(l), None) => format!("{}:{l}", self.file),
            _ => self.file.clone(),
        }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location(), self.message)
    }
}

/// A problem that does not stop a spec from loading in lenient mode.
pub type Warning = SpecError;

/// How to read a spec.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Data for the template (`opt`, `env`).
    pub template: TemplateData,
    /// Report unknown fields as warnings and ignore them, instead of failing.
    pub lenient_unknown_fields: bool,
}

impl LoadOptions {
    /// Strict loading with these template options and the process environment.
    pub fn with_options(opt: OptionMap) -> Self {
        Self {
            template: TemplateData::with_process_env(opt),
            lenient_unknown_fields: false,
        }
    }
}

/// A spec read from text, with any warnings.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    /// The spec.
    pub spec: Spec,
    /// Ignored unknown fields (lenient mode only).
    pub warnings: Vec<Warning>,
    /// The text after template rendering.
    pub rendered: String,
}

/// The nearest of `candidates` to `word`, if any is close enough to be a likely typo.
pub fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by(|a, b| {
            a.0.cmp(&b.0)
                .then(strsim::jaro_winkler(word, b.1).total_cmp(&strsim::jaro_winkler(word, a.1)))
        })
        .map(|(_, c)| c)
}

/// Deepest nesting of YAML flow collections (`[...]`, `{...}`); the YAML parser's cost
/// grows with the square of it.
pub const MAX_FLOW_NESTING: usize = 64;

/// Reads a spec file, rendering its template with `opts`.
pub fn load_spec_file(path: &Path, opts: &LoadOptions) -> Result<LoadedSpec, SpecError> {
    use std::io::Read;
    let label = path.display().to_string();
    let cannot_read = |e: std::io::Error| {
        SpecError::new(&label, format!("cannot read the spec file: {e}"))
            .help("check the path and its permissions")
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_SPEC_BYTES as u64 + 1).read_to_end(&mut bytes))
        .map_err(cannot_read)?;
    let text = match std::str::from_utf8(&bytes) {
        Ok(t) => t,
        // The size limit may have cut a character in two; the size error says why.
        Err(e) if bytes.len() > MAX_SPEC_BYTES && e.valid_up_to() + 4 > MAX_SPEC_BYTES => {
            std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(e) => {
            let valid = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default();
            let (line, column) = template::line_col(valid, valid.len());
            let bad = &bytes[e.valid_up_to()..];
            let shown: Vec<String> = bad
                .iter()
                .take(e.error_len().unwrap_or(bad.len()).clamp(1, 4))
                .map(|b| format!("0x{b:02x}"))
                .collect();
            return Err(SpecError::new(
                &label,
                format!(
                    "the file is not valid UTF-8 text (bytes {} at byte offset {})",
                    shown.join(" "),
                    e.valid_up_to()
                ),
            )
            .at(Some(line), Some(column))
            .help("save the spec as UTF-8 text"));
        }
    };
    parse_spec(text, &label, opts)
}

/// Errors for text beyond [`MAX_SPEC_BYTES`].
fn check_size(text: &str, label: &str, what: &str) -> Result<(), SpecError> {
    if text.len() <= MAX_SPEC_BYTES {
        return Ok(());
    }
    let (line, column) = template::line_col(text, MAX_SPEC_BYTES);
    Err(SpecError::new(
        label,
        format!(
            "{what} is larger than the limit of {MAX_SPEC_BYTES} bytes (1 MiB); it goes past it here"
        ),
    )
    .at(Some(line), Some(column))
    .help("a spec describes one package; move large scripts or data into files the build uses"))
}

/// Renders and parses spec text; `label` names it in errors.
pub fn parse_spec(text: &str, label: &str, opts: &LoadOptions) -> Result<LoadedSpec, SpecError> {
    check_size(text, label, "the spec")?;
    let rendered = template::render(text, &opts.template).map_err(|e| {
        let help = if e.limit {
            "templates are bounded (see 'Template limits' in docs/spk-specs.md); simplify this part"
        } else {
            "fix the Tera template syntax, or pass missing values with -o name=value"
        };
        SpecError::new(label, format!("template error: {}", e.message))
            .at(e.line, e.column)
            .help(help)
    })?;
    let relocated = rendered.lines().count() != text.lines().count();
    parse_rendered_inner(rendered, label, opts, relocated)
}

/// Parses spec text that needs no template rendering (for example a stored build spec).
pub fn parse_rendered(
    text: &str,
    label: &str,
    opts: &LoadOptions,
) -> Result<LoadedSpec, SpecError> {
    parse_rendered_inner(text.to_string(), label, opts, false)
}

fn parse_rendered_inner(
    rendered: String,
    label: &str,
    opts: &LoadOptions,
    relocated: bool,
) -> Result<LoadedSpec, SpecError> {
    check_size(&rendered, label, "the rendered spec")?;
    check_flow_nesting(&rendered, label, MAX_FLOW_NESTING)?;
    let mut current = rendered.clone();
    let mut warnings = Vec::new();
    for _ in 0..100 {
        match parse_yaml(&current, label, relocated) {
            Ok(spec) => {
                validate(&spec, &rendered, label)?;
                return Ok(LoadedSpec {
                    spec,
                    warnings,
                    rendered,
                });
            }
            Err((err, unknown)) => {
                if !(opts.lenient_unknown_fields && unknown) {
                    return Err(err);
                }
                let (Some(line), Some(col)) = (err.line, err.column) else {
                    return Err(err);
                };
                match blank_entry(&current, line, col) {
                    Some(next) => {
                        warnings.push(err);
                        current = next;
                    }
                    None => return Err(err),
                }
            }
        }
    }
    Err(SpecError::new(label, "too many unknown fields").help("run 'spk lint' on the file"))
}

/// Same as [`parse_spec`]; kept as the name used by callers that render explicitly.
pub fn render_and_parse(
    text: &str,
    label: &str,
    opts: &LoadOptions,
) -> Result<LoadedSpec, SpecError> {
    parse_spec(text, label, opts)
}

fn parse_yaml(text: &str, label: &str, relocated: bool) -> Result<Spec, (SpecError, bool)> {
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Err((
            SpecError::new(label, "the spec is empty")
                .at(Some(1), Some(1))
                .help("a spec needs at least 'pkg: name/version'"),
            false,
        ));
    }
    serde_yaml::from_str::<Spec>(text).map_err(|e| {
        let (mut line, mut column) = e
            .location()
            .map(|l| (Some(l.line()), Some(l.column())))
            .unwrap_or((None, None));
        let raw = e.to_string();
        let message = match raw.rfind(" at line ") {
            Some(i) => raw[..i].to_string(),
            None => raw.clone(),
        };
        if message.contains("more than one document") {
            let (l, c) = second_document(text);
            return (
                SpecError::new(label, "the file holds more than one YAML document")
                    .at(Some(l), Some(c))
                    .help("a spec file holds one package; remove this '---' and what follows, or move it to its own file"),
                false,
            );
        }
        if let (Some(l), Some(c), Some(key)) = (line, column, duplicate_key(&message)) {
            if let Some((dl, dc)) = find_duplicate_key(text, l, c, &key) {
                (line, column) = (Some(dl), Some(dc));
            }
        }
        let (message, help, unknown) = explain_yaml_error(&message);
        let mut err = SpecError::new(label, message).at(line, column);
        let note = if relocated {
            " (line numbers refer to the rendered template)"
        } else {
            ""
        };
        err.help = help.map(|h| format!("{h}{note}"));
        (err, unknown)
    })
}

/// Splits serde's "`name`, expected one of `a`, `b`" message tail into the name and
/// the expected names.
fn backticked(rest: &str) -> (&str, Vec<&str>) {
    let name = rest.split('`').next().unwrap_or_default();
    let expected = rest
        .split('`')
        .skip(1)
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s)
        .collect();
    (name, expected)
}

/// Turns serde's messages into ones that say what to do.
fn explain_yaml_error(message: &str) -> (String, Option<String>, bool) {
    let (path, body) = match message.split_once(": ") {
        Some((p, b)) if !p.contains(' ') => (Some(p), b),
        _ => (None, message),
    };
    let place = path.map(|p| format!(" in '{p}'")).unwrap_or_default();
    if let Some(rest) = body.strip_prefix("unknown field `") {
        let (name, expected) = backticked(rest);
        let help = match suggest(name, &expected) {
            Some(s) => format!(
                "did you mean '{s}'? (known fields here: {})",
                expected.join(", ")
            ),
            None => format!("remove it; known fields here: {}", expected.join(", ")),
        };
        return (format!("unknown field '{name}'{place}"), Some(help), true);
    }
    if let Some(rest) = body.strip_prefix("unknown variant `") {
        let (name, expected) = backticked(rest);
        let help = match suggest(name, &expected) {
            Some(s) => format!("did you mean '{s}'? (one of: {})", expected.join(", ")),
            None => format!("use one of: {}", expected.join(", ")),
        };
        return (format!("unknown value '{name}'{place}"), Some(help), false);
    }
    if let Some(rest) = body.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or_default();
        let help = if name == "pkg" {
            "every spec starts with 'pkg: name/version'".to_string()
        } else {
            format!("add '{name}:'")
        };
        return (format!("missing field '{name}'{place}"), Some(help), false);
    }
    if let Some(rest) = body.strip_prefix("duplicate field `") {
        let name = rest.split('`').next().unwrap_or_default();
        return (
            format!("duplicate key '{name}'{place}"),
            Some("each key may appear once in a mapping; remove or merge this one".into()),
            false,
        );
    }
    if body.starts_with("invalid type") {
        return (
            format!("{body}{place}"),
            Some("check the indentation and the value's form against docs/spk-specs.md".into()),
            false,
        );
    }
    if path.is_none()
        && (body.contains("did not find expected")
            || body.contains("while parsing")
            || body.contains("mapping values are not allowed"))
    {
        return (
            format!("malformed YAML: {body}"),
            Some("check indentation, colons and quoting around this point".into()),
            false,
        );
    }
    (format!("{body}{place}"), None, false)
}

/// Removes the mapping entry whose key starts at `line`:`col` (1-based), keeping the text's
/// line count. Returns `None` when the entry cannot be isolated.
fn blank_entry(text: &str, line: usize, col: usize) -> Option<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let idx = line.checked_sub(1)?;
    let target = lines.get(idx)?.clone();
    let chars: Vec<char> = target.chars().collect();
    let start = col.checked_sub(1)?;
    if start > chars.len() {
        return None;
    }
    let before: String = chars[..start].iter().collect();
    let before_trim = before.trim_end();
    if before_trim.ends_with('{') || before_trim.ends_with(',') {
        // Flow mapping: cut up to the next ',' or '}' at depth zero.
        let mut depth = 0i32;
        let mut quote: Option<char> = None;
        let mut end = None;
        for (i, &c) in chars.iter().enumerate().skip(start) {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None => match c {
                    '"' | '\'' => quote = Some(c),
                    '[' | '{' => depth += 1,
                    ']' | '}' if depth > 0 => depth -= 1,
                    '}' | ',' if depth == 0 => {
                        end = Some(i);
                        break;
                    }
                    _ => {}
                },
            }
        }
        let end = end?;
        let (cut_start, cut_end) = if chars[end] == ',' {
            (start, end + 1)
        } else if before_trim.ends_with(',') {
            (before_trim.chars().count() - 1, end)
        } else {
            (start, end)
        };
        let mut out: Vec<char> = chars.clone();
        for c in out.iter_mut().take(cut_end).skip(cut_start) {
            *c = ' ';
        }
        lines[idx] = out.into_iter().collect();
    } else {
        lines[idx] = before;
        let indent = start;
        for l in lines.iter_mut().skip(idx + 1) {
            let t = l.trim_start();
            let this_indent = l.len() - t.len();
            if t.is_empty() || t.starts_with('#') || this_indent > indent {
                l.clear();
            } else {
                break;
            }
        }
    }
    let mut out = lines.join("\n");
    if text.ends_with('\n') {
        out.push('\n');
    }
    Some(out)
}

/// The key named by a serde duplicate-key message.
fn duplicate_key(message: &str) -> Option<String> {
    let body = message.split_once(": ").map_or(
        message,
        |(p, b)| {
            if p.contains(' ') {
                message
            } else {
                b
            }
        },
    );
    let rest = body
        .strip_prefix("duplicate field `")
        .or_else(|| body.strip_prefix("duplicate entry with key \""))?;
    Some(rest.split(['`', '"']).next()?.to_string())
}

/// The mapping key at the start of `s` (plain or quoted), without quotes.
fn key_at(s: &str) -> Option<&str> {
    let s = s.trim_start();
    for q in ['"', '\''] {
        if let Some(rest) = s.strip_prefix(q) {
            let end = rest.find(q)?;
            return rest[end + 1..]
                .trim_start()
                .starts_with(':')
                .then(|| &rest[..end]);
        }
    }
    let end = s.find(':')?;
    let after = &s[end + 1..];
    (after.is_empty() || after.starts_with([' ', '\t'])).then(|| s[..end].trim_end())
}

/// Where `key` appears a second time in the mapping that starts at `line`:`col`
/// (1-based): serde reports duplicates at the start of the mapping.
fn find_duplicate_key(text: &str, line: usize, col: usize, key: &str) -> Option<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let first = lines.get(line.checked_sub(1)?)?;
    let start: usize = first.char_indices().nth(col.checked_sub(1)?)?.0;
    let mut seen = 0;
    if first[start..].starts_with('{') {
        // Flow mapping: keys at depth one, after '{' or ','.
        let mut depth = 0usize;
        let mut quote: Option<char> = None;
        let mut expect_key = false;
        for (li, l) in lines.iter().enumerate().skip(line - 1) {
            let from = if li == line - 1 { start } else { 0 };
            for (bi, c) in l[from..].char_indices() {
                let at = from + bi;
                if let Some(q) = quote {
                    if c == q {
                        quote = None;
                    }
                    continue;
                }
                if expect_key && !c.is_whitespace() {
                    expect_key = false;
                    if key_at(&l[at..]) == Some(key) {
                        seen += 1;
                        if seen == 2 {
                            return Some((li + 1, l[..at].chars().count() + 1));
                        }
                    }
                }
                match c {
                    '"' | '\'' => quote = Some(c),
                    '{' | '[' => {
                        depth += 1;
                        expect_key = depth == 1 && c == '{';
                    }
                    '}' | ']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            return None;
                        }
                    }
                    ',' if depth == 1 => expect_key = true,
                    _ => {}
                }
            }
        }
        return None;
    }
    // Block mapping: sibling keys start at the same column on later lines.
    let indent = first[..start].chars().count();
    for (li, l) in lines.iter().enumerate().skip(line - 1) {
        let trimmed = l.trim_start();
        let this = l.len() - trimmed.len();
        if li > line - 1 {
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            if this < indent {
                return None;
            }
            if this > indent {
                continue;
            }
        }
        let at = if li == line - 1 { start } else { this };
        if key_at(&l[at..]) == Some(key) {
            seen += 1;
            if seen == 2 {
                return Some((li + 1, l[..at].chars().count() + 1));
            }
        }
    }
    None
}

/// Where the second YAML document of `text` starts (1-based line and column).
fn second_document(text: &str) -> (usize, usize) {
    let mut content = false;
    let mut last = 1;
    for (i, l) in text.lines().enumerate() {
        let marker = l == "---" || l.starts_with("--- ") || l.starts_with("---\t");
        if marker && content {
            return (i + 1, 1);
        }
        if l == "..." {
            content = true;
            last = i + 1;
            continue;
        }
        if !marker && !l.trim().is_empty() && !l.trim_start().starts_with('#') {
            if content && last > 1 && text.lines().nth(last - 1) == Some("...") {
                return (i + 1, 1);
            }
            content = true;
        }
    }
    (last, 1)
}

/// Rejects YAML flow collections (`[...]`, `{...}`) nested deeper than `max`, before the
/// parser (whose cost grows with the square of the depth) sees them. Brackets count where
/// YAML would open a flow collection: at the start of a value in block context, anywhere
/// (outside quotes) inside a flow collection; block scalars and comments are skipped.
fn check_flow_nesting(text: &str, label: &str, max: usize) -> Result<(), SpecError> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut block_scalar: Option<usize> = None;
    for (li, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if depth == 0 && quote.is_none() {
            if let Some(parent) = block_scalar {
                if trimmed.is_empty() || indent > parent {
                    continue;
                }
                block_scalar = None;
            }
        }
        let bytes = line.as_bytes();
        let mut i = if depth == 0 && quote.is_none() {
            // Block context: find where a value starts.
            let mut i = indent;
            loop {
                let rest = &line[i..];
                if rest.starts_with("- ") || rest.starts_with("? ") {
                    i += 2;
                } else if rest == "-" || rest.starts_with('#') || rest.is_empty() {
                    i = line.len();
                    break;
                } else if rest.starts_with(['&', '!']) {
                    i += rest.find([' ', '\t']).unwrap_or(rest.len());
                } else if rest.starts_with(['[', '{']) {
                    break;
                } else if rest.starts_with(['|', '>']) {
                    block_scalar = Some(indent);
                    i = line.len();
                    break;
                } else {
                    // A key (`key: value`) or a plain or quoted scalar.
                    let mut q: Option<char> = None;
                    let mut next = None;
                    for (k, c) in rest.char_indices() {
                        match q {
                            Some(qc) if c == qc => q = None,
                            Some(_) => {}
                            None if k == 0 && (c == '"' || c == '\'') => q = Some(c),
                            None if c == ':' && rest[k + 1..].starts_with([' ', '\t']) => {
                                next = Some(k + 2);
                                break;
                            }
                            None if c == '#' && rest[..k].ends_with([' ', '\t']) => break,
                            None => {}
                        }
                    }
                    match next {
                        Some(n) => i += n,
                        None => {
                            i = line.len();
                            break;
                        }
                    }
                }
                while i < line.len() && (bytes[i] == b' ' || bytes[i] == b'\t') {
                    i += 1;
                }
            }
            i
        } else {
            0
        };
        while i < bytes.len() {
            let c = bytes[i];
            if let Some(q) = quote {
                if c == b'\\' && q == '"' {
                    i += 2;
                    continue;
                }
                if c == q as u8 {
                    quote = None;
                }
                i += 1;
                continue;
            }
            match c {
                b'"' | b'\'' => {
                    let prev = line[..i].trim_end().bytes().last();
                    if matches!(prev, None | Some(b'[' | b'{' | b',' | b':')) {
                        quote = Some(c as char);
                    }
                }
                b'#' if i == 0 || matches!(bytes[i - 1], b' ' | b'\t') => break,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > max {
                        return Err(SpecError::new(
                            label,
                            format!("YAML collections nested more than {max} deep"),
                        )
                        .at(Some(li + 1), Some(line[..i].chars().count() + 1))
                        .help("flatten the structure; specs never need this much nesting"));
                    }
                }
                b']' | b'}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }
    Ok(())
}

fn locate(text: &str, near: &str) -> Option<(usize, usize)> {
    for (i, line) in text.lines().enumerate() {
        let content = line.split(" #").next().unwrap_or(line);
        if line.trim_start().starts_with('#') {
            continue;
        }
        if let Some(col) = content.find(near) {
            return Some((i + 1, col + 1));
        }
    }
    None
}

fn validate(spec: &Spec, text: &str, label: &str) -> Result<(), SpecError> {
    let problems = spec.validate();
    let Some(p) = problems.into_iter().next() else {
        return Ok(());
    };
    let loc = p.near.as_deref().and_then(|n| locate(text, n));
    let mut err = SpecError::new(label, p.message).at(loc.map(|l| l.0), loc.map(|l| l.1));
    if let Some(h) = p.help {
        err = err.help(h);
    }
    Err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> LoadOptions {
        LoadOptions::default()
    }

    #[test]
    fn unknown_field_suggests() {
        let err = parse_spec(
            "pkg: a/1.0.0\nbuild:\n  options:\n    - var: x\n      chioces: [a]\n",
            "f.yaml",
            &strict(),
        )
        .unwrap_err();
        assert_eq!((err.line, err.column), (Some(5), Some(7)));
        assert!(err.message.contains("unknown field 'chioces'"), "{err}");
        assert!(
            err.help
                .as_deref()
                .unwrap()
                .contains("did you mean 'choices'"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "f.yaml:5:7: unknown field 'chioces' in 'build.options[0]'"
        );
    }

    #[test]
    fn lenient_skips_unknown_fields() {
        let text = "pkg: a/1.0.0\nuild:\n  options:\n    - var: x\ninstall:\n  requirements:\n    - {pkg: b, bogus: 1}\n";
        let mut opts = strict();
        opts.lenient_unknown_fields = true;
        let loaded = parse_spec(text, "f", &opts).unwrap();
        assert_eq!(loaded.warnings.len(), 2);
        assert!(loaded.warnings[0]
            .help
            .as_deref()
            .unwrap()
            .contains("'build'"));
        assert_eq!(loaded.spec.install.requirements.len(), 1);
        assert!(parse_spec(text, "f", &strict()).is_err());
    }

    #[test]
    fn malformed_yaml_and_bad_values() {
        let err = parse_spec("pkg: a/1.0.0\nbuild: [\n", "f", &strict()).unwrap_err();
        assert!(err.line.is_some());
        let err = parse_spec("pkg: a/1.x\n", "f", &strict()).unwrap_err();
        assert!(err.message.contains("invalid version"), "{err}");
        assert_eq!(err.line, Some(1));
        let err = parse_spec(
            "pkg: a/1.0\ninstall:\n  requirements:\n    - pkg: b/>=x\n",
            "f",
            &strict(),
        )
        .unwrap_err();
        assert!(err.message.contains("version range"), "{err}");
        assert_eq!(err.line, Some(4));
        let err = parse_spec("# nothing\n", "f", &strict()).unwrap_err();
        assert!(err.message.contains("empty"));
        let err = parse_spec("api: v0/package\n", "f", &strict()).unwrap_err();
        assert!(err.help.unwrap().contains("pkg: name/version"));
    }

    #[test]
    fn template_errors_have_location() {
        let err = parse_spec("pkg: a/{{ opt.version }}\n", "f", &strict()).unwrap_err();
        assert!(err.message.starts_with("template error"), "{err}");
        assert_eq!(err.line, Some(1));
    }

    #[test]
    fn validation_errors_are_located() {
        let text = "pkg: a/1.0\ninstall:\n  components:\n    - name: bin\n      uses: [lbi]\n    - name: lib\n";
        let err = parse_spec(text, "f", &strict()).unwrap_err();
        assert!(err.message.contains("uses 'lbi'"), "{err}");
        assert_eq!(err.line, Some(5));
        assert!(err.help.unwrap().contains("did you mean 'lib'"));
    }

    fn at(text: &str) -> (Option<usize>, Option<usize>, String) {
        let e = parse_spec(text, "f", &strict()).unwrap_err();
        (e.line, e.column, e.message)
    }

    #[test]
    fn file_level_errors_are_located() {
        let dir = tempfile::tempdir().unwrap();
        // Invalid UTF-8: at the bad byte, with the right hint.
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, b"pkg: a/1.0\nmeta:\n  description: caf\xe9 ok\n").unwrap();
        let e = load_spec_file(&path, &strict()).unwrap_err();
        assert_eq!((e.line, e.column), (Some(3), Some(19)), "{e:?}");
        assert!(e.message.contains("not valid UTF-8"), "{e:?}");
        assert!(e.message.contains("0xe9"), "{e:?}");
        assert_eq!(e.help.as_deref(), Some("save the spec as UTF-8 text"));
        // Empty.
        let path = dir.path().join("empty.yaml");
        std::fs::write(&path, b"").unwrap();
        let e = load_spec_file(&path, &strict()).unwrap_err();
        assert_eq!((e.line, e.column), (Some(1), Some(1)), "{e:?}");
        // Too big: read no further than the limit.
        let path = dir.path().join("big.yaml");
        let mut big = b"pkg: a/1.0\n".to_vec();
        big.resize(3 * MAX_SPEC_BYTES, b'#');
        std::fs::write(&path, &big).unwrap();
        let e = load_spec_file(&path, &strict()).unwrap_err();
        assert!(e.message.contains("larger than the limit"), "{e:?}");
        assert_eq!(e.line, Some(2), "{e:?}");
    }

    #[test]
    fn more_than_one_document_is_located() {
        let (l, c, m) = at("pkg: a/1.0\n---\npkg: b/1.0\n");
        assert_eq!((l, c), (Some(2), Some(1)));
        assert!(m.contains("more than one YAML document"), "{m}");
        // A leading '---' starts the first document.
        let (l, _, _) = at("---\npkg: a/1.0\n--- # two\npkg: b/1.0\n");
        assert_eq!(l, Some(3));
        assert!(parse_spec("---\npkg: a/1.0\n", "f", &strict()).is_ok());
    }

    #[test]
    fn duplicate_keys_point_at_the_duplicate() {
        // Block mapping at the top level (reported at 1:1 before).
        let (l, c, m) = at("pkg: a/1.0\napi: v0/package\npkg: a/2.0\n");
        assert_eq!((l, c), (Some(3), Some(1)), "{m}");
        assert_eq!(m, "duplicate key 'pkg'");
        // Nested, after a block scalar and a comment.
        let (l, c, m) =
            at("pkg: a/1.0\nbuild:\n  script: |\n    echo\n  # note\n  'script': [b]\n");
        assert_eq!((l, c), (Some(6), Some(3)), "{m}");
        assert_eq!(m, "duplicate key 'script' in 'build'");
        // A mapping in a sequence.
        let (l, c, _) = at("pkg: a/1.0\ninstall:\n  requirements:\n    - pkg: b\n      include: IfAlreadyPresent\n      pkg: c\n");
        assert_eq!((l, c), (Some(6), Some(7)));
        // Flow mappings, the duplicate after a nested one.
        let (l, c, m) =
            at("pkg: a/1.0\nbuild:\n  options: [{var: a}, {var: b, choices: [p, q], var: c}]\n");
        assert_eq!((l, c), (Some(3), Some(49)), "{m}");
    }

    #[test]
    fn deep_yaml_nesting_is_rejected_quickly() {
        // 100k levels took 20 s (the YAML parser is quadratic in flow depth).
        for (open, close) in [("[", "]"), ("{a: ", "}")] {
            let text = format!(
                "pkg: a/1.0\nmeta: {}{}\n",
                open.repeat(100_000),
                close.repeat(100_000)
            );
            let started = std::time::Instant::now();
            let e = parse_spec(&text, "f", &strict()).unwrap_err();
            assert!(started.elapsed() < std::time::Duration::from_secs(2));
            assert_eq!(e.line, Some(2), "{e:?}");
            assert_eq!(e.column, Some(7 + 64 * open.len()), "{e:?}");
            assert!(e.message.contains("nested more than 64 deep"), "{e:?}");
        }
        // After anchors and tags too; but not brackets in plain scalars, block scalars
        // or comments.
        let (l, c, _) = at(&format!("pkg: a/1.0\nmeta: &x {}\n", "[".repeat(100)));
        assert_eq!((l, c), (Some(2), Some(10 + 64)));
        let deep = "[".repeat(100);
        let text = format!("pkg: a/1.0\nbuild:\n  script:\n    - echo {deep}\n    - |\n      {deep}\n    # {deep}\n");
        assert!(parse_spec(&text, "f", &strict()).is_ok());
    }

    #[test]
    fn huge_names_are_not_echoed_whole() {
        let name = "A".repeat(1_000_000);
        let e = parse_spec(&format!("pkg: {name}/1.0\n"), "f", &strict()).unwrap_err();
        assert!(e.to_string().len() < 700, "{} bytes", e.to_string().len());
        assert!(
            e.message
                .contains(&format!("'{}… (1000004 characters)'", &name[..64])),
            "{e}"
        );
        assert_eq!(e.line, Some(1));
    }
}
