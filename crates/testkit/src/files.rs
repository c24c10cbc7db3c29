//! Files for tests and benches: bytes that do not compress, and a valid PNG of any size.

/// `n` pseudo-random bytes (xorshift from `seed`): the same for the same seed, incompressible.
#[must_use]
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A valid PNG of 1×1 pixel whose private ancillary chunk carries `filler` bytes (so its size
/// is what the test wants and its bytes are not compressible).
#[must_use]
pub fn png_of_size(size: usize, seed: u64) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for &b in bytes {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    // 1×1, 8-bit RGB
    chunk(&mut out, b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0]);
    // one scanline (filter 0 + 3 bytes) in a stored deflate block, zlib-wrapped
    let raw = [0u8, 200, 30, 60];
    let mut idat = vec![0x78, 0x01, 0x01, 4, 0, 0xfb, 0xff];
    idat.extend_from_slice(&raw);
    let (mut a, mut b) = (1u32, 0u32);
    for &x in &raw {
        a = (a + u32::from(x)) % 65_521;
        b = (b + a) % 65_521;
    }
    idat.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let fixed = out.len() + 12 + (12 + idat.len()) + 12;
    let filler = noise(size - fixed, seed);
    chunk(&mut out, b"clTr", &filler);
    chunk(&mut out, b"IDAT", &idat);
    chunk(&mut out, b"IEND", &[]);
    assert_eq!(out.len(), size);
    out
}
