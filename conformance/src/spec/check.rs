//! What serde cannot check in a case: required content, registered names, well-formed
//! tasks and pool parameters. Each problem names the node of the case it is about, so the
//! loader can give its line and column.

use super::locate::YamlPath;
use super::model::{Case, Count, GateRule, PoolParams, Probe, START_METHODS};
use super::program::{Located, step_path};
use super::step::Step;
use super::task::{ERROR_TYPES, ErrorSpec, Scalar, TaskSpec};
use crate::versions::VersionError;

/// What serde cannot check in a case: required content, registered names, well-formed
/// tasks (the messages are pinned by `tests/spec_errors.rs` and the lint tests).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaseError {
    #[error("`id` is empty")]
    EmptyId,
    #[error("`claim` is empty")]
    EmptyClaim,
    #[error("`cite` needs at least one citation: every claim has evidence")]
    NoCitation,
    #[error("`tags` must contain exactly one of `contract` and `quirk`")]
    KindTag,
    #[error("`steps` is empty")]
    NoSteps,
    #[error("`pool.initargs` needs `pool.initializer`")]
    InitargsWithoutInitializer,
    #[error("`pool.uncallable_initializer` replaces `pool.initializer`; give one")]
    TwoInitializers,
    #[error("`pool.maxtasksperchild`: leave it out for unlimited; give a number or string")]
    MaxtasksperchildType,
    #[error("`pool.context`: unknown start method `{method}` (known: {})", START_METHODS.join(", "))]
    UnknownStartMethod { method: String },
    #[error("`versions.{language}`: {source}")]
    Versions {
        language: String,
        #[source]
        source: VersionError,
    },
    #[error("`expect` must be a map (a partial observation)")]
    ExpectNotAMap,
    #[error("gate `{gate}`: `when_waiting` must be at least 1")]
    EmptyBarrier { gate: String },
    #[error("an `order` probe needs at least two events")]
    ShortOrder,
    #[error("`args` is only for starmap, not {op}")]
    ArgsNotStarmap { op: &'static str },
    #[error("starmap `args` must have one entry per task")]
    StarmapArgs,
    #[error("unknown exception type `{kind}` (registered: {})", ERROR_TYPES.join(", "))]
    UnknownErrorType { kind: String },
    #[error("`apply` takes no callbacks")]
    ApplyCallbacks,
    #[error("`unserializable_item` is for the map family; apply takes `unserializable_arg`")]
    UnserializableItemInApply,
    #[error("`kwargs`: `{name}` is not an identifier")]
    NotAnIdentifier { name: String },
    #[error(
        "task {task}: give at most one of returns, echo, echo_all, echo_initargs, blob, \
         inherited, raises, exit, unserializable"
    )]
    Endings { task: String },
}

