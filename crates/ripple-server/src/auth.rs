//! Client authentication: HS256 JWTs with `sub`, `exp` and `channels` (glob patterns such as
//! `room:*`), and the anonymous mode used when no secret is configured.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::protocol::{ProtocolError, codes};

/// The claims Ripple reads from a token.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Channel patterns this user may subscribe and publish to (`*` matches any run of
    /// characters). Absent means none.
    #[serde(default)]
    pub channels: Vec<String>,
}

/// Who a connection is, once authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The token's `sub`; `None` in anonymous mode.
    pub user: Option<String>,
    /// What it may touch.
    pub channels: Permission,
    /// When the token expires (seconds since the Unix epoch); the connection is closed then.
    pub expires: Option<u64>,
}

/// Which channels an identity may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Anonymous mode: every channel.
    Any,
    /// Only channels matching one of these patterns.
    Patterns(Vec<String>),
}

impl Identity {
    /// The identity of every client when the server has no secret.
    pub fn anonymous() -> Self {
        Self {
            user: None,
            channels: Permission::Any,
            expires: None,
        }
    }

    /// Whether this identity may subscribe and publish to `channel`.
    pub fn allows(&self, channel: &str) -> bool {
        match &self.channels {
            Permission::Any => true,
            Permission::Patterns(patterns) => patterns.iter().any(|p| glob_match(p, channel)),
        }
    }
}

/// Why a token was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Past its `exp`.
    #[error("token expired")]
    Expired,
    /// Anything else: format, signature, algorithm, missing claims.
    #[error("invalid token: {0}")]
    Invalid(String),
}

impl AuthError {
    /// The `error` reply for this failure.
    pub fn to_protocol(&self) -> ProtocolError {
        match self {
            Self::Expired => ProtocolError::new(codes::TOKEN_EXPIRED, self.to_string()),
            Self::Invalid(_) => ProtocolError::new(codes::INVALID_TOKEN, self.to_string()),
        }
    }
}

/// Checks a token's signature (HS256 only) and expiry.
pub fn verify(token: &str, secret: &str) -> Result<Identity, AuthError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp", "sub"]);
    validation.leeway = 0;
    let data = jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .map_err(|err| match err.kind() {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        _ => AuthError::Invalid(err.to_string()),
    })?;
    let claims = data.claims;
    Ok(Identity {
        user: Some(claims.sub),
        channels: Permission::Patterns(claims.channels),
        expires: Some(claims.exp),
    })
}

/// Mints a token (`ripple token`, tests).
pub fn mint(claims: &Claims, secret: &str) -> Result<String, AuthError> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|err| AuthError::Invalid(err.to_string()))
}

/// `*` matches any run of characters (including none); everything else matches itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let Some((head, rest)) = pattern.split_once('*') else {
        return pattern == text;
    };
    let Some(mut remaining) = text.strip_prefix(head) else {
        return false;
    };
    let mut parts = rest.split('*').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            return remaining.ends_with(part);
        }
        let Some(at) = remaining.find(part) else {
            return false;
        };
        remaining = &remaining[at + part.len()..];
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn globs() {
        assert!(glob_match("room:*", "room:a"));
        assert!(glob_match("room:*", "room:"));
        assert!(!glob_match("room:*", "news:a"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("a*b*c", "a123b456c"));
        assert!(!glob_match("a*b*c", "a123b456"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
    }

    #[test]
    fn tokens_round_trip_and_expire() {
        let claims = Claims {
            sub: "alice".into(),
            exp: now() + 60,
            channels: vec!["room:*".into()],
        };
        let token = mint(&claims, "s3cret").unwrap();
        let identity = verify(&token, "s3cret").unwrap();
        assert_eq!(identity.user.as_deref(), Some("alice"));
        assert!(identity.allows("room:1"));
        assert!(!identity.allows("admin"));
        assert!(matches!(
            verify(&token, "other"),
            Err(AuthError::Invalid(_))
        ));
        assert!(matches!(
            verify("garbage", "s3cret"),
            Err(AuthError::Invalid(_))
        ));
        let old = mint(
            &Claims {
                exp: now() - 10,
                ..claims
            },
            "s3cret",
        )
        .unwrap();
        assert_eq!(verify(&old, "s3cret"), Err(AuthError::Expired));
    }
}
