//! permessage-deflate (RFC 7692): negotiation in both roles, and the per-message transform.
//!
//! Memory is the point of most choices here (see docs/design.md, "Compression"):
//! - A side that compresses without context takeover keeps no compressor of its own: it borrows
//!   a thread-local one and resets it after each message. Our server always asks for that
//!   (`server_no_context_takeover`), so a server connection costs nothing to compress for, and
//!   a message compressed once can go to every receiver ([`crate::PreparedMessage`]).
//! - The inflater is allocated on the first compressed message, with the smallest window the
//!   negotiation allows (a server asks clients for `client_max_window_bits=12` when it may).
//! - Inflating stops as soon as the message passes the size limit: a zip bomb costs the
//!   limit, not what it would expand to.
//!
//! zlib (and flate2 over zlib-rs) cannot compress with a 256-byte window (8 bits). Inflating
//! an 8-bit stream with a 9-bit window is fine, so only compression is affected: a server
//! declines an offer that demands it, and a client told to use it sends uncompressed messages
//! (always allowed: RSV1 clear means "not compressed").

use std::cell::RefCell;

use bytes::BytesMut;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::{Extension, ExtensionItem, parse_extensions};
use crate::error::{ProtocolError, SendError};
use crate::frame::{OpCode, RSV1};

/// The extension's registered name.
pub const NAME: &str = "permessage-deflate";

/// RFC 7692 §7.2.1: the empty stored block a sync flush ends with, removed before sending and
/// appended again before inflating.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The smallest window zlib can compress with.
const MIN_COMPRESS_WINDOW: u8 = 9;

/// What one endpoint wants from permessage-deflate.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// zlib compression level, 0–9 (default 1: four to five times faster than zlib's 6 in
    /// `benches/deflate.rs`, for a slightly larger output — a server pays per message).
    pub level: u32,
    /// Messages shorter than this go out uncompressed (default 128 bytes): deflate's overhead
    /// outweighs its gain on tiny payloads.
    pub threshold: usize,
    /// Server: reset our compressor after every message (default true; what makes compression
    /// free per connection and compress-once broadcast possible). Client: ask the server for it.
    pub server_no_context_takeover: bool,
    /// Server: ask clients to reset theirs (default false: context across messages is where
    /// most of the gain on small messages comes from). Client: offer to reset ours.
    pub client_no_context_takeover: bool,
    /// The server's window, 9–15 (default 15). A client offers it when below 15.
    pub server_max_window_bits: u8,
    /// Server: the client window to ask for when the client allows it (default 12: a 4 KiB
    /// inflate window per connection). Client: offered as a bare `client_max_window_bits` so
    /// the server may choose; a value below 15 is offered as that limit.
    pub client_max_window_bits: u8,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        Self {
            level: 1,
            threshold: 128,
            server_no_context_takeover: true,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 12,
        }
    }
}

/// Settings both ends agreed on, from this end's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Agreed {
    /// Whether this end resets its compressor after each message.
    pub send_no_context: bool,
    /// This end's compression window; 0 when it may not compress at all (8 bits demanded).
    pub send_window: u8,
    /// Whether the peer resets its compressor after each message.
    pub recv_no_context: bool,
    /// The peer's compression window.
    pub recv_window: u8,
}

/// A negotiated permessage-deflate extension for one connection.
#[derive(Debug)]
pub struct Deflate {
    agreed: Agreed,
    level: Compression,
    threshold: usize,
    /// Our own compressor, only when we keep context across messages.
    compressor: Option<Compress>,
    inflater: Option<Decompress>,
}

/// Server side: answers the first acceptable `permessage-deflate` offer among the request's
/// `Sec-WebSocket-Extensions` values. Returns the response value and the extension, or `None`
/// to go without compression (no offer, or none acceptable: RFC 7692 §5 lets a server decline).
pub fn accept_offer(header_values: &[&[u8]], config: &DeflateConfig) -> Option<(String, Deflate)> {
    header_values
        .iter()
        .filter_map(|value| std::str::from_utf8(value).ok())
        .filter_map(|value| parse_extensions(value).ok())
        .flatten()
        .filter(|item| item.name.eq_ignore_ascii_case(NAME))
        .find_map(|offer| answer_offer(&offer, config))
}

