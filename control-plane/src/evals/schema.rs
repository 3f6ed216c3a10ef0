//! The `json_schema` check of an eval task: a subset of JSON Schema (2020-12
//! semantics) that covers what an answer's shape is checked for — `type`,
//! `enum`, `const`, `properties`, `required`, `additionalProperties`,
//! `items`, `minItems`/`maxItems`, `minLength`/`maxLength`, `pattern`,
//! `minimum`/`maximum`/`exclusiveMinimum`/`exclusiveMaximum`, `allOf`,
//! `anyOf`, `oneOf`, `not`, and the annotations (`title`, `description`,
//! `$schema`, `$comment`, `default`, `examples`) — compiled once when the
//! eval is posted. A keyword outside it (`$ref`, `if`, `format`, …) is
//! refused with a 422 naming it, so a schema is never half-checked.
//! Why a subset and not a crate: control-plane/README.md, "Evals".

use regex::Regex;
use serde_json::{Map, Value};

/// Deepest nesting of subschemas.
const MAX_DEPTH: usize = 32;
/// Compiled size a `pattern` may take (bytes of the regex program).
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "$schema",
    "$comment",
    "default",
    "examples",
];
const KEYWORDS: &[&str] = &[
    "type",
    "enum",
    "const",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Null,
    Boolean,
    Object,
    Array,
    Number,
    String,
    Integer,
}

impl Type {
    fn parse(name: &str) -> Option<Type> {
        Some(match name {
            "null" => Type::Null,
            "boolean" => Type::Boolean,
            "object" => Type::Object,
            "array" => Type::Array,
            "number" => Type::Number,
            "string" => Type::String,
            "integer" => Type::Integer,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Type::Null => "null",
            Type::Boolean => "boolean",
            Type::Object => "object",
            Type::Array => "array",
            Type::Number => "number",
            Type::String => "string",
            Type::Integer => "integer",
        }
    }

    fn holds(self, v: &Value) -> bool {
        match (self, v) {
            (Type::Null, Value::Null)
            | (Type::Boolean, Value::Bool(_))
            | (Type::Object, Value::Object(_))
            | (Type::Array, Value::Array(_))
            | (Type::Number, Value::Number(_))
            | (Type::String, Value::String(_)) => true,
            // 1.0 is an integer too (the spec's rule).
            (Type::Integer, Value::Number(n)) => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            _ => false,
        }
    }
}

/// A compiled schema.
#[derive(Debug, Clone)]
pub struct Schema(Node);

#[derive(Debug, Clone)]
enum Node {
    /// `true` accepts everything, `false` nothing.
    Bool(bool),
    Rules(Box<Rules>),
}

#[derive(Debug, Clone, Default)]
struct Rules {
    types: Option<Vec<Type>>,
    enum_: Option<Vec<Value>>,
    const_: Option<Value>,
    properties: Vec<(String, Node)>,
    required: Vec<String>,
    additional: Option<Node>,
    items: Option<Node>,
    min_items: Option<u64>,
    max_items: Option<u64>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    pattern: Option<Regex>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    exclusive_minimum: Option<f64>,
    exclusive_maximum: Option<f64>,
    all_of: Vec<Node>,
    any_of: Vec<Node>,
    one_of: Vec<Node>,
    not: Option<Node>,
}

impl Schema {
    /// Compiles a schema; the error names the keyword and where it is
    /// (`/properties/name: …`).
    pub fn compile(v: &Value) -> Result<Schema, String> {
        compile(v, "", 0).map(Schema)
    }

