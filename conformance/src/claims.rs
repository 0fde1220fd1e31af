//! The seed posts' claims (`spec/claims.yaml`) and the generated table `spec/CLAIMS.md`.
//!
//! Each claim is quoted from its post, restated in English, given a verdict, and tied to the
//! cases that settle it. The table is generated, and a test checks that the committed file is
//! current; the cases themselves run on every CPython start method in the suite.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::spec::LoadedCase;
use crate::yaml::YamlError;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimsFile {
    pub format: u32,
    /// The posts, by short name.
    pub posts: Vec<Post>,
    pub claims: Vec<Claim>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Post {
    pub id: String,
    pub title: String,
    /// The file under `shared/seeds/`.
    pub file: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    /// Permanent id, `SEED-NN`.
    pub id: String,
    /// The post's id.
    pub post: String,
    /// The claim in the post's own words.
    pub quote: String,
    /// The claim in English.
    pub says: String,
    /// `holds`, `false`, or `partly` (what holds and what does not is in `note`).
    pub verdict: ClaimVerdict,
    pub note: String,
    /// Cases whose passing on CPython settles the claim.
    pub cases: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ClaimVerdict {
    Holds,
    False,
    Partly,
}

impl ClaimVerdict {
    fn label(self) -> &'static str {
        match self {
            ClaimVerdict::Holds => "holds",
            ClaimVerdict::False => "**false**",
            ClaimVerdict::Partly => "partly",
        }
    }
}

/// Why `spec/claims.yaml` did not load: it does not read or parse, or a claim refers to
/// something that does not exist (each variant names the file and the claim).
#[derive(Debug, thiserror::Error)]
pub enum ClaimsError {
    #[error(transparent)]
    Yaml(#[from] YamlError),
    #[error("{}: claim {claim} names unknown post `{post}`", path.display())]
    UnknownPost {
        path: PathBuf,
        claim: String,
        post: String,
    },
    #[error("{}: claim {claim} is settled by no case", path.display())]
    NoCase { path: PathBuf, claim: String },
    #[error("{}: claim {claim} names unknown case `{case}`", path.display())]
    UnknownCase {
        path: PathBuf,
        claim: String,
        case: String,
    },
}

impl ClaimsFile {
    /// Loads `spec/claims.yaml` and checks that every claim names its post and existing cases.
    pub fn load(path: &Path, cases: &[LoadedCase]) -> Result<ClaimsFile, ClaimsError> {
        let file: ClaimsFile = crate::yaml::read_yaml(path)?;
        for claim in &file.claims {
            if !file.posts.iter().any(|p| p.id == claim.post) {
                return Err(ClaimsError::UnknownPost {
                    path: path.to_path_buf(),
                    claim: claim.id.clone(),
                    post: claim.post.clone(),
                });
            }
            if claim.cases.is_empty() {
                return Err(ClaimsError::NoCase {
                    path: path.to_path_buf(),
                    claim: claim.id.clone(),
                });
            }
            for id in &claim.cases {
                if !cases.iter().any(|c| c.id() == id) {
                    return Err(ClaimsError::UnknownCase {
                        path: path.to_path_buf(),
                        claim: claim.id.clone(),
                        case: id.clone(),
                    });
                }
            }
        }
        Ok(file)
    }

    /// The Markdown table committed as `spec/CLAIMS.md`.
    pub fn render(&self, cases: &[LoadedCase]) -> String {
        let mut out = String::from(
            "# The seed posts' claims, settled\n\n\
             Generated from `spec/claims.yaml` by `cargo xtask conformance claims`; do not edit.\n\
             Each claim is settled by the cases listed, which pass on CPython (fork, spawn,\n\
             forkserver) in every run of the suite.\n\n",
        );
        for post in &self.posts {
            let _ = writeln!(
                out,
                "- **{}**: {} (`shared/seeds/{}`)",
                post.id, post.title, post.file
            );
        }
        out.push_str(
            "\n| id | post | the claim | verdict | why | settled by |\n|---|---|---|---|---|---|\n",
        );
        for c in &self.claims {
            let settled: Vec<String> = c
                .cases
                .iter()
                .map(|id| {
                    let claim = cases
                        .iter()
                        .find(|lc| lc.id() == id)
                        .map(|lc| lc.case.claim.replace('|', "\\|"))
                        .unwrap_or_default();
                    format!("`{id}` ({claim})")
                })
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} ({}) | {} | {} | {} |",
                c.id,
                c.post,
                c.says.replace('|', "\\|"),
                c.quote.replace('|', "\\|"),
                c.verdict.label(),
                c.note.replace('|', "\\|"),
                settled.join("<br>")
            );
        }
        out
    }
}
