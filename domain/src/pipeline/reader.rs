//! Typed access to marked YAML nodes for the validator: loading, positions,
//! field paths, unknown-key detection and "expected X, found Y" errors, all
//! collected in a [`Cx`] instead of stopping at the first problem.

use std::time::Duration;

use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};
use marked_yaml::{LoadError, LoaderOptions, Node, Span};

use super::error::{PipelineError, did_you_mean, one_line};

/// A 1-based position in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    pub(super) const START: Pos = Pos { line: 1, column: 1 };

    pub(super) fn of_span(span: &Span) -> Pos {
        span.start().map_or(Pos::START, |m| Pos {
            line: m.line().max(1),
            column: m.column().max(1),
        })
    }
}

/// Collects errors while the file is read.
#[derive(Default)]
pub(crate) struct Cx {
    pub errors: Vec<PipelineError>,
}

impl Cx {
    pub(super) fn error(&mut self, at: Pos, field: &str, message: impl Into<String>) {
        self.error_hint(at, field, message, None);
    }

    pub(super) fn error_hint(
        &mut self,
        at: Pos,
        field: &str,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.errors
            .push(PipelineError::new(at.line, at.column, field, message, hint));
    }
}

/// Parses the YAML text; on failure returns the single error describing it.
pub(crate) fn load(text: &str) -> Result<Node, PipelineError> {
    let options = LoaderOptions::default()
        .error_on_duplicate_keys(true)
        .prevent_coercion(true);
    marked_yaml::parse_yaml_with_options(0, text, options).map_err(|err| load_error(&err))
}

fn at(marker: &marked_yaml::Marker) -> Pos {
    Pos {
        line: marker.line().max(1),
        column: marker.column().max(1),
    }
}

fn load_error(err: &LoadError) -> PipelineError {
    let (pos, message, hint) = match err {
        LoadError::TopLevelMustBeMapping(m) | LoadError::TopLevelMustBeSequence(m) => (
            at(m),
            "the top level must be a mapping of fields (`image: ...`, `stages: ...`)".to_string(),
            None,
        ),
        LoadError::UnexpectedAnchor(m) => (
            at(m),
            "YAML anchors and aliases (`&name`, `*name`) are not supported".to_string(),
            None,
        ),
        LoadError::MappingKeyMustBeScalar(m) => (
            at(m),
            "mapping keys must be plain strings".to_string(),
            Some("a value starting with `{` is read as a mapping: quote it, e.g. `key: '{{ branch }}-deps'`".to_string()),
        ),
        LoadError::UnexpectedTag(m) => (
            at(m),
            "YAML tags (`!name`) are not supported".to_string(),
            None,
        ),
        LoadError::ScanError(m, scan) => {
            (at(m), format!("YAML syntax error: {}", scan.info()), None)
        }
        LoadError::DuplicateKey(dup) => {
            let first = Pos::of_span(dup.prev_key.span());
            (
                Pos::of_span(dup.key.span()),
                format!("duplicate key `{}`", one_line(dup.key.as_str())),
                Some(format!("first defined at line {}", first.line)),
            )
        }
    };
    PipelineError::new(pos.line, pos.column, "", message, hint)
}

/// `path.key`, or `key` at the top level.
pub(crate) fn join_path(path: &str, key: &str) -> String {
    let key = one_line(key);
    if path.is_empty() {
        key
    } else {
        format!("{path}.{key}")
    }
}

/// True for a plain (unquoted) empty, `~` or `null` scalar.
pub(crate) fn is_null(scalar: &MarkedScalarNode) -> bool {
    scalar.may_coerce() && matches!(scalar.as_str(), "" | "~" | "null" | "Null" | "NULL")
}

/// "a string", "a list", ... for "expected X, found Y" messages.
pub(crate) fn describe(node: &Node) -> &'static str {
    match node {
        Node::Scalar(s) if is_null(s) => "nothing",
        Node::Scalar(_) => "a string",
        Node::Sequence(_) => "a list",
        Node::Mapping(_) => "a mapping",
    }
}

/// A value somewhere in the file, with its dotted path and position.
#[derive(Clone)]
pub(crate) struct Field<'a> {
    pub path: String,
    pub node: &'a Node,
    /// Where errors about the value point: the value itself, or the key
    /// when the value is empty.
    pub pos: Pos,
}

impl<'a> Field<'a> {
    pub(super) fn new(path: String, node: &'a Node, fallback: Pos) -> Self {
        let pos = match node {
            Node::Scalar(s) if is_null(s) => fallback,
            _ => Pos::of_span(node.span()),
        };
        Self { path, node, pos }
    }

    pub(super) fn is_null(&self) -> bool {
        matches!(self.node, Node::Scalar(s) if is_null(s))
    }

    fn wrong_type(&self, cx: &mut Cx, expected: &str, hint: Option<String>) {
        let found = describe(self.node);
        cx.error_hint(
            self.pos,
            &self.path,
            format!("expected {expected}, found {found}"),
            hint,
        );
    }

    /// The value as a string (any non-empty scalar).
    pub(super) fn string(&self, cx: &mut Cx) -> Option<String> {
        match self.node {
            Node::Scalar(s) if !is_null(s) => Some(s.as_str().to_string()),
            Node::Mapping(m) => {
                self.wrong_type(cx, "a string", colon_hint(m));
                None
            }
            _ => {
                self.wrong_type(cx, "a string", None);
                None
            }
        }
    }

