//! Writing a solve graph: DOT text as is, or SVG through Graphviz's `dot`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use super::CliError;

/// Writes `dot` to `path`: DOT for `.dot`/`.gv`, SVG (rendered by `dot -Tsvg`) for `.svg`.
pub fn write(path: &Path, dot: &str) -> Result<(), CliError> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let bytes = match ext {
        "dot" | "gv" => dot.as_bytes().to_vec(),
        "svg" => render_svg(dot)?,
        _ => {
            return Err(CliError::new(format!(
                "cannot tell the graph format of {}",
                path.display()
            ))
            .help("name the file FILE.dot (Graphviz text) or FILE.svg (a picture)"))
        }
    };
    std::fs::write(path, bytes)
        .map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display())))
}

fn render_svg(dot: &str) -> Result<Vec<u8>, CliError> {
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            CliError::new(format!("cannot run Graphviz's dot to draw SVG: {e}"))
                .help("install graphviz (apt-get install graphviz), or write FILE.dot instead")
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(dot.as_bytes())
            .map_err(|e| CliError::new(format!("cannot feed dot: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| CliError::new(format!("dot failed: {e}")))?;
    if !out.status.success() {
        return Err(CliError::new(format!(
            "dot failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}
