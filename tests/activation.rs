//! Activation scripts sourced by real shells (sh, bash, zsh, tcsh): values with spaces,
//! `$`, quotes, backslashes and `!` arrive verbatim, and appending or prepending to an
//! unset or empty variable adds no separator.

use std::path::Path;
use std::process::Command;

use spk::build::activation;
use spk::spec::{parse_rendered, LoadOptions};

const SPEC: &str = r#"
pkg: quoting/1.0.0/3I42H3S6
install:
  environment:
    - priority: 7
    - comment: "values below must survive every shell"
    - set: HOSTILE
      value: 'two words $HOME "dq" ''sq'' back\slash wow!'
    - append: UNSET_VAR
      value: /x y
    - append: SET_VAR
      value: /add
    - prepend: PRE_VAR
      value: $lit
      separator: ";"
    - append: EMPTY_VAR
      value: v
"#;

/// What each variable must hold afterwards, written out by hand.
const EXPECTED: &[(&str, &str)] = &[
    ("HOSTILE", r#"two words $HOME "dq" 'sq' back\slash wow!"#),
    ("UNSET_VAR", "/x y"),
    ("SET_VAR", "/base:/add"),
    ("PRE_VAR", "$lit;q1"),
    ("EMPTY_VAR", "v"),
];

fn scripts(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let spec = parse_rendered(SPEC, "quoting.yaml", &LoadOptions::default())
        .unwrap()
        .spec;
    let files = activation::scripts(&spec);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, vec!["07_spk_quoting.sh", "07_spk_quoting.csh"]);
    for (name, text) in &files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    (dir.join(&files[0].0), dir.join(&files[1].0))
}

fn run(shell: &str, args: &[&str]) -> Vec<(String, String)> {
    let mut c = Command::new(shell);
    c.args(args)
        .env_remove("UNSET_VAR")
        .env("SET_VAR", "/base")
        .env("PRE_VAR", "q1")
        .env("EMPTY_VAR", "")
        .env("HOME", "/home/should-not-expand");
    let out = c.output().unwrap_or_else(|e| panic!("{shell}: {e}"));
    assert!(
        out.status.success(),
        "{shell}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    EXPECTED
        .iter()
        .zip(text.split('\0'))
        .map(|((k, _), v)| (k.to_string(), v.to_string()))
        .collect()
}

fn expected() -> Vec<(String, String)> {
    EXPECTED
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn print_all() -> String {
    EXPECTED
        .iter()
        .map(|(k, _)| format!("printf '%s\\0' \"${k}\""))
        .collect::<Vec<_>>()
        .join("; ")
}

#[test]
fn sh_family_shells_get_the_exact_values() {
    let dir = tempfile::tempdir().unwrap();
    let (sh, _) = scripts(dir.path());
    for shell in ["sh", "bash", "zsh"] {
        if shell == "zsh" && Command::new("zsh").arg("-c").arg("true").output().is_err() {
            eprintln!("zsh is not installed; checked sh and bash");
            continue;
        }
        let script = format!(". '{}'; {}", sh.display(), print_all());
        assert_eq!(run(shell, &["-c", &script]), expected(), "{shell}");
    }
}

#[test]
fn tcsh_gets_the_exact_values() {
    let dir = tempfile::tempdir().unwrap();
    let (_, csh) = scripts(dir.path());
    // printenv prints raw values; NUL separators come from printf.
    let print: Vec<String> = EXPECTED
        .iter()
        .map(|(k, _)| format!("printenv {k} | tr -d '\\n'; printf '\\0'"))
        .collect();
    let script = format!("source '{}'; {}", csh.display(), print.join("; "));
    assert_eq!(run("tcsh", &["-f", "-c", &script]), expected());
}
