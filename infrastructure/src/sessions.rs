//! Session tokens: HS256 JWTs carrying user, organization and role.

use application::auth::{IssuedToken, Session, SessionTokens};
use application::{AppError, ErrorKind};
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

const ISSUER: &str = "voxreach";
const LEEWAY_SECONDS: i64 = 5;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    org: Uuid,
    role: domain::auth::Role,
    iat: i64,
    exp: i64,
    iss: String,
}

pub struct JwtSessions {
    encoding: EncodingKey,
    decoding: DecodingKey,
    lifetime: Duration,
}

impl JwtSessions {
    pub fn new(secret: &[u8], lifetime: Duration) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            lifetime,
        }
    }
}

fn unauthorized(message: &str) -> AppError {
    AppError::new(ErrorKind::Unauthorized, "unauthorized", message)
}

impl SessionTokens for JwtSessions {
    fn issue(&self, session: &Session, now: DateTime<Utc>) -> Result<IssuedToken, AppError> {
        let expires_at = now + self.lifetime;
        let claims = Claims {
            sub: session.user_id,
            org: session.organization_id,
            role: session.role,
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            iss: ISSUER.into(),
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AppError::internal("signing a session token", e))?;
        Ok(IssuedToken { token, expires_at })
    }

    fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<(Session, DateTime<Utc>), AppError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        // Expiry is checked against the `Clock` port's time below, not the system's.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "iss"]);
        let data = decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|_| unauthorized("the session token is invalid"))?;
        if data.claims.exp + LEEWAY_SECONDS < now.timestamp() {
            return Err(unauthorized("the session token has expired"));
        }
        let issued_at = DateTime::from_timestamp(data.claims.iat, 0).unwrap_or(now);
        Ok((
            Session {
                user_id: data.claims.sub,
                organization_id: data.claims.org,
                role: data.claims.role,
            },
            issued_at,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::auth::Role;

    fn session() -> Session {
        Session {
            user_id: Uuid::new_v4(),
            organization_id: Uuid::new_v4(),
            role: Role::Admin,
        }
    }

    #[test]
    fn issued_tokens_verify_and_forged_or_expired_ones_do_not() {
        let tokens = JwtSessions::new(b"0123456789abcdef0123456789abcdef", Duration::hours(1));
        let s = session();
        let now: DateTime<Utc> = "2026-03-02T15:00:00Z".parse().unwrap();
        let issued = tokens.issue(&s, now).unwrap();
        assert_eq!(tokens.verify(&issued.token, now).unwrap(), (s, now));

        let other = JwtSessions::new(b"another secret another secret 123", Duration::hours(1));
        assert_eq!(
            other.verify(&issued.token, now).unwrap_err().kind,
            ErrorKind::Unauthorized
        );

        let old = tokens.issue(&s, now - Duration::hours(2)).unwrap();
        let error = tokens.verify(&old.token, now).unwrap_err();
        assert_eq!(error.message, "the session token has expired");
        // Expiry follows the clock it is given, not the machine's.
        assert!(tokens.verify(&old.token, now - Duration::hours(2)).is_ok());
        assert!(tokens.verify("not.a.jwt", now).is_err());
    }
}
