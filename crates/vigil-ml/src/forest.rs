//! Isolation Forest (Liu, Ting & Zhou, "Isolation Forest", ICDM 2008), scored exactly as
//! scikit-learn's `IsolationForest.score_samples`.
//!
//! * Each tree is grown on `max_samples` rows drawn without replacement, splitting on a
//!   random feature (among `max_features` drawn for the tree) at a uniform random value
//!   between the node's minimum and maximum, until a node holds one row, all its rows are
//!   equal, or the height limit `ceil(log2(max_samples))` is reached.
//! * The path length of `x` in a tree is the depth of the leaf it lands in plus `c(n)` for
//!   the `n` training rows in that leaf, the average path length of an unsuccessful binary
//!   search tree lookup: `c(n) = 2 (ln(n - 1) + γ) - 2 (n - 1) / n` for `n > 2`, `c(2) = 1`,
//!   `c(n) = 0` for `n <= 1` (scikit-learn's `_average_path_length`; the paper writes
//!   `H(n-1) ≈ ln(n-1) + γ` and gives no special case for 2, where the exact value is 1).
//! * The anomaly score is `s(x) = 2^(-E[h(x)] / c(max_samples))` in (0, 1]; scikit-learn's
//!   `score_samples` is `-s(x)` (higher is more normal) and [`IsolationForest::score_samples`]
//!   returns the same.
//! * Contamination sets the threshold: `auto` is the paper's `s > 0.5` (scikit-learn's
//!   `offset_ = -0.5`), a fraction `f` puts the offset at the `100 f` percentile of the
//!   training rows' `score_samples` (numpy's linear interpolation), as scikit-learn does.
//!
//! Trees are stored flat: a node is `(feature, left, value)`, its right child is
//! `left + 1`, children come after their parent (so walking a tree always ends), and a
//! leaf's `value` is `(depth + 1) + c(n)`, so a tree adds `value - 1 = depth + c(n)` to
//! the path length in the same float operations as scikit-learn.
//!
//! For scoring, each tree is laid out on first use as a *complete* binary tree of its depth
//! `d` (at most 8 for `max_samples` 256): a leaf above the bottom becomes pass-through
//! nodes (threshold `+∞`, always left), so a row's walk is exactly `d` branch-free steps
//! `h = 2h + !(x[f] <= t)` and a lookup of the bottom slot. Rows are scored in blocks of
//! 256 (column-major, in L1), tree by tree, 16 walks in lock step; each row still adds
//! its trees' terms in tree order, so scores are the same floats as one row at a time.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Euler–Mascheroni constant (numpy's `np.euler_gamma`).
pub const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

/// `feature` of a leaf node.
pub const LEAF: u32 = u32::MAX;

/// Average path length of an unsuccessful search in a binary search tree of `n` nodes:
/// the correction added at a leaf holding `n` training rows (scikit-learn's
/// `_average_path_length`, same float operations).
pub fn average_path_length(n: f64) -> f64 {
    if n <= 1.0 {
        0.0
    } else if n == 2.0 {
        1.0
    } else {
        2.0 * ((n - 1.0).ln() + EULER_GAMMA) - 2.0 * (n - 1.0) / n
    }
}

/// How many rows each tree is grown on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum MaxSamples {
    /// `min(256, n_rows)` (scikit-learn's `"auto"`).
    Auto,
    /// This many rows (at most `n_rows`).
    Count(usize),
    /// This fraction of the rows, in (0, 1].
    Fraction(f64),
}

/// How many features each tree may split on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum MaxFeatures {
    /// This many features (at most all).
    Count(usize),
    /// `max(1, floor(f * n_features))`, `f` in (0, 1].
    Fraction(f64),
}

/// Vigil's threshold rule, in the server (`[ml] contamination`) and `vigil ml fit` alike: the
/// top 2% of training scores. Baselines are small (a few dozen windows), and then ordinary
/// rows score near 0.5, so scikit-learn's `auto` would flag too many. (`ForestParams`
/// keeps scikit-learn's own default, `auto`, for parity.)
pub const DEFAULT_CONTAMINATION: &str = "0.02";

/// The threshold rule (scikit-learn's `contamination`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Contamination {
    /// Anomalous when the anomaly score is above 0.5.
    Auto,
    /// This fraction of the training rows, in (0, 0.5], is anomalous.
    Fraction(f64),
}

impl std::str::FromStr for Contamination {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if s.eq_ignore_ascii_case("auto") {
            return Ok(Contamination::Auto);
        }
        match s.parse::<f64>() {
            Ok(f) if f > 0.0 && f <= 0.5 => Ok(Contamination::Fraction(f)),
            _ => Err(Error::param(
                "contamination",
                format!("'{s}' is neither 'auto' nor a number in (0, 0.5]"),
            )),
        }
    }
}

impl std::str::FromStr for MaxSamples {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if s.eq_ignore_ascii_case("auto") {
            return Ok(MaxSamples::Auto);
        }
        if let Ok(n) = s.parse::<usize>() {
            return Ok(MaxSamples::Count(n));
        }
        match s.parse::<f64>() {
            Ok(f) if f > 0.0 && f <= 1.0 => Ok(MaxSamples::Fraction(f)),
            _ => Err(Error::param(
                "max_samples",
                format!("'{s}' is not 'auto', a count, or a fraction in (0, 1]"),
            )),
        }
    }
}