/// Checks what serde cannot: required content, registered names, and well-formed tasks.
/// References between ids are checked by [`super::program::compile`].
pub fn check_case(case: &Case) -> Result<(), Box<Located<CaseError>>> {
    let root = YamlPath::default();
    let fail = |error: CaseError, at: YamlPath| Err(Located::new(error, at));
    if case.id.trim().is_empty() {
        return fail(CaseError::EmptyId, root.key("id"));
    }
    if case.claim.trim().is_empty() {
        return fail(CaseError::EmptyClaim, root.key("claim"));
    }
    if case.cite.is_empty() {
        return fail(CaseError::NoCitation, root.key("cite"));
    }
    let kinds = case
        .tags
        .iter()
        .filter(|t| *t == "contract" || *t == "quirk")
        .count();
    if kinds != 1 {
        return fail(CaseError::KindTag, root.key("tags"));
    }
    if case.steps.is_empty() {
        return fail(CaseError::NoSteps, root.key("steps"));
    }
    check_pool(&case.pool)
        .map_err(|(error, key)| Located::new(error, root.key("pool").key(key)))?;
    for (language, range) in &case.versions {
        crate::versions::Range::parse(range).map_err(|source| {
            Located::new(
                CaseError::Versions {
                    language: language.clone(),
                    source,
                },
                root.key("versions").key(language),
            )
        })?;
    }
    if !case.expect.is_object() {
        return fail(CaseError::ExpectNotAMap, root.key("expect"));
    }
    for (name, rule) in &case.gates {
        if let GateRule::WhenWaiting(Count::N(0)) = rule {
            return fail(
                CaseError::EmptyBarrier { gate: name.clone() },
                root.key("gates").key(name).key("when_waiting"),
            );
        }
    }
    for (p, probe) in case.observe.iter().enumerate() {
        if let Probe::Order { events, .. } = probe
            && events.len() < 2
        {
            return fail(
                CaseError::ShortOrder,
                root.key("observe").index(p).key("order").key("events"),
            );
        }
    }
    let mut tasks: Vec<(&TaskSpec, YamlPath)> = Vec::new();
    for (index, step) in case.steps.iter().enumerate() {
        let at = step_path(index, step.op());
        match step {
            Step::Apply(s) | Step::ApplyAsync(s) => tasks.push((&s.task, at.key("task"))),
            Step::Map(m)
            | Step::MapAsync(m)
            | Step::Imap(m)
            | Step::ImapUnordered(m)
            | Step::Starmap(m)
            | Step::StarmapAsync(m) => {
                let star = matches!(step, Step::Starmap(_) | Step::StarmapAsync(_));
                if !star && !m.args.is_empty() {
                    return fail(
                        CaseError::ArgsNotStarmap { op: step.op() },
                        at.the_key("args"),
                    );
                }
                if star && !m.args.is_empty() && m.args.len() != m.tasks.len() {
                    return fail(CaseError::StarmapArgs, at.key("args"));
                }
                if let Some(err) = &m.then_raise {
                    check_error_type(err)
                        .map_err(|e| Located::new(e, at.key("then_raise").key("type")))?;
                }
                for (k, t) in m.tasks.iter().enumerate() {
                    tasks.push((t, at.key("tasks").index(k)));
                }
            }
            _ => {}
        }
        if let Step::Apply(s) = step
            && (s.callback.is_some() || s.error_callback.is_some())
        {
            let key = if s.callback.is_some() {
                "callback"
            } else {
                "error_callback"
            };
            return fail(CaseError::ApplyCallbacks, at.the_key(key));
        }
        if let Step::Apply(s) | Step::ApplyAsync(s) = step {
            if let TaskSpec::Full(t) = &s.task
                && t.unserializable_item
            {
                return fail(
                    CaseError::UnserializableItemInApply,
                    at.key("task").the_key("unserializable_item"),
                );
            }
            for name in s.kwargs.keys() {
                let ident = name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_')
                    && name.chars().all(|c| c.is_alphanumeric() || c == '_');
                if !ident {
                    return fail(
                        CaseError::NotAnIdentifier { name: name.clone() },
                        at.key("kwargs").the_key(name),
                    );
                }
            }
        }
    }
    let initializer = case.pool.initializer.clone().map(TaskSpec::Full);
    let init_at = root.key("pool").key("initializer");
    for (spec, at) in tasks
        .into_iter()
        .chain(initializer.as_ref().map(|i| (i, init_at)))
    {
        let TaskSpec::Full(task) = spec else { continue };
        if task.endings() > 1 {
            return fail(
                CaseError::Endings {
                    task: task.id.clone().unwrap_or_else(|| "(unnamed)".to_owned()),
                },
                at,
            );
        }
        if let Some(err) = &task.raises {
            check_error_type(err).map_err(|e| Located::new(e, at.key("raises").key("type")))?;
        }
    }
    Ok(())
}

/// The construction parameters a case may pass. Values a pool must refuse are allowed (their
/// refusal is the observation); combinations that mean nothing are not. The error names the
/// key of `pool` it is about.
fn check_pool(pool: &PoolParams) -> Result<(), (CaseError, &'static str)> {
    if !pool.initargs.is_empty() && pool.initializer.is_none() {
        return Err((CaseError::InitargsWithoutInitializer, "initargs"));
    }
    if pool.uncallable_initializer && pool.initializer.is_some() {
        return Err((CaseError::TwoInitializers, "uncallable_initializer"));
    }
    if let Some(Scalar::Null | Scalar::Bool(_)) = &pool.maxtasksperchild {
        return Err((CaseError::MaxtasksperchildType, "maxtasksperchild"));
    }
    if let Some(m) = &pool.context
        && !START_METHODS.contains(&m.as_str())
    {
        return Err((
            CaseError::UnknownStartMethod { method: m.clone() },
            "context",
        ));
    }
    Ok(())
}

fn check_error_type(err: &ErrorSpec) -> Result<(), CaseError> {
    if ERROR_TYPES.contains(&err.kind.as_str()) {
        Ok(())
    } else {
        Err(CaseError::UnknownErrorType {
            kind: err.kind.clone(),
        })
    }
}