    /// A string that is not blank.
    pub(super) fn non_empty_string(&self, cx: &mut Cx) -> Option<String> {
        let text = self.string(cx)?;
        if text.trim().is_empty() {
            cx.error(self.pos, &self.path, "must not be empty");
            return None;
        }
        Some(text)
    }

    /// The value as a mapping.
    pub(super) fn mapping(&self, cx: &mut Cx, expected: &str) -> Option<&'a MarkedMappingNode> {
        match self.node {
            Node::Mapping(m) => Some(m),
            _ => {
                self.wrong_type(cx, expected, None);
                None
            }
        }
    }

    /// The items of a list, each with its own path (`path[i]`).
    pub(super) fn list(&self, cx: &mut Cx, expected: &str) -> Option<Vec<Field<'a>>> {
        match self.node {
            Node::Sequence(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| Field::new(format!("{}[{i}]", self.path), item, self.pos))
                    .collect(),
            ),
            Node::Scalar(s) if !is_null(s) => {
                let hint = format!("write it as a list: `[{}]`", one_line(s.as_str()));
                self.wrong_type(cx, expected, Some(hint));
                None
            }
            _ => {
                self.wrong_type(cx, expected, None);
                None
            }
        }
    }

    /// A list of strings; items of the wrong type are reported and skipped.
    pub(super) fn string_list(
        &self,
        cx: &mut Cx,
        expected: &str,
    ) -> Option<Vec<(Field<'a>, String)>> {
        let items = self.list(cx, expected)?;
        Some(
            items
                .into_iter()
                .filter_map(|item| item.string(cx).map(|s| (item, s)))
                .collect(),
        )
    }

    /// A humantime duration greater than zero, e.g. `30m` or `1h 30m`.
    pub(super) fn duration(&self, cx: &mut Cx) -> Option<Duration> {
        let text = self.string(cx)?;
        match humantime::parse_duration(text.trim()) {
            Ok(d) if d.is_zero() => {
                cx.error(
                    self.pos,
                    &self.path,
                    "the timeout must be greater than zero",
                );
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                cx.error_hint(
                    self.pos,
                    &self.path,
                    format!("invalid duration `{text}`: {e}"),
                    Some("use e.g. `90s`, `30m` or `1h 30m`".to_string()),
                );
                None
            }
        }
    }
}

/// When a list item that should be a string came out as a one-key mapping,
/// the usual cause is an unquoted `: ` inside it.
fn colon_hint(map: &MarkedMappingNode) -> Option<String> {
    (map.len() == 1).then(|| {
        "YAML reads `key: value` as a mapping; put the whole line in single quotes".to_string()
    })
}

/// The known fields of a mapping, after reporting every unknown one.
pub(crate) struct Fields<'a> {
    found: Vec<(&'static str, Field<'a>, Pos)>,
    /// Where the mapping starts, for "missing field" errors.
    pub pos: Pos,
    pub path: String,
}

impl<'a> Fields<'a> {
    pub(super) fn read(
        cx: &mut Cx,
        map: &'a MarkedMappingNode,
        path: &str,
        known: &[&'static str],
    ) -> Self {
        let mut found = Vec::new();
        for (key, value) in map.iter() {
            let key_pos = Pos::of_span(key.span());
            let name = key.as_str();
            match known.iter().find(|k| **k == name) {
                Some(k) => {
                    found.push((
                        *k,
                        Field::new(join_path(path, name), value, key_pos),
                        key_pos,
                    ));
                }
                None => cx.error_hint(
                    key_pos,
                    &join_path(path, name),
                    "unknown field",
                    did_you_mean(name, known),
                ),
            }
        }
        // A block mapping's own mark is at its first `:`; its first key is
        // a better place for "missing field" errors.
        let pos = map
            .keys()
            .next()
            .map_or_else(|| Pos::of_span(map.span()), |k| Pos::of_span(k.span()));
        Self {
            found,
            pos,
            path: path.to_string(),
        }
    }

    /// The field `name` if present with a value (an empty value counts as absent).
    pub(super) fn get(&self, name: &str) -> Option<&Field<'a>> {
        self.found
            .iter()
            .find(|(k, f, _)| *k == name && !f.is_null())
            .map(|(_, f, _)| f)
    }

    /// Where the key `name` is written, if it is (even with an empty value).
    pub(super) fn key_pos(&self, name: &str) -> Option<Pos> {
        self.found
            .iter()
            .find(|(k, _, _)| *k == name)
            .map(|(_, _, p)| *p)
    }

    /// The field `name`, or an error saying it is required.
    pub(super) fn require(&self, cx: &mut Cx, name: &str, what: &str) -> Option<&Field<'a>> {
        let field = self.get(name);
        if field.is_none() {
            let (pos, message) = match self.key_pos(name) {
                Some(pos) => (pos, format!("has no value; {what} is required")),
                None => (self.pos, format!("missing; {what} is required")),
            };
            cx.error(pos, &join_path(&self.path, name), message);
        }
        field
    }
}
