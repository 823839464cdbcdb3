//! Mutation fuzzing of the spec loader and the request parser: mutants of the real
//! specs (the shared conformance corpus and tests/fixtures) and of request strings, each
//! run on its own thread with a time bound. Any panic, abort (the test process dies) or
//! timeout fails the test, and so does an error about a spec file that has no line and
//! column. The cases are generated from fixed seeds, so a failure names a reproducible
//! case.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use spk::spec::{load_spec_file, LoadOptions};
use spk::{PkgRequest, Request, VarRequest};

/// One case may take this long (the template time limit is 3 s, but nothing in a mutant
/// of a real spec should come near it).
const CASE_LIMIT: Duration = Duration::from_secs(2);
const SPEC_CASES: usize = 2000;
const REQUEST_CASES: usize = 2000;

fn seed_specs() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![root.join("tests/fixtures")];
    let shared = root.join("../shared/conformance/spk-specs");
    if shared.is_dir() {
        dirs.push(shared);
    } else {
        dirs.push(PathBuf::from("/work/shared/conformance/spk-specs"));
    }
    let mut files = Vec::new();
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
                files.push(p);
            }
        }
    }
    files.sort();
    assert!(
        files.len() > 60,
        "seed corpus missing: {} files",
        files.len()
    );
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

/// Fragments a hostile or careless author might insert.
const HOSTILE: &[&[u8]] = &[
    b"{% macro m() %}{{ self::m() }}{% endmacro m %}{{ self::m() }}",
    b"{% macro a() %}{{ self::b() }}{% endmacro a %}{% macro b() %}{{ self::a() }}{% endmacro b %}{{ self::a() }}",
    b"{% for i in range(end=100000000) %}x{% endfor %}",
    b"{% for i in range(end=5, step_by=0) %}x{% endfor %}",
    b"{{ 99999999999999999999 }}",
    b"{% include \"other.yaml\" %}",
    b"{{ opt.missing }}",
    b"{% raw %}",
    b"{%",
    b"{{",
    b"}}",
    b"\xff\xfe",
    b"\xe2\x82",
    b"\n---\npkg: other/1.0\n",
    b"\n...\n",
    b"&a ",
    b"*a",
    b"<<: *a",
    b"!!binary ",
    b"\t",
    b"\0",
    b": :",
    b"- ",
    b"? ",
    b"'",
    b"\"",
    b"|",
    b">-",
    b"#",
    b"pkg: a/1.0\n",
    b"\npkg: a/2.0\n",
];

fn mutate(rng: &mut fastrand::Rng, seed: &[u8]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..rng.usize(1..=4) {
        let pos = rng.usize(0..=data.len());
        match rng.u8(0..10) {
            0 if !data.is_empty() => {
                let i = rng.usize(0..data.len());
                data[i] = rng.u8(..);
            }
            1 => {
                let frag = HOSTILE[rng.usize(0..HOSTILE.len())];
                data.splice(pos..pos, frag.iter().copied());
            }
            2 => {
                let end = (pos + rng.usize(1..40)).min(data.len());
                data.drain(pos..end);
            }
            3..=5 => {
                let mut lines: Vec<Vec<u8>> =
                    data.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
                let i = rng.usize(0..lines.len());
                match rng.u8(0..3) {
                    0 => {
                        let line = lines[i].clone();
                        lines.insert(rng.usize(0..=lines.len()), line);
                    }
                    1 => {
                        let j = rng.usize(0..lines.len());
                        lines.swap(i, j);
                    }
                    _ => {
                        let trimmed: Vec<u8> = lines[i]
                            .iter()
                            .copied()
                            .skip_while(|b| *b == b' ')
                            .collect();
                        let mut indented = vec![b' '; rng.usize(0..7)];
                        indented.extend(trimmed);
                        lines[i] = indented;
                    }
                }
                data = lines.join(&b'\n');
            }
            6 => data.truncate(pos),
            7 => {
                let c = b"{}[]%#:-,'\"&*!|>?"[rng.usize(0..17)];
                data.insert(pos, c);
            }
            _ => {
                let end = (pos + rng.usize(1..8)).min(data.len());
                let span = if pos < end {
                    data[pos..end].to_vec()
                } else {
                    b"[".to_vec()
                };
                let times = rng.usize(2..3000);
                let repeated: Vec<u8> = span
                    .iter()
                    .copied()
                    .cycle()
                    .take(span.len() * times)
                    .collect();
                data.splice(pos..pos, repeated);
            }
        }
    }
    data
}

/// Runs `f` on its own thread; fails on a panic or when it takes too long.
fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(move || {
            let _ = tx.send(f());
        })
        .unwrap();
    match rx.recv_timeout(CASE_LIMIT) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: took longer than {CASE_LIMIT:?}")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!(
            "{what}: panicked after {:?} (see the message above)",
            started.elapsed()
        ),
    }
}

