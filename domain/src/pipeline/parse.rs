//! The `ocelot.yml` schema: turns the YAML tree into a [`Pipeline`],
//! checking every rule and reporting every problem found.

use std::collections::HashMap;

use marked_yaml::Node;

use super::artifacts::{ArtifactPattern, ArtifactWhen, Artifacts};
use super::cache::{Cache, KeyTemplate, MAX_CACHES};
use super::condition::TriggerExpr;
use super::error::{PipelineError, PipelineErrors, did_you_mean};
use super::graph::{NeedAt, check_needs};
use super::matrix::{MAX_MATRIX_JOBS, MatrixSpec, expand, read_matrix};
use super::model::{
    BranchPattern, EmailNotify, EnvVar, Notify, NotifyOn, Pipeline, SlackNotify, Stage,
    StageCondition, WebhookNotify,
};
use super::reader::{Cx, Field, Fields, Pos, load};
use super::resources::{Resources, parse_cpus, parse_memory, parse_pids};

const TOP_FIELDS: [&str; 11] = [
    "image",
    "machineTag",
    "buildTool",
    "branches",
    "env",
    "stages",
    "timeout",
    "notify",
    "resources",
    "cache",
    "services",
];
const STAGE_FIELDS: [&str; 9] = [
    "name",
    "script",
    "env",
    "trigger",
    "triggers",
    "timeout",
    "artifacts",
    "needs",
    "matrix",
];
const ARTIFACTS_FIELDS: [&str; 3] = ["paths", "when", "expire_in"];
const CACHE_FIELDS: [&str; 3] = ["key", "paths", "restore_keys"];
const TRIGGER_FIELDS: [&str; 1] = ["branches"];
const NOTIFY_FIELDS: [&str; 3] = ["slack", "webhook", "email"];
const SLACK_FIELDS: [&str; 3] = ["identifier", "channel", "on"];
const WEBHOOK_FIELDS: [&str; 2] = ["identifier", "on"];
const EMAIL_FIELDS: [&str; 3] = ["identifier", "to", "on"];
const RESOURCES_FIELDS: [&str; 3] = ["memory", "cpus", "pids"];

/// Parses and validates the text of an `ocelot.yml`.
///
/// On failure, every problem in the file is returned, sorted by position.
pub fn parse(text: &str) -> Result<Pipeline, PipelineErrors> {
    let root = load(text).map_err(|e| PipelineErrors(vec![e]))?;
    let mut cx = Cx::default();
    let pipeline = read_pipeline(&mut cx, &root);
    match pipeline {
        Some(p) if cx.errors.is_empty() => Ok(p),
        _ => {
            let mut errors = cx.errors;
            if errors.is_empty() {
                // Defensive: a missing value is always reported, but never
                // return an empty error list.
                errors.push(PipelineError::new(1, 1, "", "invalid build file", None));
            }
            errors.sort_by_key(|e| (e.line, e.column));
            Err(PipelineErrors(errors))
        }
    }
}

fn read_pipeline(cx: &mut Cx, root: &Node) -> Option<Pipeline> {
    let Some(map) = root.as_mapping() else {
        cx.error(
            Pos::of_span(root.span()),
            "",
            "the top level must be a mapping of fields (`image: ...`, `stages: ...`)",
        );
        return None;
    };
    if map.is_empty() {
        cx.error_hint(
            Pos::START,
            "",
            "the build file is empty",
            Some("it needs `image` or `machineTag`, and `stages`".to_string()),
        );
        return None;
    }
    let fields = Fields::read(cx, map, "", &TOP_FIELDS);

    let image = fields.get("image").and_then(|f| f.non_empty_string(cx));
    let machine_tag = fields
        .get("machineTag")
        .and_then(|f| f.non_empty_string(cx));
    if fields.get("image").is_none() && fields.get("machineTag").is_none() {
        let pos = fields
            .key_pos("image")
            .or_else(|| fields.key_pos("machineTag"))
            .unwrap_or(fields.pos);
        cx.error(
            pos,
            "image",
            "missing; one of `image` (a Docker image) or `machineTag` (a build machine) is required",
        );
    }
    let build_tool = fields.get("buildTool").and_then(|f| f.string(cx));
    let branches = fields
        .get("branches")
        .map(|f| branch_list(cx, f))
        .unwrap_or_default();
    let env = fields
        .get("env")
        .map(|f| env_list(cx, f))
        .unwrap_or_default();
    let timeout = fields.get("timeout").and_then(|f| f.duration(cx));
    let notify = fields.get("notify").and_then(|f| read_notify(cx, f));
    let resources = fields
        .get("resources")
        .and_then(|f| read_resources(cx, f))
        .unwrap_or_default();
    let cache = fields
        .get("cache")
        .and_then(|f| read_caches(cx, f))
        .unwrap_or_default();
    let services = fields
        .get("services")
        .and_then(|f| super::services::read_services(cx, f))
        .unwrap_or_default();
    let stages = fields
        .require(cx, "stages", "at least one stage")
        .and_then(|f| read_stages(cx, f));

    Some(Pipeline {
        image,
        machine_tag,
        build_tool,
        branches,
        env,
        stages: stages?,
        timeout,
        notify,
        resources,
        cache,
        services,
    })
}

