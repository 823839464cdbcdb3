//! The glob language of BOSH package specs: the Go `doublestar` library (v1).
//!
//! Patterns match relative paths component by component. `*` matches any run of
//! characters within one component (dotfiles included), `?` one character, `[abc]`,
//! `[a-z]`, `[^a-z]` / `[!a-z]` one character of (or not of) a class, `{a,b}` either
//! alternative (nested braces allowed, alternatives may hold `/`), `\x` the character `x`.
//! A component that is exactly `**` matches zero or more whole components, so a trailing
//! `**` matches everything below.

/// A parsed pattern: its brace expansions, each split into components.
#[derive(Debug, Clone)]
pub struct Pattern {
    alternatives: Vec<Vec<String>>,
}

/// Why a pattern is malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError(pub String);

impl Pattern {
    /// Parses `text`.
    pub fn new(text: &str) -> Result<Self, PatternError> {
        if text.is_empty() {
            return Err(PatternError("the pattern is empty".into()));
        }
        let alternatives: Vec<Vec<String>> = expand_braces(text)?
            .into_iter()
            .map(|p| split_components(&p))
            .collect();
        for alt in &alternatives {
            for c in alt {
                check_classes(c)?;
            }
        }
        Ok(Pattern { alternatives })
    }

    /// True when the relative path (components joined by `/`) matches.
    pub fn matches(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        self.alternatives.iter().any(|alt| {
            let pat: Vec<&str> = alt.iter().map(String::as_str).collect();
            match_components(&pat, &parts)
        })
    }
}

/// Splits on `/` outside escapes; empty components (`a//b`, leading `./`) are dropped.
fn split_components(p: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '/' => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .filter(|c| !c.is_empty() && c != ".")
        .collect()
}

/// Most patterns one glob's braces may expand to.
const MAX_ALTERNATIVES: usize = 4096;

/// Expands `{a,b}` alternatives (outside escapes and classes), innermost first.
fn expand_braces(p: &str) -> Result<Vec<String>, PatternError> {
    let chars: Vec<char> = p.chars().collect();
    // Find the first top-level brace group.
    let mut i = 0;
    let mut in_class = false;
    let mut open = None;
    let mut depth = 0;
    let mut commas = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            i += 2;
            continue;
        }
        if in_class {
            if c == ']' {
                in_class = false;
            }
        } else if c == '[' {
            in_class = true;
        } else if c == '{' {
            if depth == 0 {
                open = Some(i);
                commas.clear();
            }
            depth += 1;
        } else if c == ',' && depth == 1 {
            commas.push(i);
        } else if c == '}' && depth > 0 {
            depth -= 1;
            if depth == 0 {
                let start = open.unwrap_or(0);
                let prefix: String = chars[..start].iter().collect();
                let suffix: String = chars[i + 1..].iter().collect();
                let mut bounds = vec![start];
                bounds.extend(&commas);
                bounds.push(i);
                let mut out = Vec::new();
                for w in bounds.windows(2) {
                    let alt: String = chars[w[0] + 1..w[1]].iter().collect();
                    for e in expand_braces(&format!("{prefix}{alt}{suffix}"))? {
                        out.push(e);
                        if out.len() > MAX_ALTERNATIVES {
                            return Err(PatternError(format!(
                                "the braces expand to more than {MAX_ALTERNATIVES} patterns; write fewer alternatives"
                            )));
                        }
                    }
                }
                return Ok(out);
            }
        }
        i += 1;
    }
    if depth > 0 {
        return Err(PatternError("'{' has no matching '}'".into()));
    }
    Ok(vec![p.to_string()])
}

fn check_classes(c: &str) -> Result<(), PatternError> {
    let chars: Vec<char> = c.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '[' => match class_end(&chars, i) {
                Some(end) => i = end + 1,
                None => return Err(PatternError("'[' has no matching ']'".into())),
            },
            _ => i += 1,
        }
    }
    Ok(())
}

