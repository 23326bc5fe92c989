//! A server-role `Connection` fed fuzzer-chosen wire bytes and commands; see
//! `ripple_proto_fuzz::connection` for the input layout and the invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ripple_proto::Role;

fuzz_target!(|data: &[u8]| ripple_proto_fuzz::connection::run(Role::Server, data));