/// `branches` lists (top level and legacy `trigger.branches`).
fn branch_list(cx: &mut Cx, field: &Field<'_>) -> Vec<BranchPattern> {
    let items = field
        .string_list(cx, "a list of branch regexes")
        .unwrap_or_default();
    let mut out = Vec::new();
    for (item, text) in items {
        match BranchPattern::parse(&text) {
            Ok(p) => out.push(p),
            Err(message) => {
                let hint = glob_hint(&text);
                cx.error_hint(item.pos, &item.path, message, hint);
            }
        }
    }
    out
}

/// Branch patterns are regexes; a glob like `release/*` is a common mistake.
fn glob_hint(text: &str) -> Option<String> {
    (text.starts_with('*') || text.contains("/*") || text == "all").then(|| {
        if text == "all" {
            "write `ALL` in capitals to match every branch".to_string()
        } else {
            format!(
                "branch patterns are regexes, not globs: try `{}`",
                text.replace(".*", "*").replace('*', ".*")
            )
        }
    })
}

/// `env: ["KEY=value", ...]`.
fn env_list(cx: &mut Cx, field: &Field<'_>) -> Vec<EnvVar> {
    let items = field
        .string_list(cx, "a list of `KEY=value` strings")
        .unwrap_or_default();
    let mut out = Vec::new();
    for (item, text) in items {
        match EnvVar::parse(&text) {
            Ok(var) => out.push(var),
            Err(message) => cx.error(item.pos, &item.path, message),
        }
    }
    out
}

fn read_stages(cx: &mut Cx, field: &Field<'_>) -> Option<Vec<Stage>> {
    let items = field.list(cx, "a list of stages")?;
    if items.is_empty() {
        cx.error(field.pos, &field.path, "at least one stage is required");
        return None;
    }
    let mut names: HashMap<String, Pos> = HashMap::new();
    let mut stages = Vec::new();
    let mut needs = Vec::new();
    let mut matrices = Vec::new();
    let mut all_ok = true;
    for item in &items {
        match read_stage(cx, item, &mut names) {
            Some((stage, stage_needs, matrix)) => {
                stages.push(stage);
                needs.push(stage_needs);
                matrices.push(matrix);
            }
            None => all_ok = false,
        }
    }
    if !all_ok {
        return None;
    }
    let stage_names: Vec<String> = stages.iter().map(|s| s.name.clone()).collect();
    if !check_needs(cx, &stage_names, &needs) {
        return None;
    }
    let jobs: usize = matrices
        .iter()
        .map(|m| m.as_ref().map_or(0, |m| m.combinations().len()))
        .sum();
    if jobs > MAX_MATRIX_JOBS {
        cx.error(
            field.pos,
            &field.path,
            format!("the matrices make {jobs} jobs; a file may make at most {MAX_MATRIX_JOBS}"),
        );
        return None;
    }
    Some(expand(stages, matrices))
}