/// The index of the `]` closing the class that opens at `start`.
fn class_end(chars: &[char], start: usize) -> Option<usize> {
    let mut i = start + 1;
    if i < chars.len() && (chars[i] == '^' || chars[i] == '!') {
        i += 1;
    }
    // A `]` right after the opening is a member.
    if i < chars.len() && chars[i] == ']' {
        i += 1;
    }
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            ']' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

fn match_components(pat: &[&str], path: &[&str]) -> bool {
    match pat.first() {
        None => path.is_empty(),
        Some(&"**") => {
            // Collapse runs of `**`.
            let rest = &pat[1..];
            (0..=path.len()).any(|skip| match_components(rest, &path[skip..]))
        }
        Some(p) => match path.first() {
            Some(first) => match_segment(p, first) && match_components(&pat[1..], &path[1..]),
            None => false,
        },
    }
}

/// Matches one component (`*`, `?`, classes, escapes) with backtracking on `*`.
pub fn match_segment(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' if ni < n.len() => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' if ni < n.len() => {
                    if let Some(end) = class_end(&p, pi) {
                        if class_matches(&p[pi + 1..end], n[ni]) {
                            pi = end + 1;
                            ni += 1;
                            continue;
                        }
                    }
                }
                '\\' if ni < n.len() && pi + 1 < p.len() && p[pi + 1] == n[ni] => {
                    pi += 2;
                    ni += 1;
                    continue;
                }
                c if ni < n.len() && c != '?' && c != '[' && c != '\\' && c == n[ni] => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        } else if ni == n.len() {
            return true;
        }
        // Mismatch: let the last `*` take one more character.
        match star {
            Some((sp, sn)) if sn < n.len() => {
                star = Some((sp, sn + 1));
                pi = sp + 1;
                ni = sn + 1;
            }
            _ => return false,
        }
    }
}

fn class_matches(class: &[char], c: char) -> bool {
    let (negated, body) = match class.first() {
        Some('^') | Some('!') => (true, &class[1..]),
        _ => (false, class),
    };
    let mut i = 0;
    let mut hit = false;
    while i < body.len() {
        let mut lo = body[i];
        if lo == '\\' && i + 1 < body.len() {
            i += 1;
            lo = body[i];
        }
        if i + 2 < body.len() && body[i + 1] == '-' {
            let mut hi = body[i + 2];
            let mut step = 3;
            if hi == '\\' && i + 3 < body.len() {
                hi = body[i + 3];
                step = 4;
            }
            if lo <= c && c <= hi {
                hit = true;
            }
            i += step;
        } else {
            if lo == c {
                hit = true;
            }
            i += 1;
        }
    }
    hit != negated
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, path: &str) -> bool {
        Pattern::new(p).unwrap().matches(path)
    }

    #[test]
    fn star_stays_in_one_component_and_matches_dotfiles() {
        assert!(m("*", ".hidden"));
        assert!(m("a/*", "a/.env"));
        assert!(m("a/*.c", "a/x.c"));
        assert!(!m("a/*.c", "a/b/x.c"));
        assert!(!m("*", "a/b"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(!m("*", ""), "an empty path has no components; * needs one");
    }

    #[test]
    fn double_star_matches_zero_or_more_components() {
        assert!(m("a/**/x.c", "a/x.c"));
        assert!(m("a/**/x.c", "a/b/c/x.c"));
        assert!(m("a/**", "a/b"));
        assert!(m("a/**", "a/b/c/.d"));
        assert!(m("**/*.h", "deep/er/f.h"));
        assert!(m("**/*.h", "f.h"));
        assert!(!m("a/**/x.c", "b/x.c"));
        assert!(m("a/**/**/x", "a/x"));
        // `**` inside a component is two stars.
        assert!(m("a**", "abc"));
        assert!(!m("a**", "ab/c"));
    }

    #[test]
    fn classes_escapes_and_braces() {
        assert!(m("f[0-9].c", "f7.c"));
        assert!(!m("f[0-9].c", "fa.c"));
        assert!(m("f[^0-9].c", "fa.c"));
        assert!(m("f[!0-9].c", "fa.c"));
        assert!(!m("f[^0-9].c", "f1.c"));
        assert!(m("f[]x].c", "f].c"));
        assert!(m("f?.c", "fz.c"));
        assert!(!m("f?.c", "f.c"));
        assert!(m(r"lit\*.c", "lit*.c"));
        assert!(!m(r"lit\*.c", "litx.c"));
        assert!(m("{a,b/c}/x", "b/c/x"));
        assert!(m("{a,b/c}/x", "a/x"));
        assert!(m("f.{c,{h,hpp}}", "f.hpp"));
        assert!(!m("f.{c,h}", "f.o"));
        assert!(Pattern::new("f.{c,h").is_err());
        assert!(Pattern::new("f[a-").is_err());
        assert!(Pattern::new("").is_err());
        let err = Pattern::new(&"{a,b}".repeat(13)).unwrap_err();
        assert!(err.0.contains("more than 4096"), "{err:?}");
        assert!(Pattern::new(&"{a,b}".repeat(12)).is_ok());
    }

    #[test]
    fn leading_dot_slash_and_double_slashes_are_ignored() {
        assert!(m("./a//b", "a/b"));
    }
}
