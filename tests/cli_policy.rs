//! The command-line policy shared by `spfs` and `spk` (docs/cli.md), checked end to end
//! on both binaries from one table of bad inputs: the report layout, the exit code, no
//! panic, and that commands which only read never create a repository.
//!
//! The `spfs` binary belongs to the `spfs-cli` package; it is looked up next to the
//! `spk` binary (same target and profile directory) and built there if missing.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
mod common;

use common::{spfs_bin, SPK};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Tool {
    Spfs,
    Spk,
}

/// The repository a case runs against.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Repo {
    /// The configured repository does not exist.
    Missing,
    /// An empty, initialised repository.
    Empty,
}

/// What the command does to a missing repository.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Access {
    /// Must not create it.
    Reads,
    /// May create it.
    Writes,
}

use Access::*;
use Repo::*;
use Tool::*;

/// `@DIR` is a scratch directory that exists, `@NODIR` a path that does not exist,
/// `@BADSPEC` a spec file that does not parse.
const TABLE: &[(Tool, Repo, Access, &[&str], i32)] = &[
    // A missing repository: every command that reads refuses, and leaves it missing.
    (Spfs, Missing, Reads, &["tags"], 1),
    (Spfs, Missing, Reads, &["log", "a/b"], 1),
    (Spfs, Missing, Reads, &["ls", "a/b"], 1),
    (Spfs, Missing, Reads, &["read", "a/b", "f"], 1),
    (Spfs, Missing, Reads, &["info", "a/b"], 1),
    (Spfs, Missing, Reads, &["diff", "a/b", "c/d"], 1),
    (Spfs, Missing, Reads, &["diff"], 1),
    (Spfs, Missing, Reads, &["render", "a/b", "@NODIR"], 1),
    (Spfs, Missing, Reads, &["check"], 1),
    (Spfs, Missing, Reads, &["check", "--remote", "nowhere"], 1),
    (Spfs, Missing, Reads, &["clean", "-y"], 1),
    (
        Spfs,
        Missing,
        Reads,
        &["clean", "-y", "--remote", "nowhere"],
        1,
    ),
    (
        Spfs,
        Missing,
        Reads,
        &["push", "a/b", "--remote", "nowhere"],
        1,
    ),
    (
        Spfs,
        Missing,
        Writes,
        &["pull", "a/b", "--remote", "nowhere"],
        1,
    ),
    (
        Spk,
        Missing,
        Reads,
        &["push", "python/1.0", "--remote", "nowhere"],
        1,
    ),
    (
        Spk,
        Missing,
        Writes,
        &["pull", "python/1.0", "--remote", "nowhere"],
        1,
    ),
    (Spfs, Missing, Reads, &["untag", "a/b"], 1),
    (Spfs, Missing, Reads, &["export", "a/b", "-o", "@NODIR"], 1),
    (Spfs, Missing, Writes, &["import", "@NODIR"], 1),
    (
        Spfs,
        Missing,
        Reads,
        &["check", "--repair", "--remote", "nowhere"],
        1,
    ),
    (Spfs, Missing, Reads, &["edit"], 1),
    (Spfs, Missing, Reads, &["reset"], 1),
    (Spfs, Missing, Reads, &["runtime", "list"], 1),
    (Spfs, Missing, Reads, &["runtime", "info", "rt"], 1),
    (Spfs, Missing, Reads, &["runtime", "rm", "rt"], 1),
    (Spfs, Missing, Reads, &["runtime", "prune"], 1),
    (Spfs, Missing, Reads, &["runtime", "views"], 1),
    (Spk, Missing, Reads, &["ls"], 1),
    (Spk, Missing, Reads, &["ls", "python"], 1),
    (Spk, Missing, Reads, &["search", "py"], 1),
    (Spk, Missing, Reads, &["info", "python"], 1),
    (Spk, Missing, Reads, &["view", "python/1.0"], 1),
    (Spk, Missing, Reads, &["deprecate", "python/1.0"], 1),
    (Spk, Missing, Reads, &["undeprecate", "python/1.0"], 1),
    (Spk, Missing, Reads, &["remove", "python/1.0"], 1),
    (Spk, Missing, Reads, &["explain", "python"], 1),
    (Spk, Missing, Reads, &["index", "--check"], 1),
    // Commands that write may create it, and then fail on their input.
    (Spfs, Missing, Writes, &["tag", "no/such", "new/tag"], 1),
    (
        Spfs,
        Missing,
        Writes,
        &["commit", "platform", "--ref", "no/such"],
        1,
    ),
    (Spk, Missing, Writes, &["publish", "@NODIR"], 1),
    // Nothing by that name.
    (Spfs, Empty, Reads, &["ls", "no/such"], 1),
    (Spfs, Empty, Reads, &["read", "no/such", "f"], 1),
    (Spfs, Empty, Reads, &["info", "no/such"], 1),
    (Spfs, Empty, Reads, &["log", "no/such"], 1),
    (Spfs, Empty, Reads, &["diff", "no/such", "other/x"], 1),
    (Spfs, Empty, Reads, &["render", "no/such", "@NODIR"], 1),
    (Spfs, Empty, Reads, &["check", "no/such"], 1),
    (Spfs, Empty, Reads, &["check", "--remote", "nowhere"], 1),
    (Spfs, Empty, Reads, &["clean", "-y", "--grace", "soon"], 1),
    (Spfs, Empty, Reads, &["clean"], 1),
    (Spfs, Empty, Reads, &["untag", "no/such"], 1),
    (
        Spfs,
        Empty,
        Reads,
        &["export", "no/such", "-o", "@NODIR"],
        1,
    ),
    (Spfs, Empty, Writes, &["import", "@BADSPEC"], 1),
    (Spfs, Empty, Writes, &["import", "@NODIR"], 1),
    (
        Spfs,
        Empty,
        Reads,
        &["check", "--repair", "--remote", "nowhere"],
        1,
    ),
    (Spfs, Empty, Reads, &["untag", "--all", "no/such"], 1),
    (Spfs, Empty, Writes, &["tag", "no/such", "new/tag"], 1),
    (
        Spfs,
        Empty,
        Writes,
        &["commit", "platform", "--ref", "no/such"],
        1,
    ),
    (Spfs, Empty, Reads, &["runtime", "info", "nope"], 1),
    (Spfs, Empty, Reads, &["runtime", "rm", "nope"], 1),
    (Spk, Empty, Reads, &["ls", "nosuch"], 1),
    (Spk, Empty, Reads, &["ls", "nosuch/1.0"], 1),
    (Spk, Empty, Reads, &["info", "nosuch"], 1),
    (Spk, Empty, Reads, &["info", "nosuch/1.0"], 1),
    (Spk, Empty, Reads, &["info", "nosuch/1.0/src"], 1),
    (Spk, Empty, Reads, &["search", "zzz"], 1),
    (Spk, Empty, Reads, &["deprecate", "nosuch/1.0"], 1),
    (Spk, Empty, Reads, &["remove", "nosuch/1.0"], 1),
    (Spk, Empty, Reads, &["explain", "nosuch"], 1),
    (Spk, Empty, Reads, &["ls", "-r", "nowhere"], 1),
    (
        Spk,
        Empty,
        Reads,
        &["search", "py", "--remote", "nowhere"],
        1,
    ),
    (
        Spk,
        Empty,
        Reads,
        &["explain", "python", "-r", "nowhere"],
        1,
    ),
    (
        Spk,
        Empty,
        Reads,
        &["env", "-r", "nowhere", "python", "--", "true"],
        1,
    ),
    (Spk, Empty, Writes, &["publish", "@NODIR"], 1),
    (Spk, Empty, Reads, &["lint", "@NODIR"], 1),
    (Spk, Missing, Reads, &["env", "python", "--", "true"], 1),
    (Spk, Empty, Reads, &["env", "nosuch", "--", "true"], 1),
    (Spk, Empty, Reads, &["env", "Bad_Name", "--", "true"], 1),
    (Spk, Empty, Reads, &["env", "--load", "@NODIR"], 1),
    (Spk, Empty, Reads, &["shell", "nosuch"], 1),
    (Spk, Empty, Reads, &["install", "nosuch", "--yes"], 1),
    (Spk, Empty, Writes, &["bosh", "import", "@NODIR"], 1),
    (Spk, Empty, Writes, &["bosh", "build", "@NODIR"], 1),
    (Spk, Empty, Writes, &["make-source", "@NODIR"], 1),
    (Spk, Empty, Writes, &["make-source", "@BADSPEC"], 1),
    (Spk, Empty, Writes, &["make-binary", "nosuch/1.0"], 1),
    (Spk, Empty, Writes, &["make-binary", "@BADSPEC"], 1),
    (Spk, Empty, Writes, &["build", "@NODIR"], 1),
    (Spk, Empty, Writes, &["build", "@BADSPEC"], 1),
    (Spk, Empty, Writes, &["test", "nosuch/1.0"], 1),
    (Spk, Empty, Writes, &["test", "nosuch/1.0@nostage"], 1),
    // Outside a runtime.
    (Spfs, Empty, Reads, &["edit"], 1),
    (Spfs, Empty, Reads, &["reset"], 1),
    (Spfs, Empty, Reads, &["diff"], 1),
    (Spfs, Empty, Writes, &["commit", "layer"], 1),
    // Malformed arguments the command itself checks.
    (Spfs, Empty, Reads, &["ls", "a/b~x"], 1),
    (Spfs, Empty, Reads, &["info", "abc"], 1),
    (Spfs, Empty, Reads, &["untag", "a/b~x"], 1),
    (Spfs, Empty, Reads, &["untag", "--all", "a/b~1"], 1),
    (Spfs, Empty, Writes, &["tag", "no/such", "Bad Name!"], 1),
    (
        Spfs,
        Empty,
        Writes,
        &["commit", "layer", "--path", "@NODIR"],
        1,
    ),
    (
        Spfs,
        Empty,
        Writes,
        &[
            "commit",
            "layer",
            "--path",
            "@DIR",
            "--annotation",
            "noequals",
        ],
        1,
    ),
    (Spfs, Empty, Writes, &["run", "--backend", "bogus", "-"], 1),
    (Spk, Empty, Reads, &["ls", "Bad_Name"], 1),
    (Spk, Empty, Reads, &["info", "a/1.0/b/c"], 1),
    (Spk, Empty, Reads, &["explain", "python/==="], 1),
    (
        Spk,
        Empty,
        Reads,
        &["explain", "python", "-o", "novalue"],
        1,
    ),
    (Spk, Empty, Reads, &["explain", "python", "--timeout=-1"], 1),
    (Spk, Empty, Reads, &["new", "Bad Name", "--dir", "@DIR"], 1),
    (Spk, Empty, Reads, &["lint", "@BADSPEC"], 1),
    (Spk, Empty, Writes, &["publish", "@BADSPEC"], 1),
    // Usage errors: caught by the argument parser.
    (Spfs, Empty, Reads, &["frobnicate"], 2),
    (Spfs, Empty, Reads, &["tag", "only-a-ref"], 2),
    (Spfs, Empty, Reads, &["log"], 2),
    (Spfs, Empty, Reads, &["init", "a", "b"], 2),
    (
        Spfs,
        Empty,
        Reads,
        &["render", "a/b", "@NODIR", "--strategy", "bogus"],
        2,
    ),
    (Spfs, Empty, Reads, &["runtime"], 2),
    (Spfs, Empty, Reads, &[], 2),
    (Spk, Empty, Reads, &["frobnicate"], 2),
    (Spk, Empty, Reads, &["deprecate"], 2),
    (Spk, Empty, Reads, &["info"], 2),
    (Spk, Empty, Reads, &["index"], 2),
    (Spk, Empty, Reads, &["ls", "-l", "-r", "origin"], 2),
    (
        Spk,
        Empty,
        Reads,
        &["explain", "python", "--timeout", "abc"],
        2,
    ),
    (Spk, Empty, Reads, &[], 2),
];

