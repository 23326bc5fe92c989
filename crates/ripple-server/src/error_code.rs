//! The channel protocol's error codes (docs/protocol.md, "Error codes"): each one's wire name,
//! HTTP status and, for the two that end a connection, its close code — each in exactly one
//! place, with exhaustive matches, so a new code cannot be added without deciding all three.

use crate::queue::Disconnect;

/// Why a request was refused; stable on the wire (`"code"` of an `error`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Not JSON, not a JSON object, or a command that this transport does not run.
    BadRequest,
    /// `type` is missing or unknown.
    UnknownType,
    /// A required field is missing or has the wrong type.
    InvalidField,
    /// The command needs authentication first.
    Unauthorized,
    /// The token is not valid (signature, format, claims); the connection is closed.
    InvalidToken,
    /// The token has expired; the connection is closed.
    TokenExpired,
    /// The token does not allow this channel.
    Forbidden,
    /// The channel name is empty, too long or has forbidden characters.
    InvalidChannel,
    /// Already subscribed to the channel.
    AlreadySubscribed,
    /// Not subscribed to the channel.
    NotSubscribed,
    /// The connection has the most subscriptions allowed.
    TooManySubscriptions,
    /// Publishing faster than the configured rate.
    RateLimited,
    /// The published data (or the command) is larger than allowed.
    TooLarge,
    /// The published data nests arrays and objects deeper than `max_json_depth`.
    TooDeep,
    /// The server keeps `max_channels` channels: no new one can be created now.
    TooManyChannels,
    /// Already authenticated.
    AlreadyAuthenticated,
    /// The server failed (a broker that went away).
    Internal,
    /// HTTP transports: the cursor (or `Last-Event-ID`, or `since`) cannot be read.
    InvalidCursor,
    /// No room now: `max_connections`, the answer budget, or a publication once shutdown
    /// has begun.
    Unavailable,
    /// HTTP transports: the request's `Origin` is not in `allowed_origins`.
    OriginNotAllowed,
}

impl ErrorCode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::UnknownType => "unknown_type",
            Self::InvalidField => "invalid_field",
            Self::Unauthorized => "unauthorized",
            Self::InvalidToken => "invalid_token",
            Self::TokenExpired => "token_expired",
            Self::Forbidden => "forbidden",
            Self::InvalidChannel => "invalid_channel",
            Self::AlreadySubscribed => "already_subscribed",
            Self::NotSubscribed => "not_subscribed",
            Self::TooManySubscriptions => "too_many_subscriptions",
            Self::RateLimited => "rate_limited",
            Self::TooLarge => "too_large",
            Self::TooDeep => "too_deep",
            Self::TooManyChannels => "too_many_channels",
            Self::AlreadyAuthenticated => "already_authenticated",
            Self::Internal => "internal",
            Self::InvalidCursor => "invalid_cursor",
            Self::Unavailable => "unavailable",
            Self::OriginNotAllowed => "origin_not_allowed",
        }
    }

    /// The HTTP status of a request refused with this code (`/sse`, `/poll`, `/rpc`, `/api`).
    pub fn http_status(self) -> u16 {
        match self {
            Self::BadRequest
            | Self::UnknownType
            | Self::InvalidField
            | Self::InvalidChannel
            | Self::AlreadySubscribed
            | Self::NotSubscribed
            | Self::TooManySubscriptions
            | Self::TooDeep
            | Self::AlreadyAuthenticated
            | Self::InvalidCursor => 400,
            Self::Unauthorized | Self::InvalidToken | Self::TokenExpired => 401,
            Self::Forbidden | Self::OriginNotAllowed => 403,
            Self::TooLarge => 413,
            Self::RateLimited => 429,
            Self::Internal | Self::TooManyChannels | Self::Unavailable => 503,
        }
    }

    /// How a connection refused with this code ends, for the two codes that end it.
    pub fn disconnect(self) -> Option<Disconnect> {
        let (code, reason) = match self {
            Self::InvalidToken => (crate::close::INVALID_TOKEN, "invalid token"),
            Self::TokenExpired => (crate::close::TOKEN_EXPIRED, "token expired"),
            Self::BadRequest
            | Self::UnknownType
            | Self::InvalidField
            | Self::Unauthorized
            | Self::Forbidden
            | Self::InvalidChannel
            | Self::AlreadySubscribed
            | Self::NotSubscribed
            | Self::TooManySubscriptions
            | Self::RateLimited
            | Self::TooLarge
            | Self::TooDeep
            | Self::TooManyChannels
            | Self::AlreadyAuthenticated
            | Self::Internal
            | Self::InvalidCursor
            | Self::Unavailable
            | Self::OriginNotAllowed => return None,
        };
        Some(Disconnect { code, reason })
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_token_codes_end_the_connection_with_their_own_close_codes() {
        assert_eq!(
            ErrorCode::InvalidToken.disconnect().map(|d| d.code),
            Some(crate::close::INVALID_TOKEN)
        );
        assert_eq!(
            ErrorCode::TokenExpired.disconnect().map(|d| d.code),
            Some(crate::close::TOKEN_EXPIRED)
        );
        assert_eq!(ErrorCode::Forbidden.disconnect(), None);
        assert_eq!(ErrorCode::TooManyChannels.http_status(), 503);
        assert_eq!(ErrorCode::TooDeep.to_string(), "too_deep");
    }
}
