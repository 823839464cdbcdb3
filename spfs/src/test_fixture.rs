//! Test fixture shared by the unit tests of transfers and archives: two repositories
//! in one temporary directory, and layers committed from small trees.

use std::fs;

use crate::commit::{commit_layer, CommitOptions};
use crate::digest::Digest;
use crate::progress::Progress;
use crate::storage::LocalRepository;

pub(crate) struct Fixture {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) src: LocalRepository,
    pub(crate) dst: LocalRepository,
}

pub(crate) fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let src = LocalRepository::create(&dir.path().join("src")).unwrap();
    let dst = LocalRepository::create(&dir.path().join("dst")).unwrap();
    Fixture { dir, src, dst }
}

impl Fixture {
    pub(crate) fn layer(&self, name: &str, files: &[(&str, &[u8])]) -> Digest {
        let tree = self.dir.path().join(name);
        for (f, content) in files {
            let p = tree.join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, content).unwrap();
        }
        commit_layer(
            &self.src,
            &tree,
            &CommitOptions::default(),
            &[],
            &Progress::hidden(),
        )
        .unwrap()
    }
}