impl std::str::FromStr for MaxFeatures {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if let Ok(n) = s.parse::<usize>() {
            return Ok(MaxFeatures::Count(n));
        }
        match s.parse::<f64>() {
            Ok(f) if f > 0.0 && f <= 1.0 => Ok(MaxFeatures::Fraction(f)),
            _ => Err(Error::param(
                "max_features",
                format!("'{s}' is not a count or a fraction in (0, 1]"),
            )),
        }
    }
}

/// Training parameters; the defaults are scikit-learn's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ForestParams {
    /// Trees in the forest (default 100).
    pub n_estimators: usize,
    /// Rows per tree (default `Auto`: 256).
    pub max_samples: MaxSamples,
    /// Features per tree (default all).
    pub max_features: MaxFeatures,
    /// Threshold rule (default `Auto`).
    pub contamination: Contamination,
    /// Seed: the same data, parameters and seed give the same forest on any machine and
    /// any number of threads.
    pub seed: u64,
}

impl Default for ForestParams {
    fn default() -> Self {
        Self {
            n_estimators: 100,
            max_samples: MaxSamples::Auto,
            max_features: MaxFeatures::Fraction(1.0),
            contamination: Contamination::Auto,
            seed: 0,
        }
    }
}

/// Rows of equal length, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    n_features: usize,
    data: Vec<f64>,
}

impl Matrix {
    /// Builds a matrix from row-major values; every value must be finite.
    pub fn new(n_features: usize, data: Vec<f64>) -> Result<Self> {
        if n_features == 0 {
            return Err(Error::param("n_features", "at least one feature"));
        }
        if !data.len().is_multiple_of(n_features) {
            return Err(Error::Dimension {
                expected: n_features,
                got: data.len() % n_features,
            });
        }
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(Error::NotFinite {
                index: i % n_features,
            });
        }
        Ok(Self { n_features, data })
    }

    /// Builds a matrix from rows, checking their length and values.
    pub fn from_rows(n_features: usize, rows: &[Vec<f64>]) -> Result<Self> {
        let mut data = Vec::with_capacity(rows.len() * n_features);
        for r in rows {
            check_vector(n_features, r)?;
            data.extend_from_slice(r);
        }
        Self::new(n_features, data)
    }

    pub fn n_features(&self) -> usize {
        self.n_features
    }

    pub fn n_rows(&self) -> usize {
        self.data.len() / self.n_features
    }

    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.n_features..(i + 1) * self.n_features]
    }

    /// Every value, row after row.
    pub fn as_slice(&self) -> &[f64] {
        &self.data
    }

    pub fn rows(&self) -> impl ExactSizeIterator<Item = &[f64]> + '_ {
        self.data.chunks_exact(self.n_features)
    }

    fn get(&self, row: usize, feature: usize) -> f64 {
        self.data[row * self.n_features + feature]
    }
}

/// Checks one vector's length and values (what the API answers 400 to).
pub fn check_vector(n_features: usize, x: &[f64]) -> Result<()> {
    if x.len() != n_features {
        return Err(Error::Dimension {
            expected: n_features,
            got: x.len(),
        });
    }
    match x.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(Error::NotFinite { index }),
        None => Ok(()),
    }
}

/// One node of a flat tree.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// The split feature, or [`LEAF`].
    pub feature: u32,
    /// Index of the left child (the right one is `left + 1`); 0 for a leaf.
    pub left: u32,
    /// The split threshold (`x[feature] <= value` goes left), or for a leaf
    /// `(depth + 1) + c(n)` (the path length it adds is `value - 1`).
    pub value: f64,
}

/// One isolation tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    /// The value of the leaf `x` lands in: its `(depth + 1) + c(n)`.
    #[inline]
    pub fn path_length(&self, x: &[f64], f32_inputs: bool) -> f64 {
        if f32_inputs {
            self.walk::<true>(x)
        } else {
            self.walk::<false>(x)
        }
    }

    #[inline(always)]
    fn walk<const F32: bool>(&self, x: &[f64]) -> f64 {
        let nodes = &self.nodes[..];
        let mut i = 0usize;
        loop {
            let n = nodes[i];
            if n.feature == LEAF {
                return n.value;
            }
            let mut v = x[n.feature as usize];
            if F32 {
                v = v as f32 as f64;
            }
            i = n.left as usize + usize::from(v > n.value);
        }
    }

    /// Checks the invariants scoring relies on: children after their parent and inside
    /// the tree, features in range, finite values.
    pub fn validate(&self, n_features: usize, at: &str) -> Result<()> {
        if self.nodes.is_empty() {
            return Err(Error::model(at, "a tree has no nodes"));
        }
        let len = self.nodes.len();
        for (i, n) in self.nodes.iter().enumerate() {
            if !n.value.is_finite() {
                return Err(Error::model(at, format!("node {i}: value is not finite")));
            }
            if n.feature == LEAF {
                continue;
            }
            if n.feature as usize >= n_features {
                return Err(Error::model(
                    at,
                    format!("node {i}: feature {} of {n_features}", n.feature),
                ));
            }
            let left = n.left as usize;
            if left <= i || left + 1 >= len {
                return Err(Error::model(
                    at,
                    format!("node {i}: children {left},{} out of order", left + 1),
                ));
            }
        }
        Ok(())
    }
}

