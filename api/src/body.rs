//! The JSON body extractor every handler uses: actix-web's (size limit,
//! content type, syntax), plus what PostgreSQL cannot store — a NUL character
//! in any string — refused with 400 before a handler sees it.

use crate::error::ApiError;
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use application::{AppError, ErrorKind};
use futures::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A JSON request body of type `T`.
pub struct Json<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Json<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// Longest text any field may hold; features set tighter limits of their own
/// (names 100–200, prompts 20,000, notes 2,000…).
pub const TEXT_LIMIT_CHARS: usize = 20_000;

/// Whether any string (or key) in `value` satisfies `bad`.
fn any_text(value: &Value, bad: &dyn Fn(&str) -> bool) -> bool {
    match value {
        Value::String(s) => bad(s),
        Value::Array(items) => items.iter().any(|v| any_text(v, bad)),
        Value::Object(fields) => fields.iter().any(|(k, v)| bad(k) || any_text(v, bad)),
        _ => false,
    }
}

/// JSON has one number type: `41.0` is the integer 41 (as JSON Schema says),
/// though serde would refuse it for an integer field.
fn whole_numbers_as_integers(value: Value) -> Value {
    match value {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(whole_numbers_as_integers).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k, whole_numbers_as_integers(v)))
                .collect(),
        ),
        other => other,
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let raw = web::Json::<Value>::from_request(req, payload);
        Box::pin(async move {
            let value = raw.await?.into_inner();
            if any_text(&value, &|s| s.contains('\0')) {
                return Err(ApiError(AppError::new(
                    ErrorKind::Validation,
                    "nul_character",
                    "text may not contain the NUL character (\\u0000)",
                ))
                .into());
            }
            if any_text(&value, &|s| s.chars().count() > TEXT_LIMIT_CHARS) {
                return Err(ApiError(AppError::new(
                    ErrorKind::Validation,
                    "text_too_long",
                    format!("no text may be longer than {TEXT_LIMIT_CHARS} characters"),
                ))
                .into());
            }
            serde_json::from_value(whole_numbers_as_integers(value))
                .map(Json)
                .map_err(|e| {
                    // The same answer as a mistyped body read directly: 422 naming the problem.
                    crate::error::unprocessable("invalid_body", &e.to_string())
                })
        })
    }
}

/// What a [`Fields`] body is called as a whole, in errors about it.
pub trait BodyName {
    const BODY_NAME: &'static str;
}

/// A JSON body read as `T` by [`parse_named`] rather than by serde alone, so
/// that a bad value is a 400 naming its field (`timezone`,
/// `routes.hot_lead.mentions[0]`…).
pub struct Fields<T>(pub T);

impl<T: DeserializeOwned + BodyName + 'static> FromRequest for Fields<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = Json::<Value>::from_request(req, payload);
        Box::pin(async move { Ok(Fields(parse_named(body.await?.into_inner(), T::BODY_NAME)?)) })
    }
}

/// Reads a JSON value as `T`, a bad value being a 400 that names where it is
/// (`timezone`, `routes.hot_lead.mentions[0]`…); `whole` names the body itself.
pub fn parse_named<T: DeserializeOwned>(raw: Value, whole: &str) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(raw).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { whole.to_owned() } else { field };
        AppError::validation(&field, format!("{field} is invalid: {}", e.inner())).into()
    })
}