/// Client side: the `Sec-WebSocket-Extensions` offer for `config`.
pub fn client_offer(config: &DeflateConfig) -> String {
    let mut offer = NAME.to_owned();
    if config.server_no_context_takeover {
        offer.push_str("; server_no_context_takeover");
    }
    if config.client_no_context_takeover {
        offer.push_str("; client_no_context_takeover");
    }
    if config.server_max_window_bits < 15 {
        offer.push_str(&format!(
            "; server_max_window_bits={}",
            config.server_max_window_bits
        ));
    }
    if config.client_max_window_bits < 15 {
        offer.push_str(&format!(
            "; client_max_window_bits={}",
            config.client_max_window_bits
        ));
    } else {
        offer.push_str("; client_max_window_bits");
    }
    offer
}

/// Client side: checks the server's `Sec-WebSocket-Extensions` answer to [`client_offer`]
/// (RFC 7692 §5, §7.1) and builds the extension. `Err` names what is wrong; the client must
/// then fail the connection.
pub fn accept_response(response: &str, config: &DeflateConfig) -> Result<Deflate, String> {
    let items = parse_extensions(response).map_err(|err| err.to_string())?;
    let [item] = items.as_slice() else {
        return Err(format!("expected one extension, got {response:?}"));
    };
    if !item.name.eq_ignore_ascii_case(NAME) {
        return Err(format!("extension {:?} was not offered", item.name));
    }
    let params = Params::parse(item)?;
    // A larger window than we offered is harmless (a stream made with a smaller window inflates
    // with any larger one), so we keep to our own limit instead of failing: Autobahn's server
    // answers 15 to an offer of 12, and other servers may too.
    let client_window = match params.client_max_window_bits {
        Some(None) => return Err("client_max_window_bits needs a value in a response".into()),
        Some(Some(bits)) => bits.min(config.client_max_window_bits.max(8)),
        None => config.client_max_window_bits.clamp(8, 15),
    };
    let server_window = match params.server_max_window_bits {
        Some(None) => return Err("server_max_window_bits needs a value".into()),
        Some(Some(bits)) if bits > config.server_max_window_bits => {
            return Err(format!(
                "server_max_window_bits={bits} exceeds the offered {}",
                config.server_max_window_bits
            ));
        }
        Some(Some(bits)) => bits,
        None if config.server_max_window_bits < 15 => {
            return Err("the server ignored the offered server_max_window_bits".into());
        }
        None => 15,
    };
    let agreed = Agreed {
        send_no_context: params.client_no_context_takeover || config.client_no_context_takeover,
        send_window: usable_window(client_window),
        recv_no_context: params.server_no_context_takeover,
        recv_window: server_window,
    };
    Ok(Deflate::new(agreed, config))
}

impl Deflate {
    /// An extension with settings already agreed.
    pub fn new(agreed: Agreed, config: &DeflateConfig) -> Self {
        Self {
            agreed,
            level: Compression::new(config.level.min(9)),
            threshold: config.threshold,
            compressor: None,
            inflater: None,
        }
    }

    /// What was agreed.
    pub fn agreed(&self) -> Agreed {
        self.agreed
    }

    fn compress(&mut self, payload: &[u8], out: &mut BytesMut) -> Result<(), SendError> {
        let (window, level) = (self.agreed.send_window, self.level);
        if self.agreed.send_no_context {
            return with_shared_compressor(window, level, |c| {
                let result = deflate_message(c, payload, out);
                c.reset();
                result
            });
        }
        let compressor = self
            .compressor
            .get_or_insert_with(|| Compress::new_with_window_bits(level, false, window));
        deflate_message(compressor, payload, out)
    }
}

impl Extension for Deflate {
    fn rsv_bits(&self) -> u8 {
        RSV1
    }

    fn decode_begin(&mut self, rsv: u8) -> bool {
        rsv & RSV1 != 0
    }

    fn decode(
        &mut self,
        input: &[u8],
        fin: bool,
        out: &mut BytesMut,
        max: usize,
    ) -> Result<(), ProtocolError> {
        let window = self.agreed.recv_window.max(MIN_COMPRESS_WINDOW);
        let inflater = self
            .inflater
            .get_or_insert_with(|| Decompress::new_with_window_bits(false, window));
        inflate(inflater, input, out, max)?;
        if fin {
            // RFC 7692 §7.2.2: append 0x00 0x00 0xff 0xff to the message's payload, then inflate.
            inflate(inflater, &TAIL, out, max)?;
            if self.agreed.recv_no_context {
                inflater.reset(false);
            }
        }
        Ok(())
    }