/// A trained forest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IsolationForest {
    pub n_features: usize,
    /// Rows each tree was grown on (scikit-learn's `max_samples_`): scores are normalized
    /// by `c(max_samples)`.
    pub max_samples: usize,
    /// `decision_function = score_samples - offset`; negative is anomalous.
    pub offset: f64,
    /// Inputs are rounded to `f32` before comparing (true for forests imported from
    /// scikit-learn, which converts every input to `float32`).
    #[serde(default)]
    pub f32_inputs: bool,
    pub trees: Vec<Tree>,
    /// The scoring layout, built on first use.
    #[serde(skip)]
    compiled: Compiled,
}

/// A tree compiled for scoring: a complete binary tree of the tree's depth `d`, 1-based
/// (node `h` has children `2h` and `2h + 1`), so a walk is exactly `d` steps
/// `h = 2h + (x[f] > t)` with no leaf test. A leaf above the bottom becomes a chain of
/// pass-through nodes (threshold `+∞`, so every finite `x` goes left) down to the bottom
/// slot under it. `value[h]` is node `h`'s threshold for `h < 2^d` and for `2^d <= h <
/// 2^(d+1)` the term the leaf adds, `value - 1.0` of the flat leaf (scikit-learn's
/// `(depth + 1) + c(n) - 1.0`, the same float).
#[derive(Debug, Clone)]
struct CompleteTree {
    depth: u32,
    /// Features of the forest: every `column` is below `n_features * BLOCK`.
    n_features: usize,
    /// `feature * BLOCK` of node `h`: where its feature's column starts in a block.
    column: Vec<u32>,
    value: Vec<f64>,
}

/// Cache of the scoring layout, one entry per tree (None for a tree deeper than
/// [`MAX_COMPLETE_DEPTH`] or one that breaks the invariants: its rows walk the flat tree
/// one at a time); never part of equality or the encodings.
#[derive(Debug, Clone, Default)]
struct Compiled(std::sync::OnceLock<Vec<Option<CompleteTree>>>);

impl PartialEq for Compiled {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// Deepest tree laid out complete: `2^12` slots, 48 KiB. The default height limit is 8
/// (`max_samples` 256); a deeper tree's complete form would mostly be padding.
const MAX_COMPLETE_DEPTH: usize = 12;

/// The complete layout of `t`, or None unless every internal node's children are after it
/// and inside the tree, its feature is below `n_features`, and the tree is at most
/// [`MAX_COMPLETE_DEPTH`] deep (what `walk_complete` relies on).
fn complete_tree(t: &Tree, n_features: usize) -> Option<CompleteTree> {
    let len = t.nodes.len();
    if len == 0 || n_features.checked_mul(BLOCK)? > u32::MAX as usize {
        return None;
    }
    // Depths, checking the order invariant (children after their parent).
    let mut depth_of = vec![0usize; len];
    let mut depth = 0;
    for (i, n) in t.nodes.iter().enumerate() {
        if n.feature == LEAF {
            depth = depth.max(depth_of[i]);
            continue;
        }
        let left = n.left as usize;
        if left <= i || left + 1 >= len || n.feature as usize >= n_features {
            return None;
        }
        if depth_of[i] + 1 > MAX_COMPLETE_DEPTH {
            return None;
        }
        depth_of[left] = depth_of[i] + 1;
        depth_of[left + 1] = depth_of[i] + 1;
    }
    let bottom = 1usize << depth;
    let mut column = vec![0u32; bottom];
    let mut value = vec![f64::INFINITY; 2 * bottom];
    value[bottom..].fill(0.0);
    // (flat index, complete index, depth)
    let mut stack = vec![(0usize, 1usize, 0usize)];
    while let Some((i, h, k)) = stack.pop() {
        let n = t.nodes[i];
        if n.feature == LEAF {
            // Pass-through nodes always go left: the leaf's term sits leftmost below it.
            value[h << (depth - k)] = n.value - 1.0;
        } else {
            column[h] = n.feature * BLOCK as u32;
            value[h] = n.value;
            let left = n.left as usize;
            stack.push((left, 2 * h, k + 1));
            stack.push((left + 1, 2 * h + 1, k + 1));
        }
    }
    Some(CompleteTree {
        depth: depth as u32,
        n_features,
        column,
        value,
    })
}

/// Writes row-major `rows` of `d` features column-major into `cols` (feature `f` of row `r`
/// at `f * BLOCK + r`), each value rounded to `f32` once when `F32`.
fn to_columns<const F32: bool>(rows: &[f64], d: usize, cols: &mut [f64]) {
    for (r, row) in rows.chunks_exact(d).enumerate() {
        for (f, &v) in row.iter().enumerate() {
            cols[f * BLOCK + r] = if F32 { v as f32 as f64 } else { v };
        }
    }
}

/// Rows scored together, one tree at a time: a block's columns (`BLOCK * 8` bytes a
/// feature) and a tree's slots stay in L1.
const BLOCK: usize = 256;
/// Rows walking a tree in lock step (independent loads overlap).
const LANES: usize = 16;

/// Takes rows `0..n` of a block down the first (up to) two levels of `t` at once: every
/// row meets the same root and one of its two children, so these compares read columns
/// in order, with no dependent loads, and vectorize. Returns the levels done.
fn top_levels(t: &CompleteTree, cols: &[f64], n: usize, at: &mut [usize; BLOCK]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { top_levels_avx2(t, cols, n, at) };
    }
    top_levels_any(t, cols, n, at)
}