struct Scratch {
    tmp: tempfile::TempDir,
}

impl Scratch {
    fn new(repo: Repo) -> Self {
        let s = Scratch {
            tmp: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir(s.tmp.path().join("dir")).unwrap();
        std::fs::write(s.tmp.path().join("bad.spk.yaml"), "pkg: [unclosed\n").unwrap();
        if repo == Empty {
            let out = s.run(Spfs, &["init"]);
            assert!(out.status.success(), "{out:?}");
        }
        s
    }

    fn repo(&self) -> PathBuf {
        self.tmp.path().join("repo")
    }

    fn arg(&self, a: &str) -> String {
        let p = |rel: &str| self.tmp.path().join(rel).to_str().unwrap().to_string();
        match a {
            "@DIR" => p("dir"),
            "@NODIR" => p("no/such/dir"),
            "@BADSPEC" => p("bad.spk.yaml"),
            _ => a.to_string(),
        }
    }

    fn command(&self, tool: Tool, args: &[&str]) -> Command {
        let mut c = Command::new(match tool {
            Spfs => spfs_bin(),
            Spk => Path::new(SPK),
        });
        c.args(args.iter().map(|a| self.arg(a)))
            .env("SPFS_ROOT", self.repo())
            .env_remove("SPFS_RUNTIME")
            .env_remove("RUST_LOG")
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .current_dir(self.tmp.path());
        c
    }

    fn run(&self, tool: Tool, args: &[&str]) -> Output {
        self.command(tool, args).output().unwrap()
    }
}

/// The layout of docs/cli.md: `error: ` first, then only `  - ` facts and `  help: `
/// hints; no hint glued to the error line with `;`; no panic.
fn layout_problems(stderr: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut lines = stderr.lines();
    match lines.next() {
        Some(first) if first.starts_with("error: ") => {
            if first.contains("; ") {
                problems.push(format!("hint glued to the error line: {first}"));
            }
        }
        other => problems.push(format!("first line is not 'error: ...': {other:?}")),
    }
    let mut in_help = false;
    for line in lines {
        if line.starts_with("  help: ") {
            in_help = true;
        } else if line.starts_with("  - ") && !in_help {
        } else {
            problems.push(format!("line outside the layout: {line:?}"));
        }
    }
    for bad in ["panicked", "RUST_BACKTRACE"] {
        if stderr.contains(bad) {
            problems.push(format!("stderr mentions {bad}"));
        }
    }
    problems
}

#[test]
fn layout_checker_rejects_what_the_policy_forbids() {
    assert!(layout_problems("error: x\n  - fact\n  help: y\n").is_empty());
    assert!(!layout_problems("error: x; do y\n").is_empty());
    assert!(!layout_problems("oops\n").is_empty());
    assert!(!layout_problems("error: x\nhelp: y\n").is_empty());
    assert!(!layout_problems("error: x\n  help: y\n  - late fact\n").is_empty());
    assert!(!layout_problems("thread 'main' panicked at src/x.rs\n").is_empty());
}

#[test]
fn both_tools_answer_bad_input_in_one_layout() {
    let mut failures = Vec::new();
    for &(tool, repo, access, args, code) in TABLE {
        let scratch = Scratch::new(repo);
        let out = scratch.run(tool, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let name = format!("{tool:?} {args:?} ({repo:?} repository)");
        if out.status.code() != Some(code) {
            failures.push(format!(
                "{name}: exit {:?}, expected {code}\n{stderr}",
                out.status.code()
            ));
        }
        for p in layout_problems(&stderr) {
            failures.push(format!("{name}: {p}\n{stderr}"));
        }
        if repo == Missing && access == Reads && scratch.repo().exists() {
            failures.push(format!(
                "{name}: a command that reads created the repository"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The subcommands a tool lists in its `--help`, recursively (`commit layer`, ...).
fn subcommands(tool: Tool, prefix: &[String]) -> Vec<Vec<String>> {
    let scratch = Scratch::new(Missing);
    let mut args: Vec<&str> = prefix.iter().map(String::as_str).collect();
    args.push("--help");
    let help = String::from_utf8(scratch.run(tool, &args).stdout).unwrap();
    let mut found = Vec::new();
    let mut in_commands = false;
    for line in help.lines() {
        if line == "Commands:" {
            in_commands = true;
            continue;
        }
        if in_commands {
            let Some(name) = line
                .strip_prefix("  ")
                .and_then(|l| l.split_whitespace().next())
            else {
                break;
            };
            if name == "help" {
                continue;
            }
            let mut path = prefix.to_vec();
            path.push(name.to_string());
            let nested = subcommands(tool, &path);
            if nested.is_empty() {
                found.push(path);
            } else {
                found.extend(nested);
            }
        }
    }
    found
}

#[test]
fn every_subcommand_is_covered_and_rejects_an_unknown_flag_as_usage() {
    for tool in [Spfs, Spk] {
        let commands = subcommands(tool, &[]);
        assert!(commands.len() >= 8, "{tool:?}: {commands:?}");
        for path in &commands {
            let scratch = Scratch::new(Missing);
            let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
            args.push("--no-such-flag");
            let out = scratch.run(tool, &args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{tool:?} {args:?}: {stderr}");
            assert_eq!(layout_problems(&stderr), Vec::<String>::new(), "{stderr}");
            assert!(stderr.contains("--no-such-flag"), "{stderr}");
            assert!(!scratch.repo().exists(), "{tool:?} {args:?} created a repo");
            // Every command that takes input also has a row in the bad-input table.
            let covered = TABLE.iter().any(|(t, _, _, a, _)| {
                *t == tool && a.len() >= path.len() && a[..path.len()] == args[..path.len()]
            });
            let no_input = ["init", "version", "config", "new", "run", "shell"];
            assert!(
                covered || no_input.contains(&path[0].as_str()),
                "{tool:?} {path:?} has no row in the bad-input table"
            );
        }
    }
}

/// Reads one line of the command's stdout, then closes the pipe: the command must end
/// quietly with success.
fn closed_pipe_is_success(scratch: &Scratch, tool: Tool, args: &[&str]) {
    let mut child = scratch
        .command(tool, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(!first.is_empty(), "{tool:?} {args:?} printed nothing");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{tool:?} {args:?}: {:?}\n{stderr}",
        out.status
    );
    assert!(stderr.is_empty(), "{tool:?} {args:?}: {stderr}");
}

#[test]
fn a_closed_stdout_ends_both_tools_quietly() {
    let scratch = Scratch::new(Empty);
    let src = scratch.tmp.path().join("dir");
    std::fs::write(src.join("f"), "x").unwrap();
    let out = scratch.run(Spfs, &["commit", "layer", "--path", "@DIR"]);
    assert!(out.status.success(), "{out:?}");
    let layer = String::from_utf8(out.stdout).unwrap().trim().to_string();
    // Far more than a pipe buffer (64 KiB) of output: spfs tags, and spk ls over the
    // recipe tags of 4000 packages.
    let mut args = vec!["tag".to_string(), layer];
    for i in 0..4000 {
        args.push(format!("spk/spec/package-number-{i:05}/1.0.0"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = scratch.run(Spfs, &args);
    assert!(out.status.success(), "{out:?}");
    closed_pipe_is_success(&scratch, Spfs, &["tags"]);
    closed_pipe_is_success(&scratch, Spk, &["ls"]);
}
