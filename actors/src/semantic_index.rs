//! The semantic cache's vector index: embeddings of cached prompts, grouped by partition (an opaque
//! string the gateway builds from what must match exactly: namespace, scope, model group, parameters).
//!
//! A lookup is an exact linear scan of one partition: the dot product of the normalized query with
//! every normalized vector there, skipping expired ones. That costs O(n·d) per lookup (n vectors in
//! the partition, d dimensions), with no approximation and nothing to rebuild on insert; the index is
//! bounded by `max_entries` (the oldest vector goes first), which bounds the scan. Measured on the
//! development machine (2 cores), 10,000 vectors × 1,536 dimensions in one partition: see
//! [`crate::response_cache`]'s module documentation for the numbers.
//!
//! This module uses only `std`, so that its scan can be measured in an optimized build on its own
//! (`rustc -O --test semantic_index.rs`, then `./semantic_index --ignored --nocapture`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

/// One stored vector.
struct Slot {
    key: Arc<str>,
    /// Insertion order: the smallest goes first when the index is full.
    seq: u64,
    vector: Box<[f32]>,
    expires: Option<Instant>,
}

/// Vectors by partition, bounded by a number of vectors across all partitions.
pub(crate) struct SemanticIndex {
    partitions: HashMap<Arc<str>, Vec<Slot>>,
    /// Where each key's vector is: its partition and insertion number (a key has one vector).
    by_key: HashMap<Arc<str>, (Arc<str>, u64)>,
    /// Insertion number → key, oldest first.
    order: BTreeMap<u64, Arc<str>>,
    next_seq: u64,
    max_entries: usize,
}

