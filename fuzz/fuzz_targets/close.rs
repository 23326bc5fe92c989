//! `CloseFrame::decode` on an arbitrary close payload: round trip; see `ripple_proto_fuzz::frame::close`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ripple_proto_fuzz::frame::close(data));
