//! Parameters a person gives a build from the shell or the API (`ocelot build --env KEY=VALUE
//! --force --stage NAME`): what they are, their limits, and the one check every entry point
//! (CLI, admin) runs. They are recorded with the build and shown in clear: never secrets.

use std::collections::BTreeMap;

/// The most `--env` parameters one build takes.
pub const MAX_ENV_PARAMS: usize = 64;
/// The largest `KEY=VALUE` of one parameter, in bytes.
pub const MAX_ENV_PARAM_BYTES: usize = 4096;

/// The variables Ocelot sets in every build (besides every `OCELOT_*` name): a parameter
/// may not take their place.
pub const RESERVED_NAMES: &[&str] = &[
    "BUILD_ID",
    "BUILD_NUMBER",
    "GIT_HASH",
    "GIT_HASH_SHORT",
    "GIT_BRANCH",
    "GIT_TAG",
    "GIT_PREVIOUS_SUCCESSFUL_COMMIT",
    "WORKSPACE",
    "CI",
    "OCELOT",
];

/// The prefix of the variables Ocelot keeps for itself (`OCELOT_REPO`, `OCELOT_PR_NUMBER`, ...).
pub const RESERVED_PREFIX: &str = "OCELOT_";

/// What a build was asked to do besides its commit: the defaults are those of a plain build.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildParams {
    /// `--env KEY=VALUE`: in every stage's environment, after the file's `env`.
    pub env: BTreeMap<String, String>,
    /// `--force`: runs even when `branches` in `ocelot.yml` does not match the branch.
    pub force: bool,
    /// `--stage NAME`: only that stage and the stages it needs run.
    pub stage: Option<String>,
}

/// A parameter that is refused, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("--env `{0}` is not of the form KEY=VALUE")]
    NotKeyValue(String),
    #[error(
        "--env `{0}`: `{0}` is not an environment variable name (letters, digits and `_`, not starting with a digit)"
    )]
    BadName(String),
    #[error("--env `{0}`: Ocelot sets `{0}` itself in every build; choose another name")]
    Reserved(String),
    #[error(
        "--env `{0}`: names starting with `OCELOT_` are Ocelot's own variables; choose another name"
    )]
    ReservedPrefix(String),
    #[error("--env `{name}`: its value holds a NUL character, which no environment variable can")]
    Nul { name: String },
    #[error("--env `{name}` is {bytes} bytes long; a parameter may be at most {max} bytes (KEY=VALUE)", max = MAX_ENV_PARAM_BYTES)]
    TooLong { name: String, bytes: usize },
    #[error("--env `{0}` is given twice; give each name once")]
    Duplicate(String),
    #[error("{0} --env parameters given; a build takes at most {max}", max = MAX_ENV_PARAMS)]
    TooMany(usize),
}

/// True for a name a variable may have: `[A-Za-z_][A-Za-z0-9_]*` (the rule of `env` in
/// `ocelot.yml` and of `env` credentials).
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Splits one `KEY=VALUE` at its first `=` and checks it (see [`check_env_param`]).
pub fn parse_env_param(text: &str) -> Result<(String, String), ParamError> {
    let Some((name, value)) = text.split_once('=') else {
        return Err(ParamError::NotKeyValue(text.to_string()));
    };
    check_env_param(name, value)?;
    Ok((name.to_string(), value.to_string()))
}

/// Checks one parameter: a variable name that is not Ocelot's, a value without NUL, and
/// `KEY=VALUE` within [`MAX_ENV_PARAM_BYTES`].
pub fn check_env_param(name: &str, value: &str) -> Result<(), ParamError> {
    if !is_env_name(name) {
        return Err(ParamError::BadName(name.to_string()));
    }
    if name.starts_with(RESERVED_PREFIX) {
        return Err(ParamError::ReservedPrefix(name.to_string()));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(ParamError::Reserved(name.to_string()));
    }
    if value.contains('\0') {
        return Err(ParamError::Nul {
            name: name.to_string(),
        });
    }
    let bytes = name.len() + 1 + value.len();
    if bytes > MAX_ENV_PARAM_BYTES {
        return Err(ParamError::TooLong {
            name: name.to_string(),
            bytes,
        });
    }
    Ok(())
}

