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
}
