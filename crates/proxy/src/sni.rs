//! Reading the SNI of a TLS ClientHello without terminating TLS (for passthrough listeners).
//!
//! Bounds-checked on every read; a malformed ClientHello is `NotTls`, never a panic (fuzzed in `fuzz/`).

/// What the first bytes of a connection say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientHello {
    /// A complete ClientHello; its server name, if it sent one.
    Complete(Option<String>),
    /// Not enough bytes yet; at least this many are needed in total.
    NeedMore(usize),
    /// Not a TLS ClientHello.
    NotTls,
}

/// The largest ClientHello considered (a TLS record is at most 16 KiB plus its 5-byte header; a ClientHello may
/// span records, but SNI is in the first in practice).
pub const MAX_HELLO: usize = 16 * 1024 + 5;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Option<u8> {
        let v = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(v)
    }
    fn u16(&mut self) -> Option<usize> {
        Some(usize::from(self.u8()?) << 8 | usize::from(self.u8()?))
    }
    fn u24(&mut self) -> Option<usize> {
        Some(usize::from(self.u8()?) << 16 | usize::from(self.u8()?) << 8 | usize::from(self.u8()?))
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
}

/// Parses the beginning of a connection as a TLS ClientHello.
pub fn parse(data: &[u8]) -> ClientHello {
    if data.is_empty() {
        return ClientHello::NeedMore(5);
    }
    // TLS record: content type 22 (handshake), version 3.x, length.
    if data[0] != 22 {
        return ClientHello::NotTls;
    }
    if data.len() < 5 {
        return ClientHello::NeedMore(5);
    }
    if data[1] != 3 {
        return ClientHello::NotTls;
    }
    let record_len = usize::from(data[3]) << 8 | usize::from(data[4]);
    if record_len == 0 || record_len > 16 * 1024 + 2048 {
        return ClientHello::NotTls;
    }
    let total = 5 + record_len;
    if data.len() < total {
        return ClientHello::NeedMore(total.min(MAX_HELLO));
    }
    match parse_handshake(&data[5..total]) {
        Some(name) => ClientHello::Complete(name),
        None => ClientHello::NotTls,
    }
}

/// `Some(server name or None)` for a well-formed ClientHello, `None` if malformed.
fn parse_handshake(record: &[u8]) -> Option<Option<String>> {
    let mut r = Reader { buf: record, pos: 0 };
    if r.u8()? != 1 {
        return None; // not a ClientHello
    }
    let len = r.u24()?;
    // The hello may continue in a later record; what is here must still parse up to the extensions we read.
    let body = r.take(len.min(record.len().saturating_sub(4)))?;
    let mut r = Reader { buf: body, pos: 0 };
    r.take(2)?; // legacy version
    r.take(32)?; // random
    let session = usize::from(r.u8()?);
    r.take(session)?;
    let suites = r.u16()?;
    r.take(suites)?;
    let compression = usize::from(r.u8()?);
    r.take(compression)?;
    if r.pos == body.len() {
        return Some(None); // no extensions
    }
    let ext_len = r.u16()?;
    let exts = r.take(ext_len)?;
    let mut e = Reader { buf: exts, pos: 0 };
    while e.pos < exts.len() {
        let kind = e.u16()?;
        let len = e.u16()?;
        let data = e.take(len)?;
        if kind != 0 {
            continue;
        }
        let mut s = Reader { buf: data, pos: 0 };
        let list = s.u16()?;
        let list = s.take(list)?;
        let mut l = Reader { buf: list, pos: 0 };
        while l.pos < list.len() {
            let name_type = l.u8()?;
            let n = l.u16()?;
            let name = l.take(n)?;
            if name_type == 0 {
                let name = std::str::from_utf8(name).ok()?;
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
                    return None;
                }
                return Some(Some(name.to_ascii_lowercase()));
            }
        }
        return Some(None);
    }
    Some(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ClientHello with an optional SNI.
    pub(crate) fn hello(sni: Option<&str>) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend([7u8; 32]);
        body.push(0); // session id
        body.extend([0, 2, 0x13, 0x01]); // one cipher suite
        body.extend([1, 0]); // compression: null
        let mut exts = Vec::new();
        if let Some(name) = sni {
            let mut list = vec![0u8];
            list.extend((name.len() as u16).to_be_bytes());
            list.extend(name.as_bytes());
            let mut ext = (list.len() as u16).to_be_bytes().to_vec();
            ext.extend(list);
            exts.extend([0, 0]);
            exts.extend((ext.len() as u16).to_be_bytes());
            exts.extend(ext);
        }
        exts.extend([0, 43, 0, 3, 2, 3, 4]); // supported_versions
        body.extend((exts.len() as u16).to_be_bytes());
        body.extend(exts);
        let mut hs = vec![1];
        hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend(body);
        let mut rec = vec![22, 3, 1];
        rec.extend((hs.len() as u16).to_be_bytes());
        rec.extend(hs);
        rec
    }

    #[test]
    fn reads_sni() {
        assert_eq!(parse(&hello(Some("Foo.Example.com"))), ClientHello::Complete(Some("foo.example.com".into())));
        assert_eq!(parse(&hello(None)), ClientHello::Complete(None));
    }

    #[test]
    fn partial_and_garbage() {
        let h = hello(Some("a.example.com"));
        assert!(matches!(parse(&h[..3]), ClientHello::NeedMore(5)));
        assert_eq!(parse(&h[..20]), ClientHello::NeedMore(h.len()));
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), ClientHello::NotTls);
        let mut broken = h.clone();
        broken[9] = 0xff; // impossible handshake length
        let _ = parse(&broken);
        for cut in 0..h.len() {
            let _ = parse(&h[..cut]);
        }
        let mut corrupted = h;
        for i in 5..corrupted.len() {
            corrupted[i] ^= 0x5a;
            let _ = parse(&corrupted);
        }
    }
}