/// Checks a whole list of parameters (each one, no name twice, at most [`MAX_ENV_PARAMS`])
/// and returns them by name.
pub fn env_params<I, K, V>(pairs: I) -> Result<BTreeMap<String, String>, ParamError>
where
    I: IntoIterator<Item = (K, V)>,
    K: Into<String>,
    V: Into<String>,
{
    let mut env = BTreeMap::new();
    let mut count = 0usize;
    for (name, value) in pairs {
        let (name, value): (String, String) = (name.into(), value.into());
        count += 1;
        check_env_param(&name, &value)?;
        if env.contains_key(&name) {
            return Err(ParamError::Duplicate(name));
        }
        env.insert(name, value);
    }
    if count > MAX_ENV_PARAMS {
        return Err(ParamError::TooMany(count));
    }
    Ok(env)
}

/// Checks a `--stage` name: `None` for an empty one given as "no stage" (the API's empty
/// string), the name otherwise. Whether the stage exists is up to the build's `ocelot.yml`.
pub fn stage_param(stage: &str) -> Option<String> {
    let stage = stage.trim();
    (!stage.is_empty()).then(|| stage.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_splits_at_the_first_equals_sign() {
        assert_eq!(
            parse_env_param("GREETING=a=b").unwrap(),
            ("GREETING".to_string(), "a=b".to_string())
        );
        assert_eq!(
            parse_env_param("EMPTY=").unwrap(),
            ("EMPTY".to_string(), String::new())
        );
        assert_eq!(
            parse_env_param("NOVALUE"),
            Err(ParamError::NotKeyValue("NOVALUE".into()))
        );
    }

    #[test]
    fn names_follow_the_variable_rules_and_ocelots_are_refused() {
        assert_eq!(
            parse_env_param("1ABC=x"),
            Err(ParamError::BadName("1ABC".into()))
        );
        assert_eq!(
            parse_env_param("A-B=x"),
            Err(ParamError::BadName("A-B".into()))
        );
        assert_eq!(parse_env_param("=x"), Err(ParamError::BadName("".into())));
        assert_eq!(
            parse_env_param("OCELOT_REPO=x"),
            Err(ParamError::ReservedPrefix("OCELOT_REPO".into()))
        );
        assert_eq!(
            parse_env_param("GIT_BRANCH=x"),
            Err(ParamError::Reserved("GIT_BRANCH".into()))
        );
        assert!(parse_env_param("_private=x").is_ok());
        let message = parse_env_param("OCELOT_X=1").unwrap_err().to_string();
        assert!(message.contains("OCELOT_X"), "{message}");
    }

    #[test]
    fn values_are_limited_in_size_and_may_hold_no_nul() {
        let at_limit = format!("K={}", "v".repeat(MAX_ENV_PARAM_BYTES - 2));
        assert!(parse_env_param(&at_limit).is_ok());
        let over = format!("K={}", "v".repeat(MAX_ENV_PARAM_BYTES - 1));
        assert_eq!(
            parse_env_param(&over),
            Err(ParamError::TooLong {
                name: "K".into(),
                bytes: MAX_ENV_PARAM_BYTES + 1
            })
        );
        assert_eq!(
            parse_env_param("K=a\0b"),
            Err(ParamError::Nul { name: "K".into() })
        );
        assert!(parse_env_param("K=two\nlines").is_ok());
    }

    #[test]
    fn a_list_takes_each_name_once_and_at_most_the_limit() {
        let env = env_params([("B", "2"), ("A", "1")]).unwrap();
        assert_eq!(env.into_iter().collect::<Vec<_>>().len(), 2);
        assert_eq!(
            env_params([("A", "1"), ("A", "2")]),
            Err(ParamError::Duplicate("A".into()))
        );
        let many: Vec<(String, String)> = (0..=MAX_ENV_PARAMS)
            .map(|i| (format!("P{i}"), "x".to_string()))
            .collect();
        assert_eq!(
            env_params(many),
            Err(ParamError::TooMany(MAX_ENV_PARAMS + 1))
        );
    }

    #[test]
    fn an_empty_stage_is_no_stage() {
        assert_eq!(stage_param(""), None);
        assert_eq!(stage_param(" test "), Some("test".to_string()));
    }
}
