//! Fills a repository with many small objects for `scripts/bench-clean.sh`.
//!
//! usage: gen_store REPO PAIRS
//!
//! Writes PAIRS layers, each over its own one-file manifest (2 × PAIRS objects; the
//! files share one payload), and tags platforms of 1,000 layers holding the first
//! half of them: half the objects are reachable, half are not.

use spfs::object::{Entry, Layer, Manifest, Object, Platform, Tree};
use spfs::storage::LocalRepository;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(root), Some(pairs)) = (args.get(1), args.get(2).and_then(|n| n.parse().ok())) else {
        eprintln!("usage: gen_store REPO PAIRS");
        std::process::exit(2);
    };
    let pairs: usize = pairs;
    let repo = LocalRepository::create(std::path::Path::new(root)).unwrap();
    let _guard = repo.write_guard().unwrap();
    let blob = repo.write_blob(b"small\n").unwrap();
    use rayon::prelude::*;
    let layers: Vec<_> = (0..pairs)
        .into_par_iter()
        .map(|i| {
            let mut tree = Tree::new();
            tree.insert(format!("file{i}").into_bytes(), Entry::file(0o644, 6, blob));
            let m = repo
                .write_object(&Object::Manifest(Manifest::new(tree)))
                .unwrap();
            repo.write_object(&Object::Layer(Layer::new(m))).unwrap()
        })
        .collect();
    for (n, chunk) in layers[..pairs / 2].chunks(1000).enumerate() {
        let p = repo
            .write_object(&Object::Platform(Platform {
                layers: chunk.to_vec(),
            }))
            .unwrap();
        repo.push_tag(&format!("bench/p{n}"), &p).unwrap();
    }
}
