//! `spk test`: a recipe's tests at the sources, build and install stages, per variant.

use std::fs;
use std::path::PathBuf;

use spfs::runtime::monitor::RunOptions;
use spfs::runtime::startup::Program;

use super::{environment, source_dir, BuildError, Builder, Result};
use crate::ident::Build;
use crate::name::Component;
use crate::request::{PkgRequest, Request};
use crate::spec::{Spec, TestStage};
use crate::version::VersionFilter;

/// One test that ran.
#[derive(Debug, Clone)]
pub struct TestOutcome {
    /// Position of the test in `tests` (1-based).
    pub index: usize,
    /// Its stage.
    pub stage: TestStage,
    /// The variant it ran for.
    pub variant: usize,
}

fn stage_name(s: TestStage) -> &'static str {
    match s {
        TestStage::Sources => "sources",
        TestStage::Build => "build",
        TestStage::Install => "install",
    }
}

/// Runs the selected tests; stops at the first failure, naming the test and stage.
pub(super) fn run(b: &Builder, recipe: &Spec, stages: &[TestStage]) -> Result<Vec<TestOutcome>> {
    let mut out = Vec::new();
    let variants = b.variants(recipe)?;
    for (variant, options) in variants {
        for (i, test) in recipe.tests.iter().enumerate() {
            if !stages.contains(&test.stage) || !test.selects(&options) {
                continue;
            }
            spfs::signals::check().map_err(|_| BuildError::Interrupted)?;
            let what = format!(
                "test {} ({} stage, variant {variant})",
                i + 1,
                stage_name(test.stage)
            );
            let mut requests = test.requirements.clone();
            let mut stack = Vec::new();
            let mut cwd = PathBuf::from(source_dir(recipe));
            let mut vars = vec![
                ("PREFIX".to_string(), "/spfs".to_string()),
                ("SPK_ACTIVE_PREFIX".to_string(), "/spfs".to_string()),
            ];
            vars.extend(options.to_environment());
            match test.stage {
                TestStage::Sources => stack.push(b.source_layer(recipe)?),
                TestStage::Build => {
                    stack.push(b.source_layer(recipe)?);
                    requests.extend(b.build_env_requests(recipe, &options)?);
                }
                TestStage::Install => {
                    let mut r = PkgRequest::new(recipe.name().clone());
                    r.range = format!("={}", recipe.version())
                        .parse::<VersionFilter>()
                        .map_err(|e| Builder::invalid(recipe, e.to_string(), None))?;
                    r.build = Some(Build::Digest(options.digest()));
                    r.components.insert(Component::All);
                    requests.push(Request::Pkg(r));
                    cwd = PathBuf::from("/tmp");
                }
            }
            // Package options are versions to build against, not values builds must carry.
            let mut solve_options = options.clone();
            for opt in &recipe.build.options {
                if let crate::spec::Opt::Pkg(p) = opt {
                    solve_options.remove(p.pkg.as_str());
                }
            }
            let solution = b.solve(
                recipe,
                &format!("{} test", stage_name(test.stage)),
                requests,
                &solve_options,
            )?;
            stack.extend(b.layers(&solution)?);
            let deps: Vec<&Spec> = solution.packages.iter().map(|p| p.spec.as_ref()).collect();
            for d in deps {
                vars.extend(environment::package_vars(d));
            }
            b.fetch_layers(&stack)?;
            let scratch = b.scratch()?;
            let script = scratch.path().join("test.sh");
            fs::write(&script, test.script.text() + "\n")
                .map_err(BuildError::io("write", &script))?;
            let mut opts = RunOptions::new(
                stack,
                Program::Command(vec!["bash".into(), "-ex".into(), script.into()]),
            );
            opts.edit = Some(true);
            opts.cwd = Some(cwd);
            let mut cmd = b.runtime(opts);
            for (k, v) in &vars {
                cmd.env(k, v);
            }
            let log = scratch.path().join("test.log");
            let (code, tail) = b.run_logged(cmd, &log)?;
            if code != 0 {
                let kept = b
                    .log_path(&recipe.ident().to_build(Build::Digest(options.digest())))
                    .with_extension(format!("test-{}.log", i + 1));
                if let Some(p) = kept.parent() {
                    let _ = fs::create_dir_all(p);
                }
                let _ = fs::copy(&log, &kept);
                return Err(b.script_failed(
                    &recipe.ident().to_string(),
                    &what,
                    code,
                    tail,
                    &kept,
                    None,
                ));
            }
            out.push(TestOutcome {
                index: i + 1,
                stage: test.stage,
                variant,
            });
        }
    }
    Ok(out)
}
