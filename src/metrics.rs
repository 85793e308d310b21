//! Evaluation metrics for regression, binary classification and
//! drug–target affinity.
//!
//! Conventions, shared by every function here:
//!
//! * Paired slices of different lengths are compared over their common
//!   prefix (the shorter length); nothing panics.
//! * A metric that is undefined returns `f64::NAN` rather than a made-up
//!   number: no data, fewer than two points for a correlation, zero variance
//!   (a constant input), a class missing for ROC AUC, no comparable pair for
//!   the concordance index. A NaN anywhere in the inputs also gives NaN, so a
//!   broken model output is never hidden behind a plausible score.
//! * Ties are handled with average ranks (Spearman, ROC AUC) or count one
//!   half (concordance index), the usual scipy / scikit-learn / DeepDTA
//!   definitions.
//!
//! In JSON, [`RegressionMetrics`] writes NaN as `null` and reads `null` back
//! as NaN (plain serde_json would refuse to read its own output).

use serde::{Deserialize, Serialize};

/// Standard regression metrics over `n` (prediction, target) pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegressionMetrics {
    /// Number of pairs used.
    pub n: usize,
    /// Mean squared error; NaN when `n == 0`.
    #[serde(with = "nan_as_null")]
    pub mse: f64,
    /// Root mean squared error; NaN when `n == 0`.
    #[serde(with = "nan_as_null")]
    pub rmse: f64,
    /// Mean absolute error; NaN when `n == 0`.
    #[serde(with = "nan_as_null")]
    pub mae: f64,
    /// Pearson correlation; NaN when `n < 2` or either side is constant.
    #[serde(with = "nan_as_null")]
    pub pearson: f64,
    /// Spearman rank correlation; NaN when `n < 2` or either side is constant.
    #[serde(with = "nan_as_null")]
    pub spearman: f64,
    /// Coefficient of determination `1 - SS_res / SS_tot`; can be negative;
    /// NaN when `n == 0` or the targets are constant (`SS_tot == 0`).
    #[serde(with = "nan_as_null")]
    pub r2: f64,
}

/// Computes all [`RegressionMetrics`] at once.
pub fn regression_metrics(pred: &[f64], target: &[f64]) -> RegressionMetrics {
    let (pred, target) = common_prefix(pred, target);
    let n = pred.len();
    let (mut sq, mut abs) = (0.0, 0.0);
    for (p, t) in pred.iter().zip(target) {
        let d = p - t;
        sq += d * d;
        abs += d.abs();
    }
    let mse = if n == 0 { f64::NAN } else { sq / n as f64 };
    let r2 = if n == 0 || is_constant(target) {
        f64::NAN
    } else {
        let mean_t = mean(target);
        let ss_tot: f64 = target.iter().map(|t| (t - mean_t).powi(2)).sum();
        1.0 - sq / ss_tot
    };
    RegressionMetrics {
        n,
        mse,
        rmse: mse.sqrt(),
        mae: if n == 0 { f64::NAN } else { abs / n as f64 },
        pearson: pearson(pred, target),
        spearman: spearman(pred, target),
        r2,
    }
}

/// Pearson correlation coefficient, in `[-1, 1]`; NaN when undefined.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let (a, b) = common_prefix(a, b);
    // Checked explicitly: a constant input like [0.1; 3] has a mean that is
    // not exactly 0.1, so its computed variance would be tiny noise, not 0.
    if a.len() < 2 || is_constant(a) || is_constant(b) {
        return f64::NAN;
    }
    let (ma, mb) = (mean(a), mean(b));
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (x - ma, y - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    // Rounding can land a hair outside [-1, 1]; NaN passes through clamp.
    (sab / (saa * sbb).sqrt()).clamp(-1.0, 1.0)
}

/// Spearman rank correlation: Pearson on average ranks (ties share the mean
/// of their ranks, as in `scipy.stats.spearmanr`). NaN when undefined.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let (a, b) = common_prefix(a, b);
    if has_nan(a) || has_nan(b) {
        return f64::NAN;
    }
    pearson(&average_ranks(a), &average_ranks(b))
}