    /// Checks a value; the error says where and why it fails.
    pub fn check(&self, v: &Value) -> Result<(), String> {
        check(&self.0, v, "")
    }
}

fn compile(v: &Value, at: &str, depth: usize) -> Result<Node, String> {
    if depth > MAX_DEPTH {
        return Err(format!("{at}: nested deeper than {MAX_DEPTH}"));
    }
    let obj = match v {
        Value::Bool(b) => return Ok(Node::Bool(*b)),
        Value::Object(o) => o,
        _ => {
            return Err(format!(
                "{}: a schema is an object or a boolean",
                or_root(at)
            ));
        }
    };
    let mut r = Rules::default();
    for (k, val) in obj {
        let here = format!("{at}/{k}");
        if ANNOTATIONS.contains(&k.as_str()) {
            continue;
        }
        match k.as_str() {
            "type" => r.types = Some(types(val, &here)?),
            "enum" => match val {
                Value::Array(a) => r.enum_ = Some(a.clone()),
                _ => return Err(format!("{here}: must be an array")),
            },
            "const" => r.const_ = Some(val.clone()),
            "properties" => {
                let Value::Object(props) = val else {
                    return Err(format!("{here}: must be an object"));
                };
                for (name, sub) in props {
                    let node = compile(sub, &format!("{here}/{name}"), depth + 1)?;
                    r.properties.push((name.clone(), node));
                }
            }
            "required" => {
                r.required = val
                    .as_array()
                    .and_then(|a| {
                        a.iter()
                            .map(|s| s.as_str().map(str::to_owned))
                            .collect::<Option<Vec<_>>>()
                    })
                    .ok_or_else(|| format!("{here}: must be an array of strings"))?;
            }
            "additionalProperties" => r.additional = Some(compile(val, &here, depth + 1)?),
            "items" => r.items = Some(compile(val, &here, depth + 1)?),
            "minItems" => r.min_items = Some(count(val, &here)?),
            "maxItems" => r.max_items = Some(count(val, &here)?),
            "minLength" => r.min_length = Some(count(val, &here)?),
            "maxLength" => r.max_length = Some(count(val, &here)?),
            "pattern" => {
                let p = val
                    .as_str()
                    .ok_or_else(|| format!("{here}: must be a string"))?;
                r.pattern = Some(
                    regex::RegexBuilder::new(p)
                        .size_limit(REGEX_SIZE_LIMIT)
                        .build()
                        .map_err(|e| format!("{here}: not a valid regex: {e}"))?,
                );
            }
            "minimum" => r.minimum = Some(number(val, &here)?),
            "maximum" => r.maximum = Some(number(val, &here)?),
            "exclusiveMinimum" => r.exclusive_minimum = Some(number(val, &here)?),
            "exclusiveMaximum" => r.exclusive_maximum = Some(number(val, &here)?),
            "allOf" | "anyOf" | "oneOf" => {
                let Some(list) = val.as_array().filter(|a| !a.is_empty()) else {
                    return Err(format!("{here}: must be a non-empty array of schemas"));
                };
                let nodes = list
                    .iter()
                    .enumerate()
                    .map(|(i, s)| compile(s, &format!("{here}/{i}"), depth + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                match k.as_str() {
                    "allOf" => r.all_of = nodes,
                    "anyOf" => r.any_of = nodes,
                    _ => r.one_of = nodes,
                }
            }
            "not" => r.not = Some(compile(val, &here, depth + 1)?),
            _ => {
                return Err(format!(
                    "{here}: keyword `{k}` is not supported (supported: {})",
                    KEYWORDS.join(", ")
                ));
            }
        }
    }
    Ok(Node::Rules(Box::new(r)))
}

fn or_root(at: &str) -> &str {
    if at.is_empty() { "/" } else { at }
}

fn types(v: &Value, at: &str) -> Result<Vec<Type>, String> {
    let one = |s: &Value| {
        s.as_str()
            .and_then(Type::parse)
            .ok_or_else(|| format!("{at}: unknown type {s}"))
    };
    match v {
        Value::Array(a) if !a.is_empty() => a.iter().map(one).collect(),
        Value::String(_) => Ok(vec![one(v)?]),
        _ => Err(format!(
            "{at}: must be a type name or a non-empty array of them"
        )),
    }
}

fn count(v: &Value, at: &str) -> Result<u64, String> {
    v.as_u64()
        .ok_or_else(|| format!("{at}: must be a non-negative integer"))
}

fn number(v: &Value, at: &str) -> Result<f64, String> {
    v.as_f64()
        .filter(|f| f.is_finite())
        .ok_or_else(|| format!("{at}: must be a number"))
}

/// JSON equality as the spec has it: numbers by value (1 equals 1.0).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, a)| y.get(k).is_some_and(|b| same(a, b)))
        }
        _ => a == b,
    }
}

