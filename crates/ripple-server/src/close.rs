//! Close codes the server uses (docs/protocol.md), in the private-use range of RFC 6455 §7.4.2.

use ripple::CloseCode;

/// The token is missing, malformed or has a bad signature.
pub const INVALID_TOKEN: CloseCode = CloseCode(4001);
/// The token has expired.
pub const TOKEN_EXPIRED: CloseCode = CloseCode(4002);
/// No `auth` message arrived within the deadline.
pub const AUTH_TIMEOUT: CloseCode = CloseCode(4003);
/// The client did not read fast enough: its outbound queue filled up.
pub const SLOW_CONSUMER: CloseCode = CloseCode(4008);
/// The channel lost state under the subscriber (the broker's history was lost, or a gap is
/// older than history keeps): subscribe again with `since` to learn `recovered: false`.
pub const STATE_LOST: CloseCode = CloseCode(4009);