    fn encode(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        out: &mut BytesMut,
    ) -> Result<Option<u8>, SendError> {
        let _ = opcode;
        if payload.len() < self.threshold || self.agreed.send_window == 0 {
            return Ok(None);
        }
        self.compress(payload, out)?;
        Ok(Some(RSV1))
    }

    fn shares_output(&self, window_bits: u8) -> bool {
        self.agreed.send_no_context
            && self.agreed.send_window != 0
            && window_bits <= self.agreed.send_window
    }
}

/// Compresses one whole message without context, as every receiver that agreed to
/// `server_no_context_takeover` with a full window can inflate it. `None` below the threshold.
pub fn compress_standalone(payload: &[u8], config: &DeflateConfig) -> Option<BytesMut> {
    if payload.len() < config.threshold {
        return None;
    }
    let mut out = BytesMut::with_capacity(payload.len() / 2 + 16);
    with_shared_compressor(15, Compression::new(config.level.min(9)), |c| {
        let result = deflate_message(c, payload, &mut out);
        c.reset();
        result
    })
    .ok()?;
    Some(out)
}

/// The answer to one offer, or `None` to decline it (RFC 7692 §7.1: unknown, duplicate or
/// invalid parameters, or a window we cannot compress with).
fn answer_offer(offer: &ExtensionItem, config: &DeflateConfig) -> Option<(String, Deflate)> {
    let params = Params::parse(offer).ok()?;
    let mut server_window = config.server_max_window_bits.clamp(MIN_COMPRESS_WINDOW, 15);
    if let Some(requested) = params.server_max_window_bits {
        // A value is mandatory in an offer (§7.1.2.1).
        server_window = server_window.min(requested?);
        if server_window < MIN_COMPRESS_WINDOW {
            return None;
        }
    }
    let send_no_context = config.server_no_context_takeover || params.server_no_context_takeover;
    let recv_no_context = config.client_no_context_takeover || params.client_no_context_takeover;
    let mut response = NAME.to_owned();
    if send_no_context {
        response.push_str("; server_no_context_takeover");
    }
    if recv_no_context {
        response.push_str("; client_no_context_takeover");
    }
    if params.server_max_window_bits.is_some() || server_window < 15 {
        response.push_str(&format!("; server_max_window_bits={server_window}"));
    }
    let client_window = match params.client_max_window_bits {
        // §7.1.2.2: only when offered may the server limit the client's window.
        Some(offered) => {
            let window = config
                .client_max_window_bits
                .clamp(8, 15)
                .min(offered.unwrap_or(15));
            response.push_str(&format!("; client_max_window_bits={window}"));
            window
        }
        None => 15,
    };
    let agreed = Agreed {
        send_no_context,
        send_window: server_window,
        recv_no_context,
        recv_window: client_window,
    };
    Some((response, Deflate::new(agreed, config)))
}

/// The four parameters of RFC 7692 §7.1, each at most once, with valid values.
#[derive(Debug, Default)]
struct Params {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    /// `Some(None)`: present without a value.
    server_max_window_bits: Option<Option<u8>>,
    client_max_window_bits: Option<Option<u8>>,
}

impl Params {
    fn parse(item: &ExtensionItem) -> Result<Self, String> {
        let mut params = Self::default();
        for (name, value) in &item.params {
            let duplicate = match name.as_str() {
                "server_no_context_takeover" => {
                    flag(&mut params.server_no_context_takeover, value)?
                }
                "client_no_context_takeover" => {
                    flag(&mut params.client_no_context_takeover, value)?
                }
                "server_max_window_bits" => bits(&mut params.server_max_window_bits, value)?,
                "client_max_window_bits" => bits(&mut params.client_max_window_bits, value)?,
                other => return Err(format!("unknown parameter {other:?}")),
            };
            if duplicate {
                return Err(format!("parameter {name:?} given twice"));
            }
        }
        Ok(params)
    }
}

/// Records a flag parameter; returns whether it was already set.
fn flag(slot: &mut bool, value: &Option<String>) -> Result<bool, String> {
    if value.is_some() {
        return Err("a no_context_takeover parameter takes no value".into());
    }
    Ok(std::mem::replace(slot, true))
}