/// Area under the ROC curve via the Mann–Whitney U statistic with average
/// ranks, so tied scores count one half. NaN when either class is absent or
/// a score is NaN.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> f64 {
    let n = scores.len().min(labels.len());
    let (scores, labels) = (&scores[..n], &labels[..n]);
    let positives = labels.iter().filter(|&&l| l).count();
    let negatives = n - positives;
    if positives == 0 || negatives == 0 || has_nan(scores) {
        return f64::NAN;
    }
    let ranks = average_ranks(scores);
    let rank_sum: f64 = ranks
        .iter()
        .zip(labels)
        .filter(|(_, &l)| l)
        .map(|(r, _)| r)
        .sum();
    let (p, q) = (positives as f64, negatives as f64);
    (rank_sum - p * (p + 1.0) / 2.0) / (p * q)
}

/// Fraction of examples where `score >= threshold` equals the label. NaN for
/// no data or a NaN score.
pub fn accuracy(scores: &[f64], labels: &[bool], threshold: f64) -> f64 {
    let n = scores.len().min(labels.len());
    let scores = &scores[..n];
    if n == 0 || has_nan(scores) {
        return f64::NAN;
    }
    let correct = scores
        .iter()
        .zip(labels)
        .filter(|(&s, &l)| (s >= threshold) == l)
        .count();
    correct as f64 / n as f64
}

/// Concordance index as used for DAVIS/KIBA affinity (DeepDTA): over all
/// pairs with `target[i] > target[j]`, the fraction with `pred[i] > pred[j]`,
/// where tied predictions count 0.5. Pairs with equal targets are not
/// comparable. NaN when no pair is comparable or an input is NaN.
///
/// Runs in O(n log n) (sort plus a Fenwick tree), so 100k pairs are instant.
pub fn concordance_index(pred: &[f64], target: &[f64]) -> f64 {
    let (pred, target) = common_prefix(pred, target);
    let n = pred.len();
    if has_nan(pred) || has_nan(target) {
        return f64::NAN;
    }
    // Dense 1-based ranks of the predictions (equal values share a rank).
    let mut by_pred: Vec<usize> = (0..n).collect();
    by_pred.sort_by(|&i, &j| pred[i].total_cmp(&pred[j]));
    let mut pred_rank = vec![0usize; n];
    let mut rank = 0;
    for (k, &i) in by_pred.iter().enumerate() {
        if k == 0 || pred[i] != pred[by_pred[k - 1]] {
            rank += 1;
        }
        pred_rank[i] = rank;
    }

    // Walk targets in increasing order, one group of equal targets at a
    // time. Everything already in the tree has a strictly smaller target,
    // so each (current, earlier) pair is comparable; count earlier
    // predictions below / equal to the current one.
    let mut by_target: Vec<usize> = (0..n).collect();
    by_target.sort_by(|&i, &j| target[i].total_cmp(&target[j]));
    let mut tree = Fenwick::new(rank);
    let (mut inserted, mut pairs, mut twice_score) = (0u64, 0u64, 0u64);
    let mut start = 0;
    while start < n {
        let group_target = target[by_target[start]];
        let end = start
            + by_target[start..]
                .iter()
                .take_while(|&&i| target[i] == group_target)
                .count();
        for &i in &by_target[start..end] {
            let below = tree.prefix(pred_rank[i] - 1);
            let tied = tree.prefix(pred_rank[i]) - below;
            twice_score += 2 * below + tied;
            pairs += inserted;
        }
        for &i in &by_target[start..end] {
            tree.add(pred_rank[i]);
        }
        inserted += (end - start) as u64;
        start = end;
    }
    if pairs == 0 {
        return f64::NAN;
    }
    twice_score as f64 / (2 * pairs) as f64
}

/// Binary indexed tree of counts over ranks `1..=size`.
struct Fenwick {
    counts: Vec<u64>,
}

impl Fenwick {
    fn new(size: usize) -> Self {
        Fenwick {
            counts: vec![0; size + 1],
        }
    }

    fn add(&mut self, mut i: usize) {
        while i < self.counts.len() {
            self.counts[i] += 1;
            i += i & i.wrapping_neg();
        }
    }

    /// Sum of counts for ranks `1..=i`.
    fn prefix(&self, mut i: usize) -> u64 {
        let mut sum = 0;
        while i > 0 {
            sum += self.counts[i];
            i -= i & i.wrapping_neg();
        }
        sum
    }
}

fn common_prefix<'a>(a: &'a [f64], b: &'a [f64]) -> (&'a [f64], &'a [f64]) {
    let n = a.len().min(b.len());
    (&a[..n], &b[..n])
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

