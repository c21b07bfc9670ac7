//! Numbers as decimal text, by hand: day files, report answers and events write them by the
//! million (std's formatting machinery costs several times more), and day files are read
//! back as often.

/// Writes `v` in decimal at the start of `out` (room for 20 bytes), returning its length: two
/// digits a step from the last, straight into `out` once the length is known (a buffer of its
/// own would cost a copy more).
#[inline]
pub fn write(out: &mut [u8], mut v: u64) -> usize {
    let len = digits(v);
    let mut i = len;
    while v >= 100 {
        let d = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        out[i..i + 2].copy_from_slice(&PAIRS[d..d + 2]);
    }
    if v >= 10 {
        out[..2].copy_from_slice(pair(v as u32));
    } else {
        out[0] = b'0' + v as u8;
    }
    len
}

/// How many decimal digits `v` has. Ports and counts are mostly short: the first tests end it.
#[inline]
fn digits(v: u64) -> usize {
    let mut n = 1;
    let mut p = 10u64;
    while n < 20 && v >= p {
        n += 1;
        p = p.wrapping_mul(10);
    }
    n
}

/// Writes `v` (below 100,000) as five digits, with leading zeros.
#[inline]
pub fn five_digits(out: &mut [u8; 5], v: u32) {
    out[0] = b'0' + (v / 10_000) as u8;
    out[1..3].copy_from_slice(pair(v / 100 % 100));
    out[3..5].copy_from_slice(pair(v % 100));
}

/// The two digits of `v` (below 100).
#[inline]
fn pair(v: u32) -> &'static [u8] {
    let d = v as usize * 2;
    &PAIRS[d..d + 2]
}

const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

/// The value of a decimal digit.
#[inline(always)]
pub fn digit(c: u8) -> Option<u32> {
    let d = c.wrapping_sub(b'0');
    (d <= 9).then_some(d as u32)
}

/// The value of eight decimal digits, or `None` when a byte is not one: all eight at once,
/// in one word. A day file's row has two ten-digit times, read by the million.
#[inline(always)]
pub fn eight(b: &[u8; 8]) -> Option<u32> {
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    const TOPS: u64 = 0x8080_8080_8080_8080;
    // The first digit in the lowest byte.
    let d = u64::from_le_bytes(*b).wrapping_sub(ZEROS);
    // A byte below '0' leaves its top bit set; one above '9' sets it once 0x76 is added (a
    // digit's 0 to 9 becomes 0x76 to 0x7f). Borrows and carries across bytes happen only
    // after a byte that is no digit, which is refused anyway.
    if (d | d.wrapping_add(0x7676_7676_7676_7676)) & TOPS != 0 {
        return None;
    }
    // Neighbours fold into pairs, pairs into fours, fours into the eight digits' value: each
    // product puts a group times its weight beside the next group, and the shift brings the
    // sum down to the first group's place.
    let d = (d.wrapping_mul(10 << 8 | 1) >> 8) & 0x00ff_00ff_00ff_00ff;
    let d = (d.wrapping_mul(100 << 16 | 1) >> 16) & 0x0000_ffff_0000_ffff;
    Some((d.wrapping_mul(10_000 << 32 | 1) >> 32) as u32)
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_as_std_writes_them() {
        let mut buf = [0u8; 20];
        // Each length's first and last number, where the count of digits turns.
        let turns = (1..20).flat_map(|k| [10u64.pow(k) - 1, 10u64.pow(k)]);
        for v in [0u64, 101, 65_535, 1_446_188_056, u64::MAX]
            .into_iter()
            .chain(turns)
        {
            let n = super::write(&mut buf, v);
            assert_eq!(&buf[..n], v.to_string().as_bytes());
        }
        for v in [0, 7, 99, 100, 12_345, 99_999] {
            let mut five = [0u8; 5];
            super::five_digits(&mut five, v);
            assert_eq!(&five, format!("{v:05}").as_bytes());
        }
    }

    /// Eight digits read at once as one by one, and any byte that is not a digit, in any
    /// place, refused.
    #[test]
    fn eight_digits_read_at_once() {
        let mut seed = 0x0123_4567_89ab_cdefu64;
        for i in 0..200_000u64 {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let v = (seed >> 20) % 100_000_000;
            let v = [v, i, 99_999_999 - i][(i % 3) as usize];
            let text: [u8; 8] = format!("{v:08}").as_bytes().try_into().unwrap();
            assert_eq!(super::eight(&text), Some(v as u32), "{v:08}");
            let mut bad = text;
            bad[(seed >> 8) as usize % 8] = (seed >> 40) as u8;
            let want = bad
                .iter()
                .all(u8::is_ascii_digit)
                .then(|| bad.iter().fold(0u32, |a, &c| a * 10 + (c - b'0') as u32));
            assert_eq!(super::eight(&bad), want, "{bad:?}");
        }
    }
}