#[test]
fn mutated_specs_fail_cleanly_with_locations() {
    let seeds = seed_specs();
    let dir = tempfile::tempdir().unwrap();
    let mut rng = fastrand::Rng::with_seed(14);
    let (mut ok, mut failed) = (0, 0);
    let started = Instant::now();
    for case in 0..SPEC_CASES {
        let seed = &seeds[rng.usize(0..seeds.len())];
        let mutant = mutate(&mut rng, seed);
        let path = dir.path().join(format!("{case:04}.spk.yaml"));
        std::fs::write(&path, &mutant).unwrap();
        let what = format!("spec case {case} ({})", path.display());
        let p = path.clone();
        let result = bounded(&what, move || load_spec_file(&p, &LoadOptions::default()));
        match result {
            Ok(_) => ok += 1,
            Err(e) => {
                failed += 1;
                assert!(
                    e.line.is_some() && e.column.is_some(),
                    "{what}: error without line:column: {e}\n--- mutant ---\n{}",
                    String::from_utf8_lossy(&mutant)
                );
                assert!(
                    e.to_string().len() < 1000,
                    "{what}: {} byte error message",
                    e.to_string().len()
                );
                assert!(
                    !e.message.contains("failed unexpectedly"),
                    "{what}: the template engine panicked: {e}"
                );
            }
        }
        std::fs::remove_file(&path).unwrap();
    }
    eprintln!(
        "{SPEC_CASES} spec mutants: {ok} loaded, {failed} located errors, {:?}",
        started.elapsed()
    );
    assert!(
        ok > 0 && failed > SPEC_CASES / 2,
        "{ok} loaded, {failed} failed"
    );
}

const REQUEST_SEEDS: &[&str] = &[
    "python",
    "python/3.7",
    "python:build/3.7",
    "python:{run,docs}/>=3,<4/ABCDEFGH",
    "python/~3.7.3/src",
    "python/=3.7.3/embedded",
    "maya/2020.0.0-alpha.1+r.2",
    "gcc/!=6.3,>=4",
    "qt/5.*",
    "python.abi/cp37m",
    "debug/on",
    "nuke/Binary:13.0",
];

fn mutate_request(rng: &mut fastrand::Rng, seed: &str) -> String {
    let mut chars: Vec<char> = seed.chars().collect();
    const PIECES: &[&str] = &[
        "/",
        ":",
        "{",
        "}",
        ",",
        ".",
        "~",
        "^",
        "*",
        "=",
        "!",
        "<",
        ">",
        "-",
        "+",
        " ",
        "",
        "é",
        "\u{0}",
        "99999999999999999999999",
        "..",
        "//",
        ":{",
        "{,}",
    ];
    for _ in 0..rng.usize(1..=3) {
        let pos = rng.usize(0..=chars.len());
        match rng.u8(0..5) {
            0 if !chars.is_empty() => {
                chars.remove(pos.min(chars.len() - 1));
            }
            1 => {
                let p = PIECES[rng.usize(0..PIECES.len())];
                for (k, c) in p.chars().enumerate() {
                    chars.insert(pos + k, c);
                }
            }
            2 => chars.truncate(pos),
            3 => {
                let c = char::from_u32(rng.u32(0x20..0x7f)).unwrap();
                chars.insert(pos, c);
            }
            _ => {
                let c = chars.get(pos).copied().unwrap_or('a');
                let n = rng.usize(1..20_000);
                chars.splice(pos..pos, std::iter::repeat_n(c, n));
            }
        }
    }
    chars.into_iter().collect()
}

#[test]
fn mutated_requests_parse_or_fail_cleanly() {
    let mut rng = fastrand::Rng::with_seed(14);
    let started = Instant::now();
    let mut rejected = 0;
    for case in 0..REQUEST_CASES {
        let seed = REQUEST_SEEDS[rng.usize(0..REQUEST_SEEDS.len())];
        let text = mutate_request(&mut rng, seed);
        let what = format!("request case {case} ({:?})", spk::text::quote(&text));
        let t = text.clone();
        let errors = bounded(&what, move || {
            let mut errors = Vec::new();
            if let Err(e) = Request::parse_cli(&t) {
                errors.push(e.to_string());
            }
            if let Err(e) = t.parse::<PkgRequest>() {
                errors.push(e.to_string());
            }
            if let Err(e) = t.parse::<VarRequest>() {
                errors.push(e.to_string());
            }
            // Displayed requests read back as the same request.
            if let Ok(Request::Pkg(p)) = Request::parse_cli(&t) {
                let again: PkgRequest = p.to_string().parse().unwrap_or_else(|e| {
                    panic!(
                        "{t:?} displays as {:?}, which does not parse: {e}",
                        p.to_string()
                    )
                });
                assert_eq!(again, p, "{t:?}");
            }
            // The same text as a requirement in a spec: errors carry a location.
            let spec = format!(
                "pkg: a/1.0\ninstall:\n  requirements:\n    - pkg: {}\n    - var: {}",
                serde_yaml::to_string(&t).unwrap(),
                serde_yaml::to_string(&t).unwrap()
            );
            if let Err(e) = spk::spec::parse_spec(&spec, "req.yaml", &LoadOptions::default()) {
                assert!(
                    e.line.is_some() && e.column.is_some(),
                    "{t:?} in a spec: error without line:column: {e}"
                );
                errors.push(e.to_string());
            }
            errors
        });
        if !errors.is_empty() {
            rejected += 1;
        }
        for e in errors {
            assert!(e.len() < 1000, "{what}: {} byte error message", e.len());
        }
    }
    eprintln!(
        "{REQUEST_CASES} request mutants: {rejected} rejected, {:?}",
        started.elapsed()
    );
    assert!(rejected > REQUEST_CASES / 4);
}