fn has_nan(x: &[f64]) -> bool {
    x.iter().any(|v| v.is_nan())
}

/// True when all values are equal (vacuously for empty input). NaN is never
/// equal, so a NaN makes this false and the NaN then propagates.
fn is_constant(x: &[f64]) -> bool {
    x.first().is_none_or(|first| x.iter().all(|v| v == first))
}

/// 1-based ranks; tied values get the average of the ranks they span.
fn average_ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&i, &j| x[i].total_cmp(&x[j]));
    let mut ranks = vec![0.0; x.len()];
    let mut start = 0;
    while start < order.len() {
        let value = x[order[start]];
        let len = order[start..]
            .iter()
            .take_while(|&&i| x[i] == value)
            .count()
            .max(1);
        // Ranks start+1 ..= start+len; their mean:
        let average = start as f64 + (len as f64 + 1.0) / 2.0;
        for &i in &order[start..start + len] {
            ranks[i] = average;
        }
        start += len;
    }
    ranks
}

/// Serde helper: non-finite floats as JSON `null`, `null` back as NaN.
mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        if value.is_finite() {
            serializer.serialize_f64(*value)
        } else {
            serializer.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values were computed with a plain-Python reference
    // (definitions as in scipy/sklearn) and pasted here as literals.

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn regression_hand_computed() {
        let m = regression_metrics(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 5.0]);
        assert_eq!(m.n, 4);
        close(m.mse, 0.75);
        close(m.rmse, 0.8660254037844386);
        close(m.mae, 0.75);
        close(m.pearson, 0.8315218406202999); // 5.5 / sqrt(5 * 8.75)
        close(m.spearman, 0.8);
        close(m.r2, 0.6571428571428571); // 1 - 3 / 8.75

        let m = regression_metrics(&[0.5, 2.5, 2.0, 7.5, 1.0], &[1.0, 2.0, 2.0, 8.0, -1.0]);
        close(m.mse, 0.95);
        close(m.rmse, 0.9746794344808963);
        close(m.mae, 0.7);
        close(m.pearson, 0.9597670052390912);
        close(m.spearman, 0.872081599272381); // tie in the targets
        close(m.r2, 0.8949115044247787);
    }

    #[test]
    fn correlations_with_ties() {
        let (a, b) = ([1.0, 2.0, 2.0, 3.0, 5.0], [2.0, 2.0, 1.0, 4.0, 4.0]);
        close(spearman(&a, &b), 0.7299963950884314);
        close(pearson(&a, &b), 0.7617834401336351);
        close(pearson(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), -1.0);
        close(spearman(&[1.0, 2.0, 3.0], &[1.0, 20.0, 300.0]), 1.0);
        assert_eq!(average_ranks(&[3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0]);
    }

    #[test]
    fn undefined_is_nan() {
        assert!(pearson(&[1.0], &[2.0]).is_nan());
        assert!(pearson(&[0.1, 0.1, 0.1], &[1.0, 2.0, 3.0]).is_nan());
        assert!(spearman(&[1.0, 2.0], &[5.0, 5.0]).is_nan());
        assert!(pearson(&[1.0, f64::NAN, 3.0], &[1.0, 2.0, 3.0]).is_nan());
        assert!(spearman(&[1.0, f64::NAN, 3.0], &[1.0, 2.0, 3.0]).is_nan());
        let m = regression_metrics(&[], &[]);
        assert_eq!(m.n, 0);
        assert!([m.mse, m.rmse, m.mae, m.pearson, m.spearman, m.r2]
            .iter()
            .all(|v| v.is_nan()));
        let m = regression_metrics(&[1.0, 2.0], &[3.0, 3.0]);
        assert!(m.r2.is_nan() && m.pearson.is_nan());
        close(m.mse, 2.5);
        assert!(roc_auc(&[0.1, 0.2], &[true, true]).is_nan());
        assert!(roc_auc(&[], &[]).is_nan());
        assert!(roc_auc(&[f64::NAN, 0.2], &[true, false]).is_nan());
        assert!(accuracy(&[], &[], 0.5).is_nan());
        assert!(concordance_index(&[1.0, 2.0], &[3.0, 3.0]).is_nan());
        assert!(concordance_index(&[], &[]).is_nan());
        assert!(concordance_index(&[1.0, f64::NAN], &[1.0, 2.0]).is_nan());
    }

    #[test]
    fn mismatched_lengths_use_common_prefix() {
        let m = regression_metrics(&[1.0, 2.0, 3.0, 4.0, 99.0], &[1.0, 3.0, 2.0, 5.0]);
        assert_eq!(m.n, 4);
        close(m.mse, 0.75);
        close(roc_auc(&[0.1, 0.9, 0.5], &[false, true]), 1.0);
        close(accuracy(&[0.9], &[true, false], 0.5), 1.0);
    }

    #[test]
    fn auc_and_accuracy() {
        close(
            roc_auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]),
            0.75,
        );
        close(
            roc_auc(&[0.5, 0.5, 0.2, 0.9], &[true, false, false, true]),
            0.875,
        );
        close(
            roc_auc(
                &[0.3, 0.3, 0.3, 0.7, 0.1, 0.7],
                &[true, false, true, false, false, true],
            ),
            0.6111111111111112,
        );
        close(roc_auc(&[0.9, 0.1], &[false, true]), 0.0);
        close(roc_auc(&[0.5, 0.5], &[false, true]), 0.5);
        close(
            accuracy(&[0.1, 0.5, 0.7, 0.2], &[false, true, false, false], 0.5),
            0.75,
        );
    }

    #[test]
    fn concordance_hand_computed() {
        close(
            concordance_index(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 5.0]),
            5.0 / 6.0,
        );
        // Ties in both predictions and targets.
        close(
            concordance_index(
                &[0.5, 2.5, 2.0, 7.5, 1.0, 2.0],
                &[1.0, 2.0, 2.0, 8.0, -1.0, 3.0],
            ),
            0.8214285714285714,
        );
        close(concordance_index(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), 0.5);
        close(concordance_index(&[3.0, 2.0, 1.0], &[1.0, 2.0, 3.0]), 0.0);
    }

    /// O(n²) definition, straight from the DeepDTA paper.
    fn brute_ci(pred: &[f64], target: &[f64]) -> f64 {
        let (mut pairs, mut score) = (0.0, 0.0);
        for i in 0..pred.len() {
            for j in 0..pred.len() {
                if target[i] > target[j] {
                    pairs += 1.0;
                    if pred[i] > pred[j] {
                        score += 1.0;
                    } else if pred[i] == pred[j] {
                        score += 0.5;
                    }
                }
            }
        }
        score / pairs
    }

    fn lcg(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *state >> 33
    }

    #[test]
    fn concordance_matches_brute_force() {
        let mut state = 1;
        for trial in 0..50 {
            let n = 2 + trial * 4;
            // Small value ranges force many ties on both sides.
            let pred: Vec<f64> = (0..n).map(|_| (lcg(&mut state) % 7) as f64).collect();
            let target: Vec<f64> = (0..n).map(|_| (lcg(&mut state) % 5) as f64 * 0.5).collect();
            let (fast, slow) = (concordance_index(&pred, &target), brute_ci(&pred, &target));
            assert!(
                fast == slow || (fast.is_nan() && slow.is_nan()),
                "{fast} vs {slow}"
            );
        }
    }

    #[test]
    fn concordance_is_fast() {
        let mut state = 9;
        let n = 100_000;
        let target: Vec<f64> = (0..n).map(|_| (lcg(&mut state) % 1000) as f64).collect();
        let pred: Vec<f64> = target
            .iter()
            .map(|t| t + (lcg(&mut state) % 100) as f64)
            .collect();
        let start = std::time::Instant::now();
        let ci = concordance_index(&pred, &target);
        assert!(ci > 0.8 && ci < 1.0, "{ci}");
        close(concordance_index(&target, &target), 1.0);
        // Generous bound: debug builds on a slow CI machine.
        assert!(start.elapsed().as_secs_f64() < 2.0, "{:?}", start.elapsed());
    }

    #[test]
    fn json_round_trip_with_nan() {
        let m = regression_metrics(&[1.0], &[2.0]);
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(
            json,
            r#"{"n":1,"mse":1.0,"rmse":1.0,"mae":1.0,"pearson":null,"spearman":null,"r2":null}"#
        );
        let back: RegressionMetrics = serde_json::from_str(&json).unwrap();
        assert_eq!((back.n, back.mse), (1, 1.0));
        assert!(back.pearson.is_nan() && back.r2.is_nan());
    }
}
