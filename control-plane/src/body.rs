//! The one JSON request-body extractor of the admin API, so every handler
//! gets the same answers to a bad body in the API's own error shape:
//! syntax errors (and an empty body where one is required) are 400, shape
//! errors 422 naming the field (`capabilities.vision: invalid type: a
//! string, expected a boolean`; the string itself is never echoed, as it
//! may be a key), an oversized
//! body 413. The body is read as bytes, so a missing `Content-Type` (plain
//! `curl -d`) still works. `Option<JsonBody<T>>` takes an empty (or
//! all-whitespace) body as None, for routes whose body is optional.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, OptionalFromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// A JSON body of type `T`.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonBody<T>(pub T);

fn unreadable(e: &BytesRejection) -> Error {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Error::TooLarge(format!("body: {}", e.body_text()))
    } else {
        Error::BadRequest(format!("body could not be read: {}", e.body_text()))
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let at = match e.path().to_string() {
            root if root == "." => String::new(),
            path => format!("{path}: "),
        };
        let e = e.into_inner();
        match e.classify() {
            serde_json::error::Category::Data => Error::Invalid(format!(
                "invalid body: {at}{}",
                without_strings(&e.to_string())
            )),
            _ => Error::BadRequest(format!("body is not valid JSON: {e}")),
        }
    })?;
    // Trailing characters after the value, as `serde_json::from_slice`.
    de.end()
        .map_err(|e| Error::BadRequest(format!("body is not valid JSON: {e}")))?;
    Ok(value)
}

/// serde's message without the string it was given (`invalid type: string
/// "sk-…", expected a map` → `invalid type: a string, expected a map`): a
/// key sent where the body wants something else never comes back.
fn without_strings(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some((before, quoted)) = rest.split_once("string \"") {
        out.push_str(before);
        out.push_str("a string");
        // Past the closing quote of serde's `{:?}` of the string.
        let mut escaped = false;
        let end = quoted
            .char_indices()
            .find(|&(_, c)| {
                let close = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                close
            })
            .map_or(quoted.len(), |(i, _)| i + 1);
        rest = quoted.get(end..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self> {
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| unreadable(&e))?;
        parse(&body).map(JsonBody)
    }
}

impl<S, T> OptionalFromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>> {
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| unreadable(&e))?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        parse(&body).map(|t| Some(JsonBody(t)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::body::Body;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Named {
        #[allow(dead_code)]
        name: String,
    }

    async fn extract(body: &'static str) -> Result<JsonBody<Named>> {
        let req = Request::new(Body::from(body));
        <JsonBody<Named> as FromRequest<()>>::from_request(req, &()).await
    }

    async fn optional(body: &'static str) -> Result<Option<JsonBody<Named>>> {
        let req = Request::new(Body::from(body));
        <JsonBody<Named> as OptionalFromRequest<()>>::from_request(req, &()).await
    }

    #[tokio::test]
    async fn syntax_is_400_shape_is_422_and_names_the_field() {
        assert!(extract(r#"{"name": "x"}"#).await.is_ok());
        for (body, status) in [
            ("{nope", StatusCode::BAD_REQUEST),
            ("", StatusCode::BAD_REQUEST),
            (r#"{"name": 5}"#, StatusCode::UNPROCESSABLE_ENTITY),
            (
                r#"{"name": "x", "color": 1}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
        ] {
            let e = extract(body).await.unwrap_err();
            assert_eq!(e.status(), status, "{body:?}: {e}");
        }
        let e = extract(r#"{"name": "x", "color": 1}"#).await.unwrap_err();
        assert!(e.to_string().contains("color"), "{e}");
    }

    #[test]
    fn a_bad_body_names_its_field_by_path_and_never_echoes_a_string() {
        #[derive(Debug, serde::Deserialize)]
        struct Caps {
            #[allow(dead_code)]
            vision: bool,
        }
        #[derive(Debug, serde::Deserialize)]
        struct Model {
            #[allow(dead_code)]
            capabilities: Caps,
            #[allow(dead_code)]
            keys: std::collections::BTreeMap<String, String>,
        }
        let message = |body: &str| match parse::<Model>(body.as_bytes()) {
            Err(Error::Invalid(m)) => m,
            other => format!("not a 422: {other:?}"),
        };
        let m = message(r#"{"capabilities":{"vision":"sk-secret \"quoted\" yes"},"keys":{}}"#);
        assert!(
            m.starts_with(
                "invalid body: capabilities.vision: invalid type: a string, expected a boolean"
            ),
            "{m}"
        );
        assert!(!m.contains("sk-secret") && !m.contains("quoted"), "{m}");
        let m = message(r#"{"capabilities":{"vision":true},"keys":"sk-secret"}"#);
        assert!(
            m.contains("keys: invalid type: a string, expected a map"),
            "{m}"
        );
        assert!(!m.contains("sk-secret"), "{m}");
        assert!(message(r#"{"keys":{}}"#).contains("missing field `capabilities`"));
        // Trailing characters after the value are not JSON, as before.
        assert!(matches!(
            parse::<Model>(br#"{"capabilities":{"vision":true},"keys":{}} x"#),
            Err(Error::BadRequest(_))
        ));
    }

    #[tokio::test]
    async fn an_optional_body_may_be_empty_but_not_wrong() {
        assert!(optional("").await.unwrap().is_none());
        assert!(optional(" \n").await.unwrap().is_none());
        assert!(optional(r#"{"name": "x"}"#).await.unwrap().is_some());
        let e = optional("{nope").await.unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    }
}
