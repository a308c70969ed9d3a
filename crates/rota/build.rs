//! Sets `ROTA_COMMIT` for `rota --version` (`rota 0.1.0 (1a2b3c4)`): the commit this is built
//! from (`git rev-parse --short HEAD`), or `ROTA_BUILD_COMMIT` when set (a build from a source
//! tree without `.git`, such as a container build context), else `unknown`.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=ROTA_BUILD_COMMIT");
    let commit = std::env::var("ROTA_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=ROTA_COMMIT={}", commit.trim());

    // Build again when HEAD moves: HEAD itself (a checkout), the branch it names (a commit), and
    // packed-refs (where a branch may live instead). `--git-path` finds them in a worktree too.
    // Only files that exist are named: cargo reruns the script every time for a missing one.
    let mut watched = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--path-format=absolute", "--git-path", &name]) {
            if Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
}