/// [`top_levels`] compiled for AVX2: four compares per instruction instead of SSE2's two
/// (the default x86_64 target has only SSE2). The same compares, so the same result.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn top_levels_avx2(
    t: &CompleteTree,
    cols: &[f64],
    n: usize,
    at: &mut [usize; BLOCK],
) -> u32 {
    top_levels_any(t, cols, n, at)
}

#[inline(always)]
fn top_levels_any(t: &CompleteTree, cols: &[f64], n: usize, at: &mut [usize; BLOCK]) -> u32 {
    let column = |h: usize| {
        let c = t.column[h] as usize;
        &cols[c..c + n]
    };
    match t.depth {
        0 => {
            at.fill(1);
            0
        }
        1 => {
            let t1 = t.value[1];
            for (h, &x1) in at.iter_mut().zip(column(1)) {
                *h = 2 + usize::from(x1 > t1);
            }
            1
        }
        _ => {
            let (t1, t2, t3) = (t.value[1], t.value[2], t.value[3]);
            let rows = column(1).iter().zip(column(2)).zip(column(3));
            for (h, ((&x1, &x2), &x3)) in at.iter_mut().zip(rows) {
                let right = x1 > t1;
                let next = (right & (x3 > t3)) | (!right & (x2 > t2));
                *h = 4 + 2 * usize::from(right) + usize::from(next);
            }
            2
        }
    }
}

