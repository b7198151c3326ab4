//! lbd patch: table-driven Huffman coding of QPACK string literals (RFC 9204 4.1.2, with the code
//! of RFC 7541 Appendix B).
//!
//! Upstream h3 codes these strings one bit at a time (`encode.rs`, `decode.rs`), and copies each
//! string twice on the way. Profiled in lbd, that was 8.5% of the instructions of a proxied HTTP/3
//! request for the encoder alone (a response's few headers) and 2.6% for the decoder. Here the
//! encoder shifts whole codes into a 64-bit accumulator, and the decoder finds each code's length
//! with the canonical-code limits (at most 26 comparisons, 5 to 8 for common characters). The
//! output is byte for byte what upstream's encoder writes; `encode.rs` and `decode.rs` stay as the
//! reference the tests compare against.

use bytes::BufMut;

use super::table::{CODES, FIRST, LIMIT, OFFSET, SORTED};

/// Number of bytes `value` takes once Huffman-coded
pub(super) fn encoded_len(value: &[u8]) -> usize {
    let bits: usize = value.iter().map(|&b| CODES[b as usize].1 as usize).sum();
    bits.div_ceil(8)
}

/// Appends the Huffman code of `value` to `out` (`encoded_len` bytes), padded with the most
/// significant bits of EOS
pub(super) fn encode_into<B: BufMut>(value: &[u8], out: &mut B) {
    // Bits not yet written, in the low `pending` bits of `acc` (never more than 7 + 30).
    let mut acc: u64 = 0;
    let mut pending: u32 = 0;
    for &b in value {
        let (code, len) = CODES[b as usize];
        acc = (acc << len) | u64::from(code);
        pending += u32::from(len);
        while pending >= 8 {
            pending -= 8;
            out.put_u8((acc >> pending) as u8);
        }
    }
    if pending > 0 {
        out.put_u8(((acc << (8 - pending)) as u8) | (0xff >> pending));
    }
}

/// Why a Huffman-coded string was refused
#[derive(Debug, PartialEq, Eq)]
pub(super) enum DecodeError {
    /// The string ends with more than 7 bits of padding, or padding that is not all ones
    BadPadding,
    /// The string contains the EOS symbol
    Eos,
}

/// Decodes a Huffman-coded string
pub(super) fn decode(input: &[u8]) -> Result<Vec<u8>, DecodeError> {
    // Each code is at least 5 bits long.
    let mut out = Vec::with_capacity(input.len() * 8 / 5);
    // Bits read but not yet decoded, in the low `avail` bits of `acc`.
    let mut acc: u64 = 0;
    let mut avail: u32 = 0;
    let mut next = 0;
    loop {
        while avail <= 56 && next < input.len() {
            acc = (acc << 8) | u64::from(input[next]);
            avail += 8;
            next += 1;
        }
        if avail == 0 {
            return Ok(out);
        }
        // The next 30 bits (the longest code), padded with ones past the end of the input.
        let peek = if avail >= 30 {
            (acc >> (avail - 30)) as u32 & 0x3fff_ffff
        } else {
            ((acc << (30 - avail)) as u32 | ((1u32 << (30 - avail)) - 1)) & 0x3fff_ffff
        };
        let mut len = 5;
        while len < 30 && (peek >> (30 - len)) >= LIMIT[len as usize] {
            len += 1;
        }
        if len > avail {
            // The code runs past the end: what is left must be padding (RFC 7541 5.2), at most 7
            // bits, all ones. Ones padded to 30 bits are EOS, the only code of 30 ones.
            let rest = acc & ((1u64 << avail) - 1);
            return if avail < 8 && rest == (1u64 << avail) - 1 {
                Ok(out)
            } else {
                Err(DecodeError::BadPadding)
            };
        }
        let code = peek >> (30 - len);
        let symbol = SORTED[(u32::from(OFFSET[len as usize]) + code - FIRST[len as usize]) as usize];
        if symbol == 256 {
            return Err(DecodeError::Eos);
        }
        out.push(symbol as u8);
        avail -= len;
        acc &= (1u64 << avail) - 1;
    }
}

#[cfg(test)]
mod tests {
    use super::super::{HpackStringDecode, HpackStringEncode};
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn encode(value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_into(value, &mut out);
        out
    }

    #[test]
    fn rfc7541_examples() {
        // RFC 7541 C.4.1 to C.4.3 and C.6.1
        let cases: &[(&str, &str)] = &[
            ("www.example.com", "f1e3 c2e5 f23a 6ba0 ab90 f4ff"),
            ("no-cache", "a8eb 1064 9cbf"),
            ("custom-key", "25a8 49e9 5ba9 7d7f"),
            ("custom-value", "25a8 49e9 5bb8 e8b4 bf"),
            ("302", "6402"),
            ("private", "aec3 771a 4b"),
            ("Mon, 21 Oct 2013 20:13:21 GMT", "d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff"),
            ("https://www.example.com", "9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3"),
        ];
        for (text, coded) in cases {
            assert_eq!(encode(text.as_bytes()), hex(coded), "{text}");
            assert_eq!(encoded_len(text.as_bytes()), hex(coded).len(), "{text}");
            assert_eq!(decode(&hex(coded)).unwrap(), text.as_bytes(), "{text}");
        }
    }

    #[test]
    fn same_bytes_as_upstreams_coder_for_every_symbol_and_mixed_strings() {
        let mut inputs: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        inputs.push((0..=255u8).collect());
        inputs.push((0..=255u8).rev().collect());
        inputs.push(Vec::new());
        // Deterministic pseudo-random strings of every length up to 200
        let mut x: u32 = 0x1234_5678;
        for len in 0..200 {
            let s: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    // Mostly header-like text, sometimes any byte
                    if x % 7 == 0 { (x >> 8) as u8 } else { b"abcdefghijklmnopqrstuvwxyz0123456789-/:;,.= "[(x % 44) as usize] }
                })
                .collect();
            inputs.push(s);
        }
        for input in inputs {
            let ours = encode(&input);
            let theirs = input.clone().hpack_encode().unwrap();
            assert_eq!(ours, theirs, "{input:?}");
            let back: Vec<u8> = ours.clone().hpack_decode().map(|b| b.unwrap()).collect();
            assert_eq!(back, input, "upstream decodes ours: {input:?}");
            assert_eq!(decode(&ours).unwrap(), input, "{input:?}");
        }
    }

    #[test]
    fn refuses_bad_padding_and_eos() {
        // "a" is 00011 (5 bits); padded with 111 it is 0x1f.
        assert_eq!(decode(&[0x1f]).unwrap(), b"a");
        // Padding of zeros
        assert_eq!(decode(&[0x18]), Err(DecodeError::BadPadding));
        // A whole byte of padding (8 ones) after "a"
        assert_eq!(decode(&[0x1f, 0xff]), Err(DecodeError::BadPadding));
        // EOS itself (30 ones) followed by padding
        assert_eq!(decode(&[0xff, 0xff, 0xff, 0xff]), Err(DecodeError::Eos));
        // Empty input is the empty string
        assert_eq!(decode(&[]).unwrap(), b"");
    }
}
