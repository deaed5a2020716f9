//! Fuzzes the passthrough ClientHello reader against rustls: arbitrary bytes never panic; a prefix of a message
//! never reads as complete with a different name than the whole; and whenever rustls itself accepts the bytes as a
//! ClientHello, the reader gives the same server name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshgate_proxy::sni::{ClientHello, MAX_HELLO, parse};

fuzz_target!(|data: &[u8]| {
    let whole = parse(data);
    if let ClientHello::NeedMore(n) = whole {
        assert!(n > data.len(), "NeedMore({n}) with {} bytes", data.len());
        assert!(n <= MAX_HELLO + 5, "NeedMore({n}) beyond the ClientHello limit");
    }
    // A complete answer must not change when more bytes follow it.
    if let ClientHello::Complete(name) = &whole {
        let mut longer = data.to_vec();
        longer.extend_from_slice(b"\x17\x03\x03\x00\x01x");
        assert_eq!(parse(&longer), ClientHello::Complete(name.clone()));
    }

    let mut acceptor = rustls::server::Acceptor::default();
    let mut reader: &[u8] = data;
    while !reader.is_empty() {
        match acceptor.read_tls(&mut reader) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
    if let Ok(Some(accepted)) = acceptor.accept() {
        let theirs = accepted.client_hello().server_name().map(str::to_owned);
        match whole {
            ClientHello::Complete(ours) => assert_eq!(ours, theirs, "server name differs from rustls"),
            other => panic!("rustls read a ClientHello (SNI {theirs:?}) where the reader said {other:?}"),
        }
    }
});
