//! Embeds the web client (`web/`) in the binary, so `cargo build` serves it
//! without a Node toolchain.
//!
//! Writes `$OUT_DIR/web_assets.rs` with every file under `web/` as an
//! `include_bytes!` and `ASSET_VERSION`, a hash of all of them. The server
//! serves the files under `/assets/{ASSET_VERSION}/…`: any change to any
//! file changes every URL, so browsers may cache them forever.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

use sha2::{Digest, Sha256};

fn main() {
    println!("cargo:rerun-if-changed=web");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    let mut files = Vec::new();
    collect(&root, &mut files);
    files.sort();

    let mut hasher = Sha256::new();
    let mut table = String::new();
    for path in &files {
        let rel = path
            .strip_prefix(&root)
            .expect("under web/")
            .to_str()
            .expect("web/ file names are UTF-8")
            .replace('\\', "/");
        let bytes = fs::read(path).expect("read a web/ file");
        hasher.update(rel.as_bytes());
        hasher.update([0]);
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
        writeln!(
            table,
            "    ({rel:?}, include_bytes!({:?})),",
            path.to_str().expect("UTF-8 path")
        )
        .expect("write to a String");
    }
    let digest = hasher.finalize();
    let version: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();

    let code = format!(
        "/// A hash of every file of the web client: part of each asset's URL.\n\
         pub const ASSET_VERSION: &str = {version:?};\n\
         /// Every file under `web/`, by its path relative to `web/`.\n\
         pub static ASSETS: &[(&str, &[u8])] = &[\n{table}];\n"
    );
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    fs::write(out.join("web_assets.rs"), code).expect("write web_assets.rs");
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect(&path, files);
        } else {
            files.push(path);
        }
    }
}
