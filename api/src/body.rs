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

/// Whether any string (or key) in `value` holds a NUL character.
fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(fields) => fields.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let raw = web::Json::<Value>::from_request(req, payload);
        Box::pin(async move {
            let value = raw.await?.into_inner();
            if holds_nul(&value) {
                return Err(ApiError(AppError::new(
                    ErrorKind::Validation,
                    "nul_character",
                    "text may not contain the NUL character (\\u0000)",
                ))
                .into());
            }
            serde_json::from_value(value).map(Json).map_err(|e| {
                // The same answer as a mistyped body read directly: 422 naming the problem.
                crate::error::unprocessable("invalid_body", &e.to_string())
            })
        })
    }
}