fn read_stage(
    cx: &mut Cx,
    item: &Field<'_>,
    names: &mut HashMap<String, Pos>,
) -> Option<(Stage, Vec<NeedAt>, Option<MatrixSpec>)> {
    let map = item.mapping(cx, "a stage (a mapping with `name` and `script`)")?;
    let fields = Fields::read(cx, map, &item.path, &STAGE_FIELDS);

    let name = fields.require(cx, "name", "a stage name").and_then(|f| {
        let name = f.non_empty_string(cx)?;
        if let Some(first) = names.get(&name) {
            cx.error_hint(
                f.pos,
                &f.path,
                format!("duplicate stage name `{name}`"),
                Some(format!("first used at line {}", first.line)),
            );
            return None;
        }
        names.insert(name.clone(), f.pos);
        Some(name)
    });

    let script = fields
        .require(cx, "script", "a list of commands")
        .and_then(|f| read_script(cx, f));
    let env = fields
        .get("env")
        .map(|f| env_list(cx, f))
        .unwrap_or_default();
    let timeout = fields.get("timeout").and_then(|f| f.duration(cx));
    let condition = read_condition(cx, &fields);
    let artifacts = match fields.get("artifacts") {
        Some(f) => Some(read_artifacts(cx, f)?),
        None => None,
    };
    let matrix = match fields.get("matrix") {
        Some(f) => Some(read_matrix(cx, f)?),
        None => None,
    };
    let needs = match fields.get("needs") {
        Some(f) => Some(read_needs(cx, f, name.as_deref())?),
        // `needs:` with nothing after it, like `needs: []`
        None if fields.key_pos("needs").is_some() => Some(Vec::new()),
        None => None,
    };

    let stage = Stage {
        name: name?,
        script: script?,
        env,
        timeout,
        condition: condition?,
        artifacts,
        needs: needs
            .as_ref()
            .map(|needs| needs.iter().map(|need| need.name.clone()).collect()),
        matrix: None,
    };
    Some((stage, needs.unwrap_or_default(), matrix))
}

/// `needs: [build, lint]`: names of stages (checked against the stages once all are read),
/// none twice, never the stage itself.
fn read_needs(cx: &mut Cx, field: &Field<'_>, stage: Option<&str>) -> Option<Vec<NeedAt>> {
    let errors_before = cx.errors.len();
    let items = field.string_list(cx, "a list of stage names")?;
    let mut needs: Vec<NeedAt> = Vec::new();
    for (item, text) in items {
        let name = text.trim().to_string();
        if name.is_empty() {
            cx.error(item.pos, &item.path, "must not be empty");
        } else if Some(name.as_str()) == stage {
            cx.error_hint(
                item.pos,
                &item.path,
                format!("stage `{name}` needs itself"),
                Some("a stage can only need other stages".to_string()),
            );
        } else if let Some(first) = needs.iter().find(|need| need.name == name) {
            cx.error_hint(
                item.pos,
                &item.path,
                format!("`{name}` is listed twice"),
                Some(format!("first listed at line {}", first.pos.line)),
            );
        } else {
            needs.push(NeedAt {
                name,
                pos: item.pos,
                path: item.path.clone(),
            });
        }
    }
    (cx.errors.len() == errors_before).then_some(needs)
}

fn read_script(cx: &mut Cx, field: &Field<'_>) -> Option<Vec<String>> {
    let items = field.list(cx, "a list of commands")?;
    if items.is_empty() {
        cx.error(field.pos, &field.path, "at least one command is required");
        return None;
    }
    let mut script = Vec::new();
    let mut ok = true;
    for item in items {
        match item.string(cx) {
            Some(command) if !command.trim().is_empty() => script.push(command),
            Some(_) => {
                cx.error(item.pos, &item.path, "empty command");
                ok = false;
            }
            None => ok = false,
        }
    }
    ok.then_some(script)
}

/// `trigger` (legacy branches) or `triggers` (condition lines), not both.
fn read_condition(cx: &mut Cx, fields: &Fields<'_>) -> Option<StageCondition> {
    let legacy = fields.get("trigger");
    let lines = fields.get("triggers");
    if let (Some(_), Some(lines)) = (legacy, lines) {
        let pos = fields.key_pos("triggers").unwrap_or(lines.pos);
        cx.error_hint(
            pos,
            &lines.path,
            "a stage cannot have both `trigger` and `triggers`",
            Some("move the branches into a `\\branch` section of a `triggers` line".to_string()),
        );
        return None;
    }
    if let Some(field) = legacy {
        return read_legacy_trigger(cx, field).map(StageCondition::Branches);
    }
    if let Some(field) = lines {
        return read_triggers(cx, field).map(StageCondition::Triggers);
    }
    Some(StageCondition::Always)
}

