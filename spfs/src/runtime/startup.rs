//! Building the command a runtime runs: startup scripts first, then the user's command
//! or shell.

use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{IoContext, Result};

/// Where packages drop scripts that every runtime sources on entry.
pub const STARTUP_DIR: &str = "/spfs/etc/spfs/startup.d";

/// What the runtime runs.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Program {
    /// A command and its arguments.
    Command(Vec<OsString>),
    /// The user's interactive shell (`$SHELL`, else bash, else sh).
    Shell,
}

/// The startup scripts with the given suffix, in lexical (byte) order.
pub fn startup_scripts(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.as_os_str().as_bytes().ends_with(suffix.as_bytes()) && p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort_by(|a, b| a.as_os_str().as_bytes().cmp(b.as_os_str().as_bytes()));
    files
}

fn sh_quote(p: &Path) -> String {
    format!("'{}'", p.to_string_lossy().replace('\'', "'\\''"))
}

fn sourcing(scripts: &[PathBuf], keyword: &str) -> String {
    scripts
        .iter()
        .map(|s| format!("{keyword} {}\n", sh_quote(s)))
        .collect()
}

fn user_shell() -> PathBuf {
    if let Some(s) = std::env::var_os("SHELL").filter(|s| !s.is_empty()) {
        return PathBuf::from(s);
    }
    if Path::new("/bin/bash").exists() {
        return PathBuf::from("/bin/bash");
    }
    PathBuf::from("/bin/sh")
}

/// The process to start inside the runtime. `scratch` is a private writable
/// directory for generated rc files.
pub fn build(program: &Program, scratch: &Path) -> Result<Command> {
    let sh_scripts = startup_scripts(Path::new(STARTUP_DIR), ".sh");
    match program {
        Program::Command(argv) => {
            // POSIX sh sources the scripts, then replaces itself with the command;
            // a missing command exits 127 as in any shell.
            let script = format!("{}exec \"$@\"", sourcing(&sh_scripts, "."));
            let mut c = Command::new("/bin/sh");
            c.arg("-c").arg(script).arg("spfs-run").args(argv);
            Ok(c)
        }
        Program::Shell => {
            let shell = user_shell();
            let name = shell
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name == "bash" {
                let rc = scratch.join("startup.bashrc");
                let text = format!(
                    "[ -f \"$HOME/.bashrc\" ] && . \"$HOME/.bashrc\"\n{}",
                    sourcing(&sh_scripts, ".")
                );
                fs::write(&rc, text).ctx("writing", &rc)?;
                let mut c = Command::new(&shell);
                c.arg("--rcfile").arg(&rc).arg("-i");
                Ok(c)
            } else if name == "tcsh" || name == "csh" {
                let csh_scripts = startup_scripts(Path::new(STARTUP_DIR), ".csh");
                let mut script = sourcing(&csh_scripts, "source").replace('\n', "; ");
                script.push_str(&format!("exec {}", sh_quote(&shell)));
                let mut c = Command::new(&shell);
                c.arg("-c").arg(script);
                Ok(c)
            } else {
                let script = format!("{}exec \"$0\"", sourcing(&sh_scripts, "."));
                let mut c = Command::new("/bin/sh");
                c.arg("-c")
                    .arg(script)
                    .arg(OsString::from_vec(shell.into_os_string().into_vec()));
                Ok(c)
            }
        }
    }
}
