//! Building the binaries a run needs (the supervisor, `rust-ref`'s driver) with cargo, from
//! the checkout found at run time, and asking cargo where it put them.
//!
//! Each build selects `-p xtask` beside the binary's package. Cargo unifies dependency
//! features over the selected packages only, so `cargo build -p conformance --bin X` alone
//! resolves another feature set than the `cargo build -p xtask` that built the runner and
//! recompiles much of the dependency tree (syn, serde, schemars, ... and `conformance`
//! itself) on a fresh clone's first run. With `xtask` selected too, the supervisor reuses
//! every artifact of xtask's build and is only linked, and `pool-ref-driver` reuses all but
//! what only it needs. Two invocations rather than one: selecting both binaries at once
//! unifies `nix`'s features for `pool-ref` into `conformance`'s and rebuilds it.
//!
//! The path comes from cargo's own messages (`--message-format=json`), so a target folder
//! set anywhere (`CARGO_TARGET_DIR`, a `build.target-dir` in any config file) is honoured.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The package selected beside each binary so that features resolve as in xtask's build.
const UNIFY_WITH: &str = "xtask";

/// Why a binary could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("running {cargo}")]
    Spawn {
        cargo: String,
        #[source]
        source: std::io::Error,
    },
    /// Cargo has printed why on stderr.
    #[error("building {bin} failed ({status})")]
    Failed {
        bin: String,
        status: std::process::ExitStatus,
    },
    #[error("cargo built {bin} but did not say where (no executable in its messages)")]
    NoExecutable { bin: String },
}

/// The cargo that runs us (`$CARGO`), else `cargo` on `PATH`.
fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// The arguments of the build of `bin` of `package` (debug profile).
pub fn build_args(package: &str, bin: &str) -> Vec<String> {
    let mut args: Vec<String> = [
        "build",
        "--quiet",
        "--message-format=json-render-diagnostics",
    ]
    .map(str::to_owned)
    .to_vec();
    if package != UNIFY_WITH {
        args.extend(["-p".to_owned(), UNIFY_WITH.to_owned()]);
    }
    args.extend(["-p", package, "--bin", bin].map(str::to_owned));
    args
}

/// Builds `bin` of `package` in the checkout `root` (a no-op build when it is up to date)
/// and returns the executable's path.
pub fn build_bin(root: &Path, package: &str, bin: &str) -> Result<PathBuf, BuildError> {
    let cargo = cargo();
    let output = Command::new(&cargo)
        .args(build_args(package, bin))
        .current_dir(root)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| BuildError::Spawn {
            cargo: cargo.to_string_lossy().into_owned(),
            source,
        })?;
    if !output.status.success() {
        return Err(BuildError::Failed {
            bin: bin.to_owned(),
            status: output.status,
        });
    }
    executable(&String::from_utf8_lossy(&output.stdout), bin).ok_or_else(|| {
        BuildError::NoExecutable {
            bin: bin.to_owned(),
        }
    })
}

/// The executable of the binary target `bin` among cargo's JSON messages (one a line).
pub fn executable(messages: &str, bin: &str) -> Option<PathBuf> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == bin)
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_build_selects_xtask_so_features_unify_as_in_its_build() {
        assert_eq!(
            build_args("pool-ref", "pool-ref-driver").join(" "),
            "build --quiet --message-format=json-render-diagnostics -p xtask -p pool-ref \
             --bin pool-ref-driver"
        );
        assert_eq!(
            build_args("xtask", "xtask").join(" "),
            "build --quiet --message-format=json-render-diagnostics -p xtask --bin xtask"
        );
    }

    #[test]
    fn the_executable_is_read_from_cargos_messages() {
        let messages = [
            r#"{"reason":"compiler-artifact","target":{"name":"nix","kind":["lib"]},"executable":null}"#,
            r#"{"reason":"compiler-artifact","target":{"name":"poolspec-supervisor","kind":["lib"]},"executable":null}"#,
            r#"{"reason":"compiler-artifact","target":{"name":"poolspec-supervisor","kind":["bin"]},"executable":"/t/debug/poolspec-supervisor"}"#,
            "not json",
            r#"{"reason":"build-finished","success":true}"#,
        ]
        .join("\n");
        assert_eq!(
            executable(&messages, "poolspec-supervisor"),
            Some(PathBuf::from("/t/debug/poolspec-supervisor"))
        );
        assert_eq!(executable(&messages, "pool-ref-driver"), None);
    }
}