fn read_legacy_trigger(cx: &mut Cx, field: &Field<'_>) -> Option<Vec<BranchPattern>> {
    let Node::Mapping(map) = field.node else {
        let hint = matches!(field.node, Node::Scalar(_) | Node::Sequence(_))
            .then(|| "for condition lines like `\\branch master`, use `triggers:`".to_string());
        cx.error_hint(
            field.pos,
            &field.path,
            format!(
                "expected a mapping like `{{ branches: [master] }}`, found {}",
                super::reader::describe(field.node)
            ),
            hint,
        );
        return None;
    };
    let fields = Fields::read(cx, map, &field.path, &TRIGGER_FIELDS);
    let branches = fields.require(cx, "branches", "a list of branch regexes")?;
    let errors_before = cx.errors.len();
    let patterns = branch_list(cx, branches);
    if cx.errors.len() > errors_before {
        return None;
    }
    if patterns.is_empty() {
        cx.error(
            branches.pos,
            &branches.path,
            "at least one branch is required",
        );
        return None;
    }
    Some(patterns)
}

fn read_triggers(cx: &mut Cx, field: &Field<'_>) -> Option<Vec<TriggerExpr>> {
    let errors_before = cx.errors.len();
    let items = field.string_list(cx, "a list of trigger lines")?;
    let mut exprs = Vec::new();
    for (item, text) in &items {
        match TriggerExpr::parse(text) {
            Ok(expr) => exprs.push(expr),
            Err(err) => {
                let hint = escape_hint(text).or(err.hint);
                cx.error_hint(item.pos, &item.path, err.message, hint);
            }
        }
    }
    if cx.errors.len() > errors_before {
        return None;
    }
    if exprs.is_empty() {
        cx.error_hint(
            field.pos,
            &field.path,
            "at least one trigger line is required",
            Some("remove `triggers` to run the stage on every build".to_string()),
        );
        return None;
    }
    Some(exprs)
}

/// In double quotes, `"\branch"` starts with the escape `\b`, `"\text"` with a
/// tab and `"\filepath"` with a form feed.
fn escape_hint(text: &str) -> Option<String> {
    matches!(text.chars().next(), Some('\u{8}' | '\t' | '\u{c}')).then(|| {
        "in double quotes a backslash starts an escape: write the line unquoted or in single quotes"
            .to_string()
    })
}

/// `artifacts: {paths: [...], when: on_success, expire_in: 7d}`, or just the list of paths.
fn read_artifacts(cx: &mut Cx, field: &Field<'_>) -> Option<Artifacts> {
    if let Node::Sequence(_) = field.node {
        let paths = artifact_paths(cx, field)?;
        return Some(Artifacts {
            paths,
            when: ArtifactWhen::OnSuccess,
            expire_in: None,
        });
    }
    let map = field.mapping(
        cx,
        "a mapping like `{paths: [target/app], when: on_success, expire_in: 7d}`",
    )?;
    let fields = Fields::read(cx, map, &field.path, &ARTIFACTS_FIELDS);
    let paths = fields
        .require(cx, "paths", "a list of files, directories or globs")
        .and_then(|f| artifact_paths(cx, f));
    let when = match fields.get("when") {
        None => Some(ArtifactWhen::OnSuccess),
        Some(f) => f.string(cx).and_then(|text| {
            let when = ArtifactWhen::parse(text.trim());
            if when.is_none() {
                cx.error_hint(
                    f.pos,
                    &f.path,
                    format!("unknown `{text}`; expected `on_success`, `on_failure` or `always`"),
                    did_you_mean(&text, &ArtifactWhen::NAMES),
                );
            }
            when
        }),
    };
    let expire_in = match fields.get("expire_in") {
        None => Some(None),
        Some(f) => f.duration(cx).map(Some),
    };
    Some(Artifacts {
        paths: paths?,
        when: when?,
        expire_in: expire_in?,
    })
}

