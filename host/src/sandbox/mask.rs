//! Secret masking: replaces every granted secret value in a run's words
//! (log, output, error message) with `[secret:NAME]`, in one pass over the
//! bytes for all secrets at once, and masks a value's beginning left at the
//! end by a cut. It only transforms bytes; when it runs (off the async
//! workers, inside the run's deadline) is the caller's business.
//!
//! The pass is an Aho-Corasick automaton over every value (the
//! `aho-corasick` crate's contiguous NFA, the most compact of its
//! automatons: a run may hold 64 secrets of 64 KiB). At each byte it takes
//! the longest value ending there; overlapping occurrences merge into one
//! masked span, so no part of any value survives, whatever the values
//! share. Time is linear in the bytes plus the values, whatever they are.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use aho_corasick::automaton::Automaton;
use aho_corasick::nfa::contiguous::NFA;
use aho_corasick::{Anchored, MatchKind};

/// Shortest cut-off beginning of a value that is masked at a cut.
const MIN_MASKED_TAIL: usize = 3;

/// Bytes scanned between two looks at the clock.
const DEADLINE_STRIDE: usize = 64 << 10;

/// What stands for bytes that could not be masked.
pub const WITHHELD: &[u8] = b"[sandcron: withheld: the secrets in it could not be masked]";

/// What stands for the value of secret `name` wherever it is masked (and
/// what a replay hands a plugin as the value, see `tape`).
pub fn marker(name: &str) -> String {
    format!("[secret:{name}]")
}

/// Masking did not finish before its deadline (or could not start); none
/// of the bytes may be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("masking the secrets did not finish before the run's deadline")]
pub struct MaskingTimedOut;

/// The secret values one run was granted, to mask wherever the run's words
/// are kept. Cheap to clone; the automaton is built on first use.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// (name, value), values non-empty.
    values: Vec<(String, Vec<u8>)>,
    /// `[secret:NAME]` per value, in the same order.
    markers: Vec<Vec<u8>>,
    /// None when there are no values or the automaton could not be built
    /// (then [`Secrets::mask`] falls back to one search per value).
    automaton: OnceLock<Option<NFA>>,
}

impl Secrets {
    /// Masks the values of these (name, value) pairs; empty values are skipped.
    pub fn new<'a>(granted: impl IntoIterator<Item = (&'a String, &'a String)>) -> Secrets {
        let values: Vec<(String, Vec<u8>)> = granted
            .into_iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| (name.clone(), value.as_bytes().to_vec()))
            .collect();
        let markers = values.iter().map(|(name, _)| marker(name).into_bytes()).collect();
        Secrets {
            inner: Arc::new(Inner {
                values,
                markers,
                automaton: OnceLock::new(),
            }),
        }
    }

    /// True when there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.inner.values.is_empty()
    }

    fn automaton(&self) -> Option<&NFA> {
        self.inner
            .automaton
            .get_or_init(|| {
                if self.inner.values.is_empty() {
                    return None;
                }
                let patterns = self.inner.values.iter().map(|(_, value)| value);
                match NFA::builder().match_kind(MatchKind::Standard).build(patterns) {
                    Ok(automaton) => Some(automaton),
                    Err(error) => {
                        tracing::error!(%error, "cannot build the secret masking automaton");
                        None
                    }
                }
            })
            .as_ref()
    }

    /// `bytes` with each occurrence of a value replaced by `[secret:NAME]`.
    pub fn mask(&self, bytes: &[u8]) -> Vec<u8> {
        // Without a deadline only a failure to build the automaton stops it.
        self.mask_until(bytes, None).unwrap_or_else(|_| WITHHELD.to_vec())
    }

    /// As [`Secrets::mask`], giving up once `deadline` has passed.
    pub fn mask_until(&self, bytes: &[u8], deadline: Option<Instant>) -> Result<Vec<u8>, MaskingTimedOut> {
        if self.is_empty() || bytes.len() < self.shortest() {
            return Ok(bytes.to_vec());
        }
        let Some(automaton) = self.automaton() else {
            return Err(MaskingTimedOut);
        };
        let mut spans = Spans::new(bytes, &self.inner.markers);
        let start = automaton.start_state(Anchored::No).map_err(|_| MaskingTimedOut)?;
        let longest = automaton.max_pattern_len();
        let prefilter = automaton.prefilter();
        let (mut state, mut at, mut unchecked) = (start, 0, 0);
        while at < bytes.len() {
            // Between matches, skip to where one could start (the crate's
            // prefilter: a fast search for the values' rare bytes).
            if let Some(prefilter) = prefilter
                && state == start
            {
                match prefilter
                    .find_in(bytes, aho_corasick::Span::from(at..bytes.len()))
                    .into_option()
                {
                    None => break,
                    Some(candidate) => at = at.max(candidate),
                }
            }
            state = automaton.next_state(Anchored::No, state, bytes[at]);
            at += 1;
            if automaton.is_match(state) {
                // Matches at a state come longest first: its own value, then
                // those reached through its failure links (suffixes of it).
                let pattern = automaton.match_pattern(state, 0);
                spans.add(at - automaton.pattern_len(pattern), at, pattern.as_usize());
            }
            // A later match ends past `at` and is at most `longest` long.
            spans.settle((at + 1).saturating_sub(longest));
            unchecked += 1;
            if unchecked == DEADLINE_STRIDE {
                unchecked = 0;
                if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                    return Err(MaskingTimedOut);
                }
            }
        }
        Ok(spans.finish())
    }

    fn shortest(&self) -> usize {
        self.inner
            .values
            .iter()
            .map(|(_, value)| value.len())
            .min()
            .unwrap_or(0)
    }

    /// Masks a value's beginning (at least 3 bytes, or the whole value when
    /// shorter) left at the end of `bytes` by a cut; the longest such
    /// beginning of any value wins.
    pub fn mask_cut_tail(&self, bytes: &mut Vec<u8>) {
        let mut best: Option<(usize, usize)> = None;
        for (index, (_, value)) in self.inner.values.iter().enumerate() {
            let length = longest_prefix_at_end(value, bytes);
            if length >= MIN_MASKED_TAIL.min(value.len()) && length > best.map_or(0, |(_, length)| length) {
                best = Some((index, length));
            }
        }
        if let Some((index, length)) = best {
            bytes.truncate(bytes.len() - length);
            bytes.extend_from_slice(&self.inner.markers[index]);
        }
    }

    /// A message with the values masked.
    pub fn mask_text(&self, text: &str) -> String {
        String::from_utf8_lossy(&self.mask(text.as_bytes())).into_owned()
    }
}