impl SemanticIndex {
    pub(crate) fn new(max_entries: usize) -> Self {
        Self {
            partitions: HashMap::new(),
            by_key: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            max_entries,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }

    pub(crate) fn contains(&self, key: &str) -> bool {
        self.by_key.contains_key(key)
    }

    /// Store `vector` (already normalized, see [`normalize`]) for `key`, replacing the key's previous
    /// vector. Returns how many of the oldest vectors were dropped to stay within the bound.
    pub(crate) fn insert(
        &mut self,
        partition: &str,
        key: &str,
        vector: Box<[f32]>,
        expires: Option<Instant>,
    ) -> usize {
        self.remove(key);
        if self.max_entries == 0 {
            return 0;
        }
        let key: Arc<str> = Arc::from(key);
        let partition: Arc<str> = match self.partitions.get_key_value(partition) {
            Some((p, _)) => p.clone(),
            None => Arc::from(partition),
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.partitions
            .entry(partition.clone())
            .or_default()
            .push(Slot {
                key: key.clone(),
                seq,
                vector,
                expires,
            });
        self.by_key.insert(key.clone(), (partition, seq));
        self.order.insert(seq, key);
        let mut dropped = 0;
        while self.by_key.len() > self.max_entries {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.remove(&oldest);
            dropped += 1;
        }
        dropped
    }

    /// Forget `key`'s vector; `true` when it had one.
    pub(crate) fn remove(&mut self, key: &str) -> bool {
        let Some((partition, seq)) = self.by_key.remove(key) else {
            return false;
        };
        self.order.remove(&seq);
        if let Some(slots) = self.partitions.get_mut(&partition) {
            if let Some(i) = slots.iter().position(|s| s.seq == seq) {
                slots.swap_remove(i);
            }
            if slots.is_empty() {
                self.partitions.remove(&partition);
            }
        }
        true
    }

    pub(crate) fn clear(&mut self) {
        self.partitions.clear();
        self.by_key.clear();
        self.order.clear();
    }

    /// Drop the vectors expired at `now`; returns how many.
    pub(crate) fn sweep(&mut self, now: Instant) -> usize {
        let expired: Vec<Arc<str>> = self
            .partitions
            .values()
            .flatten()
            .filter(|s| s.expires.is_some_and(|e| e <= now))
            .map(|s| s.key.clone())
            .collect();
        for key in &expired {
            self.remove(key);
        }
        expired.len()
    }

    /// The most similar unexpired vector of `partition` to `query` (normalized), when its cosine
    /// similarity is at least `threshold`. Vectors of another dimension are skipped.
    pub(crate) fn nearest(
        &self,
        partition: &str,
        query: &[f32],
        threshold: f32,
        now: Instant,
    ) -> Option<(Arc<str>, f32)> {
        let slots = self.partitions.get(partition)?;
        let mut best: Option<(&Slot, f32)> = None;
        for slot in slots {
            if slot.vector.len() != query.len() || slot.expires.is_some_and(|e| e <= now) {
                continue;
            }
            let similarity = dot(&slot.vector, query);
            if best.is_none_or(|(_, b)| similarity > b) {
                best = Some((slot, similarity));
            }
        }
        best.filter(|(_, s)| *s >= threshold)
            .map(|(slot, s)| (slot.key.clone(), s))
    }
}

/// `vector` scaled to unit length, so that a dot product is the cosine similarity. `None` for an
/// empty, all-zero or non-finite vector, which is similar to nothing.
pub(crate) fn normalize(vector: &[f32]) -> Option<Box<[f32]>> {
    let norm = dot(vector, vector).sqrt();
    if vector.is_empty() || !norm.is_finite() || norm == 0.0 {
        return None;
    }
    Some(vector.iter().map(|x| x / norm).collect())
}

/// Dot product with eight independent sums, which the compiler turns into SIMD (a single running
/// sum cannot be reordered, so it would stay scalar).
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut sums = [0.0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for i in 0..8 {
            sums[i] += x[i] * y[i];
        }
    }
    sums.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn unit(v: &[f32]) -> Box<[f32]> {
        normalize(v).unwrap()
    }

    #[test]
    fn dot_matches_a_plain_sum_for_every_length() {
        for n in 0..40 {
            let a: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 3.0).collect();
            let b: Vec<f32> = (0..n).map(|i| 2.0 - i as f32 * 0.25).collect();
            let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - plain).abs() < 1e-3, "length {n}");
        }
    }

    #[test]
    fn degenerate_vectors_are_not_indexed() {
        assert!(normalize(&[]).is_none());
        assert!(normalize(&[0.0, 0.0]).is_none());
        assert!(normalize(&[f32::NAN, 1.0]).is_none());
        let v = unit(&[3.0, 4.0]);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
    }

    #[test]
    fn nearest_finds_the_most_similar_within_its_partition_above_the_threshold() {
        let now = Instant::now();
        let mut index = SemanticIndex::new(10);
        index.insert("p", "x", unit(&[1.0, 0.0, 0.0]), None);
        index.insert("p", "xy", unit(&[1.0, 1.0, 0.0]), None);
        index.insert("q", "z", unit(&[0.0, 0.0, 1.0]), None);
        index.insert("p", "short", unit(&[1.0, 0.0]), None);
        let (key, sim) = index
            .nearest("p", &unit(&[0.9, 0.1, 0.0]), 0.9, now)
            .unwrap();
        assert_eq!(&*key, "x");
        assert!(sim > 0.99);
        // z is identical but in another partition.
        assert!(index
            .nearest("p", &unit(&[0.0, 0.0, 1.0]), 0.5, now)
            .is_none());
        assert!(index
            .nearest("none", &unit(&[1.0, 0.0, 0.0]), 0.0, now)
            .is_none());
        // Replacing a key's vector moves it.
        index.insert("q", "x", unit(&[0.0, 1.0, 0.0]), None);
        assert_eq!(index.len(), 4);
        let (key, _) = index
            .nearest("p", &unit(&[1.0, 0.0, 0.0]), 0.5, now)
            .unwrap();
        assert_eq!(&*key, "xy");
    }

    #[test]
    fn the_oldest_vectors_go_first_and_expired_ones_are_skipped_then_swept() {
        let now = Instant::now();
        let mut index = SemanticIndex::new(2);
        assert_eq!(index.insert("p", "a", unit(&[1.0, 0.0]), None), 0);
        assert_eq!(index.insert("p", "b", unit(&[0.0, 1.0]), None), 0);
        assert_eq!(index.insert("p", "c", unit(&[1.0, 1.0]), None), 1);
        assert!(!index.contains("a") && index.contains("b") && index.contains("c"));

        let past = now - Duration::from_millis(1);
        index.insert("p", "old", unit(&[1.0, 0.0]), Some(past));
        assert!(index.nearest("p", &unit(&[1.0, 0.0]), 0.99, now).is_none());
        assert_eq!(index.sweep(now), 1);
        assert!(!index.contains("old"));
        assert!(index.remove("c"));
        assert!(!index.remove("c"));
        assert_eq!(
            index.len(),
            0,
            "b was dropped for old, old swept, c removed"
        );
    }

    /// The search cost quoted in the module documentation. Prints, asserts nothing about time.
    #[test]
    #[ignore = "a measurement: run with --ignored --nocapture"]
    fn measure_a_scan_of_10000_vectors_of_1536_dimensions() {
        let (n, d) = (10_000usize, 1_536usize);
        let mut index = SemanticIndex::new(n);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        for i in 0..n {
            let v: Vec<f32> = (0..d).map(|_| next()).collect();
            index.insert("p", &format!("k{i}"), unit(&v), None);
        }
        let query = unit(&(0..d).map(|_| next()).collect::<Vec<_>>());
        let now = Instant::now();
        let rounds = 20;
        let started = Instant::now();
        let mut found = 0;
        for _ in 0..rounds {
            found += usize::from(index.nearest("p", &query, -1.0, now).is_some());
        }
        let per_lookup = started.elapsed() / rounds;
        assert_eq!(found, rounds as usize);
        println!("semantic index: {n} vectors x {d} dims, one lookup: {per_lookup:?}");
    }
}