/// `cache: {key: ..., paths: [...], restore_keys: [...]}`, or a list of them.
fn read_caches(cx: &mut Cx, field: &Field<'_>) -> Option<Vec<Cache>> {
    let caches: Vec<Cache> = match field.node {
        Node::Sequence(_) => {
            let items = field.list(cx, "a list of caches")?;
            let read: Vec<Option<Cache>> = items.iter().map(|item| read_cache(cx, item)).collect();
            read.into_iter().collect::<Option<Vec<Cache>>>()?
        }
        _ => vec![read_cache(cx, field)?],
    };
    if caches.is_empty() {
        cx.error(field.pos, &field.path, "at least one cache is required");
        return None;
    }
    if caches.len() > MAX_CACHES {
        cx.error(
            field.pos,
            &field.path,
            format!(
                "{} caches; a build keeps at most {MAX_CACHES}",
                caches.len()
            ),
        );
        return None;
    }
    Some(caches)
}

fn read_cache(cx: &mut Cx, field: &Field<'_>) -> Option<Cache> {
    let map = field.mapping(
        cx,
        "a mapping like `{key: 'cargo-{{ checksum \"Cargo.lock\" }}', paths: [target]}`",
    )?;
    let fields = Fields::read(cx, map, &field.path, &CACHE_FIELDS);
    let key = fields
        .require(
            cx,
            "key",
            "a key such as `cargo-{{ checksum \"Cargo.lock\" }}`",
        )
        .and_then(|f| key_template(cx, f));
    let paths = fields
        .require(cx, "paths", "a list of files, directories or globs")
        .and_then(|f| artifact_paths(cx, f));
    let restore_keys = match fields.get("restore_keys") {
        None => Some(Vec::new()),
        Some(f) => {
            let items = f.list(cx, "a list of key prefixes")?;
            let read: Vec<Option<KeyTemplate>> =
                items.iter().map(|item| key_template(cx, item)).collect();
            read.into_iter().collect::<Option<Vec<_>>>()
        }
    };
    Some(Cache {
        key: key?,
        paths: paths?,
        restore_keys: restore_keys?,
    })
}

/// A cache key template; a value YAML read as a mapping (an unquoted `{{`) gets a hint.
fn key_template(cx: &mut Cx, field: &Field<'_>) -> Option<KeyTemplate> {
    if let Node::Mapping(_) = field.node {
        cx.error_hint(
            field.pos,
            &field.path,
            "expected a key, found a mapping",
            Some("YAML reads a value starting with `{` as a mapping: quote the key, e.g. `key: '{{ branch }}-deps'`".to_string()),
        );
        return None;
    }
    let text = field.string(cx)?;
    match KeyTemplate::parse(&text) {
        Ok(template) => Some(template),
        Err(message) => {
            cx.error(field.pos, &field.path, message);
            None
        }
    }
}

fn artifact_paths(cx: &mut Cx, field: &Field<'_>) -> Option<Vec<ArtifactPattern>> {
    let errors_before = cx.errors.len();
    let items = field.string_list(cx, "a list of files, directories or globs")?;
    let mut paths = Vec::new();
    for (item, text) in items {
        match ArtifactPattern::parse(&text) {
            Ok(pattern) => paths.push(pattern),
            Err(message) => cx.error(item.pos, &item.path, message),
        }
    }
    if cx.errors.len() > errors_before {
        return None;
    }
    if paths.is_empty() {
        cx.error(field.pos, &field.path, "at least one path is required");
        return None;
    }
    Some(paths)
}

/// `resources: {memory: 512m, cpus: 0.5, pids: 128}`: each optional, each only lowers the
/// worker's limit.
pub(super) fn read_resources(cx: &mut Cx, field: &Field<'_>) -> Option<Resources> {
    let map = field.mapping(cx, "a mapping like `{memory: 512m, cpus: 0.5, pids: 128}`")?;
    let fields = Fields::read(cx, map, &field.path, &RESOURCES_FIELDS);
    let mut value = |name: &str, parse: fn(&str) -> Result<u64, String>| {
        let field = fields.get(name)?;
        let text = field.string(cx)?;
        parse(&text)
            .map_err(|message| cx.error(field.pos, &field.path, message))
            .ok()
    };
    Some(Resources {
        memory: value("memory", parse_memory),
        nano_cpus: value("cpus", parse_cpus),
        pids: value("pids", parse_pids),
    })
}