/// The length of the longest proper beginning of `value` that `bytes` ends
/// with (Knuth-Morris-Pratt over the last `value.len() - 1` bytes: linear).
fn longest_prefix_at_end(value: &[u8], bytes: &[u8]) -> usize {
    if value.len() < 2 {
        return 0;
    }
    let mut failure = vec![0usize; value.len()];
    let mut matched = 0;
    for at in 1..value.len() {
        while matched > 0 && value[at] != value[matched] {
            matched = failure[matched - 1];
        }
        if value[at] == value[matched] {
            matched += 1;
        }
        failure[at] = matched;
    }
    let tail = &bytes[bytes.len().saturating_sub(value.len() - 1)..];
    let mut matched = 0;
    for byte in tail {
        while matched > 0 && *byte != value[matched] {
            matched = failure[matched - 1];
        }
        if *byte == value[matched] {
            matched += 1;
        }
        // The tail is shorter than the value, so `matched` never reaches it.
    }
    matched
}

/// The masked spans found so far, written out once no later match can
/// overlap them, so memory stays bounded by the longest value.
struct Spans<'a> {
    bytes: &'a [u8],
    markers: &'a [Vec<u8>],
    /// Disjoint and in order; the last ones may still grow.
    open: VecDeque<Span>,
    /// Bytes before here are in `out`.
    written: usize,
    out: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    /// The longest value in it, whose marker replaces it.
    pattern: usize,
    length: usize,
}