fn check(node: &Node, v: &Value, at: &str) -> Result<(), String> {
    let r = match node {
        Node::Bool(true) => return Ok(()),
        Node::Bool(false) => return Err(format!("{}: no value is allowed here", or_root(at))),
        Node::Rules(r) => r,
    };
    let fail = |why: String| Err(format!("{}: {why}", or_root(at)));
    if let Some(types) = &r.types
        && !types.iter().any(|t| t.holds(v))
    {
        let names: Vec<&str> = types.iter().map(|t| t.name()).collect();
        return fail(format!("expected {}", names.join(" or ")));
    }
    if let Some(e) = &r.enum_
        && !e.iter().any(|x| same(x, v))
    {
        return fail("not one of the enum's values".into());
    }
    if let Some(c) = &r.const_
        && !same(c, v)
    {
        return fail(format!("must be {c}"));
    }
    match v {
        Value::Object(o) => check_object(r, o, at)?,
        Value::Array(a) => {
            let n = a.len() as u64;
            if r.min_items.is_some_and(|m| n < m) || r.max_items.is_some_and(|m| n > m) {
                return fail(format!("{n} items is outside the allowed count"));
            }
            if let Some(items) = &r.items {
                for (i, x) in a.iter().enumerate() {
                    check(items, x, &format!("{at}/{i}"))?;
                }
            }
        }
        Value::String(s) => {
            let n = s.chars().count() as u64;
            if r.min_length.is_some_and(|m| n < m) || r.max_length.is_some_and(|m| n > m) {
                return fail(format!("{n} characters is outside the allowed length"));
            }
            if let Some(p) = &r.pattern
                && !p.is_match(s)
            {
                return fail(format!("does not match the pattern {:?}", p.as_str()));
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            let ok = r.minimum.is_none_or(|m| x >= m)
                && r.maximum.is_none_or(|m| x <= m)
                && r.exclusive_minimum.is_none_or(|m| x > m)
                && r.exclusive_maximum.is_none_or(|m| x < m);
            if !ok {
                return fail(format!("{n} is out of range"));
            }
        }
        Value::Null | Value::Bool(_) => {}
    }
    for s in &r.all_of {
        check(s, v, at)?;
    }
    if !r.any_of.is_empty() && !r.any_of.iter().any(|s| check(s, v, at).is_ok()) {
        return fail("matches none of anyOf".into());
    }
    if !r.one_of.is_empty() {
        let n = r.one_of.iter().filter(|s| check(s, v, at).is_ok()).count();
        if n != 1 {
            return fail(format!("matches {n} of oneOf, not exactly one"));
        }
    }
    if let Some(not) = &r.not
        && check(not, v, at).is_ok()
    {
        return fail("matches the schema under `not`".into());
    }
    Ok(())
}

fn check_object(r: &Rules, o: &Map<String, Value>, at: &str) -> Result<(), String> {
    if let Some(missing) = r.required.iter().find(|k| !o.contains_key(*k)) {
        return Err(format!(
            "{}: missing required property {missing:?}",
            or_root(at)
        ));
    }
    for (k, x) in o {
        let here = format!("{at}/{k}");
        match r.properties.iter().find(|(name, _)| name == k) {
            Some((_, node)) => check(node, x, &here)?,
            None => {
                if let Some(extra) = &r.additional {
                    check(extra, x, &here)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn schema(v: Value) -> Schema {
        Schema::compile(&v).unwrap()
    }

    #[test]
    fn an_object_schema_passes_and_fails_with_the_place_named() {
        let s = schema(json!({
            "type": "object",
            "required": ["name", "tags"],
            "additionalProperties": false,
            "properties": {
                "name": {"type": "string", "minLength": 1, "pattern": "^[a-z]+$"},
                "age": {"type": "integer", "minimum": 0, "exclusiveMaximum": 200},
                "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2},
                "kind": {"oneOf": [{"const": 1}, {"type": "string"}]}
            }
        }));
        s.check(&json!({"name": "ada", "age": 36.0, "tags": ["a"], "kind": 1.0}))
            .unwrap();
        for (bad, says) in [
            (
                json!({"name": "ada"}),
                "/: missing required property \"tags\"",
            ),
            (json!({"name": "Ada", "tags": []}), "/name: does not match"),
            (
                json!({"name": "ada", "tags": [], "x": 1}),
                "/x: no value is allowed",
            ),
            (
                json!({"name": "ada", "tags": ["c"]}),
                "/tags/0: not one of the enum",
            ),
            (
                json!({"name": "ada", "tags": ["a", "b", "a"]}),
                "/tags: 3 items",
            ),
            (
                json!({"name": "ada", "tags": [], "age": 1.5}),
                "/age: expected integer",
            ),
            (
                json!({"name": "ada", "tags": [], "age": 200}),
                "/age: 200 is out of range",
            ),
            (
                json!({"name": "ada", "tags": [], "kind": true}),
                "/kind: matches 0 of oneOf",
            ),
            (json!([1]), "/: expected object"),
        ] {
            let e = s.check(&bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn unsupported_keywords_and_bad_schemas_are_refused_by_name() {
        for (bad, says) in [
            (
                json!({"$ref": "#/x"}),
                "/$ref: keyword `$ref` is not supported",
            ),
            (
                json!({"properties": {"a": {"format": "email"}}}),
                "/properties/a/format",
            ),
            (json!({"type": "float"}), "/type: unknown type"),
            (json!({"pattern": "("}), "/pattern: not a valid regex"),
            (
                json!({"minItems": -1}),
                "/minItems: must be a non-negative integer",
            ),
            (json!({"anyOf": []}), "/anyOf: must be a non-empty array"),
            (json!(3), "/: a schema is an object or a boolean"),
        ] {
            let e = Schema::compile(&bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let mut deep = json!({});
        for _ in 0..40 {
            deep = json!({"items": deep});
        }
        assert!(
            Schema::compile(&deep)
                .unwrap_err()
                .contains("nested deeper")
        );
        // Annotations are accepted and change nothing.
        schema(json!({"title": "t", "description": "d", "$schema": "x", "examples": [1]}))
            .check(&json!("anything"))
            .unwrap();
    }

    #[test]
    fn any_all_not_and_booleans() {
        let s = schema(
            json!({"anyOf": [{"type": "null"}, {"type": "number", "maximum": 3}],
                              "not": {"const": 2}, "allOf": [true]}),
        );
        s.check(&json!(null)).unwrap();
        s.check(&json!(3)).unwrap();
        assert!(s.check(&json!(2)).unwrap_err().contains("under `not`"));
        assert!(s.check(&json!(4)).unwrap_err().contains("none of anyOf"));
        assert!(schema(json!(false)).check(&json!(1)).is_err());
        schema(json!(true)).check(&json!({"a": [1]})).unwrap();
    }
}