/// One step of lane `L` in a complete tree: `h = 2h + !(x[column[h] + L] <= value[h])`
/// (scikit-learn's rule as written: `x <= t` goes left).
///
/// # Safety
/// `column` and `value` must be readable at `h`, and `x` at `column[h] + L`.
#[inline(always)]
unsafe fn step<const L: usize>(
    h: &mut usize,
    column: *const u32,
    value: *const f64,
    x: *const f64,
) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the caller's contract; the block only reads those three places. The carry
    // of `ucomisd t, v` is `t < v` or unordered, that is `!(v <= t)`, and `adc h, h` is
    // `2h + carry`: four instructions a step, where the compiler's `setb` + `lea` (+ a
    // zeroing `xor`) made six and the walk is bound by instruction count.
    unsafe {
        std::arch::asm!(
            "mov {c:e}, dword ptr [{column} + {h}*4]",
            "movsd {t}, qword ptr [{value} + {h}*8]",
            "ucomisd {t}, qword ptr [{x} + {c}*8 + {off}]",
            "adc {h}, {h}",
            h = inout(reg) *h,
            c = out(reg) _,
            t = out(xmm_reg) _,
            column = in(reg) column,
            value = in(reg) value,
            x = in(reg) x,
            off = const L * 8,
            options(pure, readonly, nostack),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: the caller's contract.
    unsafe {
        let c = *column.add(*h) as usize;
        let v = *x.add(c + L);
        *h = 2 * *h + usize::from(!(v <= *value.add(*h)));
    }
}

/// Walks rows `g..g + LANES` of a block the rest of the way down `t` from `at` (after
/// `done` levels) and adds each one's leaf term to `acc`. `cols` is the block
/// column-major: feature `f` of row `r` at `f * BLOCK + r`.
#[inline(always)]
fn walk_complete(
    t: &CompleteTree,
    cols: &[f64],
    g: usize,
    done: u32,
    at: &[usize],
    acc: &mut [f64],
) {
    assert!(cols.len() == t.n_features * BLOCK && g + LANES <= BLOCK && acc.len() >= LANES);
    assert!(t.column.len() == 1 << t.depth && t.value.len() == 2 << t.depth);
    assert!(done <= t.depth && at.len() >= LANES);
    // Below `2^(done + 1)`, so below `2^depth` before each of the `depth - done` steps
    // (a start is a node of level `done`; the mask only makes that a bound).
    let mut at: [usize; LANES] = std::array::from_fn(|l| at[l] & ((2 << done) - 1));
    let (column, value) = (t.column.as_ptr(), t.value.as_ptr());
    let x = cols[g..].as_ptr();
    const _: () = assert!(LANES == 16, "one `step` per lane below");
    macro_rules! steps {
        ($($l:literal)*) => { $(
            // SAFETY: `h < 2^depth = column.len()` before each step and `value` is twice
            // as long; `complete_tree` makes every `column[h]` a feature below
            // `n_features` times BLOCK, so `column[h] + g + l < n_features * BLOCK =
            // cols.len()` (asserted above, with `g + l < BLOCK`).
            unsafe { step::<$l>(&mut at[$l], column, value, x) };
        )* };
    }
    for _ in done..t.depth {
        steps!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
    }
    for (a, h) in acc.iter_mut().zip(at) {
        // `h` is a bottom slot: `2^depth <= h < 2^(depth + 1)`.
        *a += t.value[h];
    }
}

/// The anomaly score `2^(-depth_sum / denominator)` (1 for a forest of empty trees).
fn normalize_with(depth_sum: f64, denominator: f64) -> f64 {
    if denominator == 0.0 {
        return 1.0;
    }
    2f64.powf(-(depth_sum / denominator))
}

/// SplitMix64: independent per-tree seeds from one seed.
fn tree_seed(seed: u64, tree: usize) -> u64 {
    let mut z = seed.wrapping_add(
        (tree as u64)
            .wrapping_add(1)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl IsolationForest {
    /// A forest from its parts (call [`validate`](Self::validate) on outside input).
    pub fn new(
        n_features: usize,
        max_samples: usize,
        offset: f64,
        f32_inputs: bool,
        trees: Vec<Tree>,
    ) -> Self {
        Self {
            n_features,
            max_samples,
            offset,
            f32_inputs,
            trees,
            compiled: Compiled::default(),
        }
    }

    fn compiled(&self) -> &[Option<CompleteTree>] {
        self.compiled.0.get_or_init(|| {
            self.trees
                .iter()
                .map(|t| complete_tree(t, self.n_features))
                .collect()
        })
    }

    /// Trains a forest on `x` (trees are grown in parallel across cores).
    pub fn fit(x: &Matrix, params: &ForestParams) -> Result<Self> {
        let n = x.n_rows();
        if n == 0 {
            return Err(Error::NoSamples);
        }
        if params.n_estimators == 0 {
            return Err(Error::param("n_estimators", "at least 1"));
        }
        let max_samples = match params.max_samples {
            MaxSamples::Auto => n.min(256),
            MaxSamples::Count(0) => return Err(Error::param("max_samples", "at least 1")),
            MaxSamples::Count(c) => c.min(n),
            MaxSamples::Fraction(f) if f > 0.0 && f <= 1.0 => ((f * n as f64) as usize).max(1),
            MaxSamples::Fraction(f) => {
                return Err(Error::param("max_samples", format!("{f} is not in (0, 1]")));
            }
        };
        let d = x.n_features();
        let max_features = match params.max_features {
            MaxFeatures::Count(0) => return Err(Error::param("max_features", "at least 1")),
            MaxFeatures::Count(c) => c.min(d),
            MaxFeatures::Fraction(f) if f > 0.0 && f <= 1.0 => ((f * d as f64) as usize).max(1),
            MaxFeatures::Fraction(f) => {
                return Err(Error::param(
                    "max_features",
                    format!("{f} is not in (0, 1]"),
                ));
            }
        };
        if let Contamination::Fraction(f) = params.contamination
            && !(f > 0.0 && f <= 0.5)
        {
            return Err(Error::param(
                "contamination",
                format!("{f} is not in (0, 0.5]"),
            ));
        }
        let max_depth = (max_samples.max(2) as f64).log2().ceil() as usize;
        let trees: Vec<Tree> = (0..params.n_estimators)
            .into_par_iter()
            .map(|t| {
                let mut rng = ChaCha8Rng::seed_from_u64(tree_seed(params.seed, t));
                grow_tree(x, max_samples, max_features, max_depth, &mut rng)
            })
            .collect();
        let mut forest = Self::new(d, max_samples, -0.5, false, trees);
        if let Contamination::Fraction(f) = params.contamination {
            let scores = forest.score_samples(x)?;
            forest.offset = percentile(&scores, 100.0 * f);
        }
        Ok(forest)
    }

    /// Checks the forest's invariants (run on every loaded model).
    pub fn validate(&self) -> Result<()> {
        if self.n_features == 0 || self.n_features > u32::MAX as usize {
            return Err(Error::model("forest", "n_features out of range"));
        }
        if self.trees.is_empty() {
            return Err(Error::model("forest", "no trees"));
        }
        if self.max_samples == 0 {
            return Err(Error::model("forest", "max_samples is 0"));
        }
        if !self.offset.is_finite() {
            return Err(Error::model("forest", "offset is not finite"));
        }
        for (i, t) in self.trees.iter().enumerate() {
            t.validate(self.n_features, &format!("tree {i}"))?;
        }
        Ok(())
    }

    /// The anomaly score threshold: a row is anomalous when its anomaly score is above it.
    pub fn threshold(&self) -> f64 {
        -self.offset
    }

    /// `2^(-E[h(x)] / c(max_samples))`, in (0, 1]; above [`threshold`](Self::threshold)
    /// is anomalous. `x` must have `n_features` finite values (see [`check_vector`]).
    #[inline]
    pub fn anomaly_score_unchecked(&self, x: &[f64]) -> f64 {
        let mut depth = 0.0;
        for t in &self.trees {
            // scikit-learn's per-tree term, `(depth + 1) + c(n) - 1.0`, same float steps.
            depth += t.path_length(x, self.f32_inputs) - 1.0;
        }
        self.normalize(depth)
    }

    #[inline]
    fn normalize(&self, depth_sum: f64) -> f64 {
        normalize_with(depth_sum, self.denominator())
    }

    /// `n_trees * c(max_samples)`: what a row's summed path length is divided by.
    fn denominator(&self) -> f64 {
        self.trees.len() as f64 * average_path_length(self.max_samples as f64)
    }

    /// The anomaly score of one vector, after checking it.
    pub fn anomaly_score(&self, x: &[f64]) -> Result<f64> {
        check_vector(self.n_features, x)?;
        Ok(self.anomaly_score_unchecked(x))
    }

    /// scikit-learn's `score_samples`: minus the anomaly score, for every row, in parallel.
    pub fn score_samples(&self, x: &Matrix) -> Result<Vec<f64>> {
        self.check_matrix(x)?;
        let mut out = vec![0.0; x.n_rows()];
        out.par_chunks_mut(BLOCK * 4)
            .enumerate()
            .for_each(|(c, chunk)| self.score_rows(x, c * BLOCK * 4, chunk));
        Ok(out)
    }

    /// [`score_samples`](Self::score_samples) on the calling thread only.
    pub fn score_samples_serial(&self, x: &Matrix) -> Result<Vec<f64>> {
        self.check_matrix(x)?;
        let mut out = vec![0.0; x.n_rows()];
        self.score_rows(x, 0, &mut out);
        Ok(out)
    }

    /// Scores rows `first..first + out.len()` a block at a time, tree by tree, so a tree
    /// stays in cache while a block of rows walks it; each row still adds its trees in
    /// order, so the result is the same float for float as one row at a time.
    fn score_rows(&self, x: &Matrix, first: usize, out: &mut [f64]) {
        if self.f32_inputs {
            self.score_rows_as::<true>(x, first, out)
        } else {
            self.score_rows_as::<false>(x, first, out)
        }
    }

    fn score_rows_as<const F32: bool>(&self, x: &Matrix, first: usize, out: &mut [f64]) {
        let d = x.n_features();
        let compiled = self.compiled();
        let denominator = self.denominator();
        let mut cols = vec![0.0f64; d * BLOCK];
        for (b, block) in out.chunks_mut(BLOCK).enumerate() {
            let start = first + b * BLOCK;
            let rows = &x.data[start * d..(start + block.len()) * d];
            // Rows past the block's end keep finite values from before (or 0) and their
            // sums are dropped.
            to_columns::<F32>(rows, d, &mut cols);
            let groups = block.len().div_ceil(LANES);
            let mut depth = [0.0f64; BLOCK];
            let mut at = [1usize; BLOCK];
            for (t, c) in self.trees.iter().zip(compiled) {
                match c {
                    Some(c) => {
                        let done = top_levels(c, &cols, groups * LANES, &mut at);
                        for g in (0..groups * LANES).step_by(LANES) {
                            let (at, acc) = (&at[g..g + LANES], &mut depth[g..g + LANES]);
                            walk_complete(c, &cols, g, done, at, acc);
                        }
                    }
                    None => {
                        for (acc, row) in depth.iter_mut().zip(rows.chunks_exact(d)) {
                            *acc += t.walk::<F32>(row) - 1.0;
                        }
                    }
                }
            }
            for (o, acc) in block.iter_mut().zip(depth) {
                *o = -normalize_with(acc, denominator);
            }
        }
    }

    /// scikit-learn's `decision_function`: `score_samples - offset`, negative is anomalous.
    pub fn decision_function(&self, x: &Matrix) -> Result<Vec<f64>> {
        Ok(self
            .score_samples(x)?
            .into_iter()
            .map(|s| s - self.offset)
            .collect())
    }

    /// Whether each row is anomalous (scikit-learn's `predict(x) == -1`).
    pub fn predict(&self, x: &Matrix) -> Result<Vec<bool>> {
        Ok(self
            .decision_function(x)?
            .into_iter()
            .map(|d| d < 0.0)
            .collect())
    }

    fn check_matrix(&self, x: &Matrix) -> Result<()> {
        if x.n_features() != self.n_features {
            return Err(Error::Dimension {
                expected: self.n_features,
                got: x.n_features(),
            });
        }
        Ok(())
    }
}

/// A leaf's stored value, chosen so that `value - 1.0` is exactly scikit-learn's per-tree
/// term `(depth + 1) + c(n) - 1.0`.
pub(crate) fn leaf_value(depth: usize, n: usize) -> f64 {
    (depth as f64 + 1.0) + average_path_length(n as f64)
}

fn grow_tree(
    x: &Matrix,
    max_samples: usize,
    max_features: usize,
    max_depth: usize,
    rng: &mut ChaCha8Rng,
) -> Tree {
    let n = x.n_rows();
    let d = x.n_features();
    let mut rows: Vec<usize> = rand::seq::index::sample(rng, n, max_samples).into_vec();
    let mut features: Vec<usize> = if max_features < d {
        let mut f = rand::seq::index::sample(rng, d, max_features).into_vec();
        f.sort_unstable();
        f
    } else {
        (0..d).collect()
    };
    let mut nodes = vec![Node {
        feature: LEAF,
        left: 0,
        value: 0.0,
    }];
    // (node index, rows range, depth)
    let mut stack = vec![(0usize, 0usize, rows.len(), 0usize)];
    while let Some((id, start, end, depth)) = stack.pop() {
        let size = end - start;
        let leaf = Node {
            feature: LEAF,
            left: 0,
            value: leaf_value(depth, size),
        };
        if depth >= max_depth || size <= 1 {
            nodes[id] = leaf;
            continue;
        }
        // Draw features without replacement until one is not constant in this node.
        let mut split = None;
        features.shuffle(rng);
        for &f in &features {
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            for &r in &rows[start..end] {
                let v = x.get(r, f);
                lo = lo.min(v);
                hi = hi.max(v);
            }
            if hi > lo {
                split = Some((f, lo, hi));
                break;
            }
        }
        let Some((f, lo, hi)) = split else {
            nodes[id] = leaf;
            continue;
        };
        let mut threshold = lo + rng.r#gen::<f64>() * (hi - lo);
        if threshold >= hi {
            threshold = lo;
        }
        // Partition rows[start..end]: `<= threshold` first.
        let slice = &mut rows[start..end];
        let mut mid = 0;
        for i in 0..slice.len() {
            if x.get(slice[i], f) <= threshold {
                slice.swap(i, mid);
                mid += 1;
            }
        }
        let left = nodes.len();
        nodes.push(leaf);
        nodes.push(leaf);
        nodes[id] = Node {
            feature: f as u32,
            left: left as u32,
            value: threshold,
        };
        stack.push((left + 1, start + mid, end, depth + 1));
        stack.push((left, start, start + mid, depth + 1));
    }
    Tree { nodes }
}

/// numpy's `percentile(a, q)` with the default linear method.
pub fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut a = values.to_vec();
    a.sort_by(f64::total_cmp);
    let pos = (a.len() - 1) as f64 * (q / 100.0);
    let lo = pos.floor();
    let i = lo as usize;
    let j = (i + 1).min(a.len() - 1);
    let t = pos - lo;
    let (x, y) = (a[i], a[j]);
    // numpy's _lerp: a + (b - a) t, computed from the nearer end.
    let diff = y - x;
    if t >= 0.5 {
        y - diff * (1.0 - t)
    } else {
        x + diff * t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gaussianish(n: usize, d: usize, seed: u64) -> Matrix {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let data = (0..n * d)
            .map(|_| (0..6).map(|_| rng.r#gen::<f64>()).sum::<f64>() - 3.0)
            .collect();
        Matrix::new(d, data).unwrap()
    }

    #[test]
    fn c_of_n_matches_the_closed_form() {
        assert_eq!(average_path_length(0.0), 0.0);
        assert_eq!(average_path_length(1.0), 0.0);
        assert_eq!(average_path_length(2.0), 1.0);
        // c(256) = 2 (ln 255 + γ) - 2 * 255 / 256
        let c = 2.0 * (255f64.ln() + EULER_GAMMA) - 2.0 * 255.0 / 256.0;
        assert_eq!(average_path_length(256.0), c);
        assert!((c - 10.244_770_920_119_917).abs() < 1e-12); // sklearn: _average_path_length([256])
    }

    #[test]
    fn same_seed_same_forest_other_seed_other_forest() {
        let x = gaussianish(500, 3, 1);
        let p = ForestParams {
            n_estimators: 20,
            seed: 7,
            ..Default::default()
        };
        let a = IsolationForest::fit(&x, &p).unwrap();
        let b = IsolationForest::fit(&x, &p).unwrap();
        assert_eq!(a, b);
        let c = IsolationForest::fit(&x, &ForestParams { seed: 8, ..p }).unwrap();
        assert_ne!(a, c);
        a.validate().unwrap();
    }

    #[test]
    fn trees_respect_the_height_limit_and_sample_count() {
        let x = gaussianish(1000, 2, 2);
        let f = IsolationForest::fit(&x, &ForestParams::default()).unwrap();
        assert_eq!(f.max_samples, 256);
        assert_eq!(f.trees.len(), 100);
        for t in &f.trees {
            let leaves: Vec<_> = t.nodes.iter().filter(|n| n.feature == LEAF).collect();
            // A full binary tree: leaves = internal + 1.
            assert_eq!(leaves.len() * 2 - 1, t.nodes.len());
            for l in leaves {
                // depth <= 8 and c(n) <= c(256) when rows are all at one leaf
                assert!(l.value <= 9.0 + average_path_length(256.0));
            }
        }
    }

    #[test]
    fn an_outlier_scores_higher_than_the_centre() {
        let x = gaussianish(1000, 2, 3);
        let f = IsolationForest::fit(&x, &ForestParams::default()).unwrap();
        let centre = f.anomaly_score(&[0.0, 0.0]).unwrap();
        let far = f.anomaly_score(&[6.0, -6.0]).unwrap();
        assert!(far > 0.6 && centre < 0.5, "far {far} centre {centre}");
        assert!(f.anomaly_score(&[1.0]).is_err());
        assert!(matches!(
            f.anomaly_score(&[f64::NAN, 0.0]),
            Err(Error::NotFinite { index: 0 })
        ));
    }

    #[test]
    fn contamination_puts_that_fraction_over_the_threshold() {
        let x = gaussianish(2000, 3, 4);
        let p = ForestParams {
            contamination: Contamination::Fraction(0.05),
            ..Default::default()
        };
        let f = IsolationForest::fit(&x, &p).unwrap();
        let flagged = f.predict(&x).unwrap().iter().filter(|b| **b).count();
        assert!((99..=101).contains(&flagged), "{flagged}");
        assert!("0.6".parse::<Contamination>().is_err());
        assert_eq!(
            "auto".parse::<Contamination>().unwrap(),
            Contamination::Auto
        );
    }

    #[test]
    fn max_features_limits_each_tree_to_its_own_subset() {
        let x = gaussianish(500, 4, 5);
        let p = ForestParams {
            n_estimators: 30,
            max_features: MaxFeatures::Count(1),
            ..Default::default()
        };
        let f = IsolationForest::fit(&x, &p).unwrap();
        let mut seen = std::collections::HashSet::new();
        for t in &f.trees {
            let feats: std::collections::HashSet<u32> = t
                .nodes
                .iter()
                .filter(|n| n.feature != LEAF)
                .map(|n| n.feature)
                .collect();
            assert_eq!(feats.len(), 1, "one feature per tree");
            seen.extend(feats);
        }
        assert_eq!(seen.len(), 4, "different trees draw different features");
        let half = ForestParams {
            max_features: MaxFeatures::Fraction(0.5),
            ..p
        };
        for t in &IsolationForest::fit(&x, &half).unwrap().trees {
            let n = t
                .nodes
                .iter()
                .filter(|n| n.feature != LEAF)
                .map(|n| n.feature);
            assert!(n.collect::<std::collections::HashSet<_>>().len() <= 2);
        }
        assert!(
            IsolationForest::fit(
                &x,
                &ForestParams {
                    max_features: MaxFeatures::Fraction(1.5),
                    ..p
                }
            )
            .is_err()
        );
        assert!(
            IsolationForest::fit(
                &x,
                &ForestParams {
                    n_estimators: 0,
                    ..p
                }
            )
            .is_err()
        );
    }

    #[test]
    fn constant_data_gives_single_leaf_trees() {
        let x = Matrix::new(2, vec![1.0; 200]).unwrap();
        let f = IsolationForest::fit(&x, &ForestParams::default()).unwrap();
        assert!(f.trees.iter().all(|t| t.nodes.len() == 1));
        // Every row at the root leaf of 100 rows: E[h] = c(100), s = 2^(-c(100)/c(100)).
        assert!((f.anomaly_score(&[1.0, 1.0]).unwrap() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn block_and_lane_scoring_equal_one_row_at_a_time() {
        // 203 rows: full lane groups, a partial group, and a partial block.
        let x = gaussianish(203, 3, 9);
        let f = IsolationForest::fit(&x, &ForestParams::default()).unwrap();
        let all = f.score_samples(&x).unwrap();
        let serial = f.score_samples_serial(&x).unwrap();
        for (i, row) in x.rows().enumerate() {
            let one = -f.anomaly_score(row).unwrap();
            assert_eq!(all[i], one, "row {i}");
            assert_eq!(serial[i], one, "row {i}");
        }
    }

    #[test]
    fn trees_too_deep_for_the_complete_layout_score_the_same() {
        // 8192 rows per tree: height limit 13 > MAX_COMPLETE_DEPTH, so some trees walk
        // flat, next to shallower ones laid out complete.
        let x = gaussianish(8192, 2, 10);
        let p = ForestParams {
            n_estimators: 4,
            max_samples: MaxSamples::Count(8192),
            ..Default::default()
        };
        let f = IsolationForest::fit(&x, &p).unwrap();
        assert!(f.compiled().iter().any(Option::is_none));
        let all = f.score_samples_serial(&x).unwrap();
        for (i, row) in x.rows().enumerate().step_by(97) {
            assert_eq!(all[i], -f.anomaly_score(row).unwrap(), "row {i}");
        }
    }

    #[test]
    fn top_levels_take_every_row_to_the_same_node_with_or_without_avx2() {
        let x = gaussianish(BLOCK, 3, 11);
        let f = IsolationForest::fit(&x, &ForestParams::default()).unwrap();
        let mut cols = vec![0.0; 3 * BLOCK];
        to_columns::<false>(&x.data, 3, &mut cols);
        for tree in f.compiled().iter().flatten() {
            let (mut a, mut b) = ([0usize; BLOCK], [0usize; BLOCK]);
            let done = top_levels(tree, &cols, BLOCK, &mut a);
            assert_eq!(top_levels_any(tree, &cols, BLOCK, &mut b), done);
            assert_eq!(a, b);
            // Each row's node is where a plain walk of `done` levels ends.
            for (r, &h) in a.iter().enumerate() {
                let mut walked = 1;
                for _ in 0..done {
                    let c = tree.column[walked] as usize;
                    walked = 2 * walked + usize::from(cols[c + r] > tree.value[walked]);
                }
                assert_eq!(h, walked, "row {r}");
            }
        }
    }

    #[test]
    fn percentile_matches_numpy() {
        // np.percentile([1, 2, 3, 4], 10) == 1.3; ([5, 1, 3], 50) == 3
        assert!((percentile(&[1.0, 2.0, 3.0, 4.0], 10.0) - 1.3).abs() < 1e-15);
        assert_eq!(percentile(&[5.0, 1.0, 3.0], 50.0), 3.0);
        assert_eq!(percentile(&[2.0], 37.0), 2.0);
    }
}