impl<'a> Spans<'a> {
    fn new(bytes: &'a [u8], markers: &'a [Vec<u8>]) -> Spans<'a> {
        Spans {
            bytes,
            markers,
            open: VecDeque::new(),
            written: 0,
            out: Vec::with_capacity(bytes.len()),
        }
    }

    /// A match of `pattern` over `start..end`; `end` never decreases.
    fn add(&mut self, start: usize, end: usize, pattern: usize) {
        let mut span = Span {
            start,
            end,
            pattern,
            length: end - start,
        };
        while let Some(last) = self.open.back().copied() {
            if last.end <= span.start {
                break;
            }
            self.open.pop_back();
            span.start = span.start.min(last.start);
            if last.length > span.length {
                (span.pattern, span.length) = (last.pattern, last.length);
            }
        }
        self.open.push_back(span);
    }

    /// Writes out the spans ending at or before `before`.
    fn settle(&mut self, before: usize) {
        while self.open.front().is_some_and(|span| span.end <= before) {
            if let Some(span) = self.open.pop_front() {
                self.write(span);
            }
        }
    }

    fn write(&mut self, span: Span) {
        self.out.extend_from_slice(&self.bytes[self.written..span.start]);
        self.out.extend_from_slice(&self.markers[span.pattern]);
        self.written = span.end;
    }

    fn finish(mut self) -> Vec<u8> {
        while let Some(span) = self.open.pop_front() {
            self.write(span);
        }
        self.out.extend_from_slice(&self.bytes[self.written..]);
        self.out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Secrets of (name, value) pairs, for tests here and of the log.
    pub(crate) fn granted(pairs: &[(&str, &str)]) -> Secrets {
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        Secrets::new(owned.iter().map(|(name, value)| (name, value)))
    }

    #[test]
    fn secret_values_are_masked_wherever_they_appear() {
        let secrets = granted(&[("db", "hunter2"), ("api", "tok-hunter2-x"), ("empty", "")]);
        assert_eq!(
            secrets.mask_text("a hunter2 b tok-hunter2-x chunter2hunter2"),
            "a [secret:db] b [secret:api] c[secret:db][secret:db]"
        );
        assert_eq!(secrets.mask_text("nothing here"), "nothing here");
        assert_eq!(Secrets::default().mask_text("hunter2"), "hunter2");
    }

    #[test]
    fn overlapping_values_are_masked_as_one_span() {
        // A shorter value starting before a longer one must not leave the
        // longer one's end in the clear, and nested values mask whole.
        let secrets = granted(&[("short", "xa"), ("long", "abcdef")]);
        assert_eq!(secrets.mask_text("1xabcdef2"), "1[secret:long]2");
        let nested = granted(&[("one", "a"), ("two", "aa"), ("three", "aaa")]);
        assert_eq!(nested.mask_text("baaaaab"), "b[secret:three]b");
    }

    #[test]
    fn a_cut_beginning_of_a_value_is_masked_at_the_end() {
        let secrets = granted(&[("db", "hunter2"), ("short", "ab")]);
        let cases: &[(&str, &str)] = &[
            ("pw: hunt", "pw: [secret:db]"),
            ("pw: hu", "pw: hu"), // under three bytes: could be anything
            ("pw: hunter", "pw: [secret:db]"),
            ("x ab", "x ab"), // a whole value is `mask`'s work, not the cut's
            ("x a", "x a"),   // one byte of a two-byte value: too little to tell
            ("nothing", "nothing"),
        ];
        for (text, expected) in cases {
            let mut bytes = text.as_bytes().to_vec();
            secrets.mask_cut_tail(&mut bytes);
            assert_eq!(String::from_utf8(bytes).unwrap(), *expected, "{text}");
        }
    }

    #[test]
    fn masking_past_its_deadline_gives_nothing_back() {
        let secrets = granted(&[("db", "hunter2")]);
        // Back-to-back values keep the automaton busy (text the prefilter
        // rules out would be skipped whole).
        let bytes = b"hunter2".repeat(DEADLINE_STRIDE);
        let past = Instant::now();
        assert_eq!(secrets.mask_until(&bytes, Some(past)), Err(MaskingTimedOut));
        assert_eq!(
            secrets.mask_until(&bytes, None).unwrap(),
            b"[secret:db]".repeat(DEADLINE_STRIDE)
        );
    }

    #[test]
    fn a_large_secret_in_megabytes_of_output_masks_in_linear_time() {
        // A 64 KiB value of one repeated byte in 4 MiB of that byte broken up
        // every 64 KiB - 1 bytes: the old byte-by-byte comparison did ~2^38
        // steps here.
        let value = "a".repeat(64 << 10);
        let secrets = granted(&[("big", &value)]);
        let mut bytes = Vec::new();
        while bytes.len() < 4 << 20 {
            bytes.extend(std::iter::repeat_n(b'a', (64 << 10) - 1));
            bytes.push(b'\n');
        }
        let started = Instant::now();
        let masked = secrets.mask(&bytes);
        assert_eq!(masked, bytes, "no whole value occurs");
        // Generous: a linear pass takes tens of milliseconds even unoptimised.
        assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());
    }

    /// Every byte covered by an occurrence of some value, by brute force.
    fn covered(values: &[Vec<u8>], bytes: &[u8]) -> Vec<bool> {
        let mut covered = vec![false; bytes.len()];
        for value in values.iter().filter(|value| !value.is_empty()) {
            for start in 0..bytes.len() {
                if bytes[start..].starts_with(value) {
                    covered[start..start + value.len()]
                        .iter_mut()
                        .for_each(|byte| *byte = true);
                }
            }
        }
        covered
    }

    proptest! {
        #[test]
        fn masking_keeps_exactly_the_bytes_no_value_covers(
            values in prop::collection::vec("[ab]{1,4}", 1..4),
            text in "[abc]{0,40}",
        ) {
            let named: Vec<(String, String)> =
                values.iter().enumerate().map(|(index, value)| (format!("s{index}"), value.clone())).collect();
            let secrets = Secrets::new(named.iter().map(|(name, value)| (name, value)));
            let masked = secrets.mask(text.as_bytes());
            let values: Vec<Vec<u8>> = values.iter().map(|value| value.as_bytes().to_vec()).collect();
            let covered = covered(&values, text.as_bytes());
            // The uncovered bytes, in order, are what is left once the
            // markers are taken out; markers hold no `a`/`b`/`c` of the text.
            let kept: Vec<u8> = text.bytes().zip(&covered).filter(|(_, covered)| !**covered).map(|(byte, _)| byte).collect();
            let mut unmarked = String::from_utf8(masked).unwrap();
            for (name, _) in &named {
                unmarked = unmarked.replace(&format!("[secret:{name}]"), "");
            }
            prop_assert_eq!(unmarked.into_bytes(), kept);
        }
    }
}