fn read_notify(cx: &mut Cx, field: &Field<'_>) -> Option<Notify> {
    let map = field.mapping(cx, "a mapping (`slack:`, `webhook:`, `email:`)")?;
    let fields = Fields::read(cx, map, &field.path, &NOTIFY_FIELDS);
    let slack = fields.get("slack").and_then(|f| read_slack(cx, f));
    let webhook = fields.get("webhook").and_then(|f| read_webhook(cx, f));
    let email = fields.get("email").and_then(|f| read_email(cx, f));
    Some(Notify {
        slack,
        webhook,
        email,
    })
}

/// `identifier` (a `notify` credential's name) and `on` of a notify target.
fn read_identifier_and_on(
    cx: &mut Cx,
    fields: &Fields<'_>,
    what: &str,
) -> (Option<String>, Option<Vec<NotifyOn>>) {
    let identifier = fields
        .require(
            cx,
            "identifier",
            &format!("the name of the `notify` credential of the {what}"),
        )
        .and_then(|f| f.non_empty_string(cx));
    let on = fields
        .get("on")
        .map_or(Some(NotifyOn::DEFAULT.to_vec()), |f| read_notify_on(cx, f));
    (identifier, on)
}

fn read_slack(cx: &mut Cx, field: &Field<'_>) -> Option<SlackNotify> {
    let map = field.mapping(cx, "a mapping with `identifier`, `channel` and `on`")?;
    let fields = Fields::read(cx, map, &field.path, &SLACK_FIELDS);
    let (identifier, on) = read_identifier_and_on(cx, &fields, "Slack webhook");
    let channel = fields
        .get("channel")
        .map_or(Some(String::new()), |f| f.string(cx));
    Some(SlackNotify {
        identifier: identifier?,
        channel: channel?,
        on: on?,
    })
}

fn read_webhook(cx: &mut Cx, field: &Field<'_>) -> Option<WebhookNotify> {
    let map = field.mapping(cx, "a mapping with `identifier` and `on`")?;
    let fields = Fields::read(cx, map, &field.path, &WEBHOOK_FIELDS);
    let (identifier, on) = read_identifier_and_on(cx, &fields, "webhook");
    Some(WebhookNotify {
        identifier: identifier?,
        on: on?,
    })
}

fn read_email(cx: &mut Cx, field: &Field<'_>) -> Option<EmailNotify> {
    let map = field.mapping(cx, "a mapping with `identifier`, `to` and `on`")?;
    let fields = Fields::read(cx, map, &field.path, &EMAIL_FIELDS);
    let (identifier, on) = read_identifier_and_on(cx, &fields, "SMTP server");
    let to = fields.get("to").map_or(Some(Vec::new()), |f| {
        let items = f.string_list(cx, "a list of e-mail addresses")?;
        let mut out = Vec::new();
        let mut ok = true;
        for (item, text) in items {
            let address = text.trim();
            let valid = address
                .split_once('@')
                .is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.'))
                && !address.contains(|c: char| c.is_whitespace() || c.is_control() || c == ',');
            if valid {
                out.push(address.to_string());
            } else {
                ok = false;
                cx.error(
                    item.pos,
                    &item.path,
                    format!("`{text}` is not an e-mail address (user@domain.example)"),
                );
            }
        }
        ok.then_some(out)
    });
    Some(EmailNotify {
        identifier: identifier?,
        to: to?,
        on: on?,
    })
}

fn read_notify_on(cx: &mut Cx, field: &Field<'_>) -> Option<Vec<NotifyOn>> {
    let items = field.string_list(
        cx,
        "a list of results (`PASS`, `FAIL`, `ERROR`, `CANCEL`, `CHANGE`)",
    )?;
    let mut out = Vec::new();
    let mut ok = true;
    let names = NotifyOn::ALL.map(NotifyOn::as_str);
    for (item, text) in items {
        match NotifyOn::parse(&text) {
            Some(on) if !out.contains(&on) => out.push(on),
            Some(_) => {}
            None => {
                ok = false;
                cx.error_hint(
                    item.pos,
                    &item.path,
                    format!(
                        "unknown result `{text}`; expected `PASS`, `FAIL`, `ERROR`, `CANCEL` or `CHANGE`"
                    ),
                    did_you_mean(&text.to_ascii_uppercase(), &names),
                );
            }
        }
    }
    ok.then_some(out)
}
