//! What each event carries: `SEQ SEND_US ` then padding, so every subscriber
//! can check order and measure latency with no shared state.

/// The data of event `seq` sent `send_us` µs after the bench started, padded
/// with `x` to `size` bytes (never cut below the two numbers).
pub(crate) fn encode(seq: u64, send_us: u64, size: usize) -> Vec<u8> {
    let mut data = format!("{seq} {send_us} ").into_bytes();
    if data.len() < size {
        data.resize(size, b'x');
    }
    data
}

/// The (sequence number, send time in µs) of an event's data, if it is one of ours.
pub(crate) fn decode(data: &[u8]) -> Option<(u64, u64)> {
    let mut parts = data.splitn(3, |&b| b == b' ');
    let seq = number(parts.next()?)?;
    let sent = number(parts.next()?)?;
    Some((seq, sent))
}

fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_pads() {
        let d = encode(42, 123_456, 32);
        assert_eq!(d.len(), 32);
        assert!(d.starts_with(b"42 123456 xxx"));
        assert_eq!(decode(&d), Some((42, 123_456)));
        assert_eq!(decode(&encode(7, 0, 0)), Some((7, 0)));
    }

    #[test]
    fn foreign_data_is_refused() {
        for bad in [
            &b""[..],
            b"hello",
            b"1",
            b"1 x",
            b"-1 2",
            b"99999999999999999999 1",
        ] {
            assert_eq!(decode(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