/// Records a window-bits parameter (8–15, decimal without leading zeros); returns whether it
/// was already set.
fn bits(slot: &mut Option<Option<u8>>, value: &Option<String>) -> Result<bool, String> {
    let parsed = match value {
        None => None,
        Some(text) if text.len() <= 2 && !text.starts_with('0') => match text.parse::<u8>() {
            Ok(bits @ 8..=15) => Some(bits),
            _ => return Err(format!("window bits {text:?} not in 8..=15")),
        },
        Some(text) => return Err(format!("window bits {text:?} not in 8..=15")),
    };
    Ok(slot.replace(parsed).is_some())
}

/// The window this end compresses with, or 0 when zlib cannot honour the limit.
fn usable_window(bits: u8) -> u8 {
    if bits < MIN_COMPRESS_WINDOW { 0 } else { bits }
}

thread_local! {
    /// Compressors without context, shared by every connection on this thread, one per
    /// (window, level).
    static SHARED: RefCell<Vec<(u8, u32, Compress)>> = const { RefCell::new(Vec::new()) };
}

fn with_shared_compressor<R>(
    window: u8,
    level: Compression,
    f: impl FnOnce(&mut Compress) -> R,
) -> R {
    SHARED.with(|shared| {
        let mut shared = shared.borrow_mut();
        let index = match shared
            .iter()
            .position(|(w, l, _)| *w == window && *l == level.level())
        {
            Some(index) => index,
            None => {
                shared.push((
                    window,
                    level.level(),
                    Compress::new_with_window_bits(level, false, window),
                ));
                shared.len() - 1
            }
        };
        f(&mut shared[index].2)
    })
}

/// Compresses `payload` with a sync flush and removes the trailing empty block (§7.2.1).
fn deflate_message(
    compressor: &mut Compress,
    payload: &[u8],
    out: &mut BytesMut,
) -> Result<(), SendError> {
    let start = out.len();
    let mut consumed = 0;
    loop {
        let room = (payload.len() - consumed) / 2 + 64;
        let len = out.len();
        out.resize(len + room, 0);
        let (in_before, out_before) = (compressor.total_in(), compressor.total_out());
        let status =
            compressor.compress(&payload[consumed..], &mut out[len..], FlushCompress::Sync);
        let produced = (compressor.total_out() - out_before) as usize;
        consumed += (compressor.total_in() - in_before) as usize;
        out.truncate(len + produced);
        status.map_err(|err| SendError::Extension(err.to_string()))?;
        // zlib: a sync flush is complete once it returns with output space to spare.
        if consumed == payload.len() && produced < room {
            break;
        }
    }
    if out[start..].ends_with(&TAIL) {
        out.truncate(out.len() - TAIL.len());
    }
    Ok(())
}

/// Inflates `input` into `out`, failing with 1009 as soon as `out` passes `max`.
fn inflate(
    inflater: &mut Decompress,
    input: &[u8],
    out: &mut BytesMut,
    max: usize,
) -> Result<(), ProtocolError> {
    let mut consumed = 0;
    loop {
        if out.len() > max {
            return Err(ProtocolError::MessageTooBig { max });
        }
        // Never more room than one byte past the limit: that byte is how we notice the excess.
        let room = ((input.len() - consumed) * 4)
            .clamp(1024, 64 * 1024)
            .min(max + 1 - out.len());
        let len = out.len();
        out.resize(len + room, 0);
        let (in_before, out_before) = (inflater.total_in(), inflater.total_out());
        let status =
            inflater.decompress(&input[consumed..], &mut out[len..], FlushDecompress::Sync);
        let produced = (inflater.total_out() - out_before) as usize;
        consumed += (inflater.total_in() - in_before) as usize;
        out.truncate(len + produced);
        match status {
            Ok(Status::StreamEnd) => {
                // A final block ends the stream; the next message starts a new one (§7.2.3.3).
                inflater.reset(false);
                if consumed == input.len() {
                    return Ok(());
                }
            }
            Ok(_) if consumed == input.len() && produced < room => return Ok(()),
            // No progress with input left and room to spare: the data is truncated or bad.
            Ok(_) if produced == 0 && inflater.total_in() == in_before => {
                return Err(ProtocolError::Extension(
                    "compressed data makes no progress".into(),
                ));
            }
            Ok(_) => {}
            Err(err) => {
                return Err(ProtocolError::Extension(format!(
                    "invalid compressed data: {err}"
                )));
            }
        }
        if out.len() > max {
            return Err(ProtocolError::MessageTooBig { max });
        }
    }
}

#[cfg(test)]
mod tests;
