//! Optimal gated assignment of detections to tracks (Kuhn-Munkres from `pathfinding`).
//!
//! Leaving a track unmatched costs the gate, so a pair is worth `gate - cost` (ByteTrack's
//! `lapjv(cost_limit)` formulation) and pairs at or beyond the gate are worth nothing: the most
//! total worth is the least total cost. Greedy matching (best pair first) would give a crossing
//! face's box to whichever track happens to be nearest, and leave the other without a box it
//! could have had.

use std::collections::BTreeMap;

use pathfinding::kuhn_munkres::kuhn_munkres;
use pathfinding::matrix::Matrix;

/// Integer worth resolution: a millionth of the gate.
const SCALE: f64 = 1_000_000.0;

/// The pairs `(row, column)` of least total cost, `cost(row, column)`; a pair costing `gate` or
/// more (or NaN) is never made. Sorted by row.
pub fn assign(rows: usize, columns: usize, gate: f64, cost: impl Fn(usize, usize) -> f64) -> Vec<(usize, usize)> {
    let mut edges = Vec::new();
    for r in 0..rows {
        for c in 0..columns {
            let k = cost(r, c);
            if k < gate {
                // `as` saturates; worth >= 1 keeps every admissible pair apart from "no pair".
                let worth = ((gate - k.max(0.0)) / gate * SCALE).round() as i64;
                edges.push((r, c, worth.max(1)));
            }
        }
    }
    // Groups of tracks and detections linked by admissible pairs are solved apart: the algorithm
    // is cubic in a group's size, and in a hall most groups are one face and its track.
    let mut groups = Groups::new(rows + columns);
    for &(r, c, _) in &edges {
        groups.union(r, rows + c);
    }
    let mut by_group: BTreeMap<usize, Vec<(usize, usize, i64)>> = BTreeMap::new();
    for &edge in &edges {
        by_group.entry(groups.find(edge.0)).or_default().push(edge);
    }
    let mut pairs = Vec::new();
    for group in by_group.values() {
        solve(group, &mut pairs);
    }
    pairs.sort_unstable();
    pairs
}

/// Best pairs of one connected group of edges `(row, column, worth)`.
fn solve(edges: &[(usize, usize, i64)], pairs: &mut Vec<(usize, usize)>) {
    if let [(r, c, _)] = edges {
        pairs.push((*r, *c));
        return;
    }
    let mut rows: Vec<usize> = edges.iter().map(|e| e.0).collect();
    let mut columns: Vec<usize> = edges.iter().map(|e| e.1).collect();
    rows.sort_unstable();
    rows.dedup();
    columns.sort_unstable();
    columns.dedup();
    // kuhn_munkres wants no more rows than columns: put the smaller side in the rows.
    let flip = rows.len() > columns.len();
    let (small, large) = if flip { (&columns, &rows) } else { (&rows, &columns) };
    let mut worth = Matrix::new(small.len(), large.len(), 0i64);
    for &(r, c, w) in edges {
        let (a, b) = if flip { (c, r) } else { (r, c) };
        // Both are in their lists: they were collected from these edges.
        if let (Ok(i), Ok(j)) = (small.binary_search(&a), large.binary_search(&b)) {
            worth[(i, j)] = w;
        }
    }
    let (_, chosen) = kuhn_munkres(&worth);
    for (i, &j) in chosen.iter().enumerate() {
        // A row is always given some column; a worthless one means "no pair".
        if worth[(i, j)] > 0 {
            pairs.push(if flip { (large[j], small[i]) } else { (small[i], large[j]) });
        }
    }
}

/// Union-find over the rows then the columns.
struct Groups {
    parent: Vec<usize>,
}

impl Groups {
    fn new(n: usize) -> Self {
        Self { parent: (0..n).collect() }
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        self.parent[a.max(b)] = a.min(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(costs: &[&[f64]], gate: f64) -> Vec<(usize, usize)> {
        assign(costs.len(), costs.first().map_or(0, |r| r.len()), gate, |r, c| costs[r][c])
    }

    #[test]
    fn least_total_cost_not_greedy() {
        // Greedy takes (0, 0) at 0.1 and is left with (1, 1) at 0.9; the best total is 0.35.
        assert_eq!(run(&[&[0.1, 0.2], &[0.15, 0.9]], 1.0), vec![(0, 1), (1, 0)]);
    }

    #[test]
    fn gate_and_nan_leave_pairs_unmade() {
        assert_eq!(run(&[&[1.0, f64::NAN], &[0.99, 2.0]], 1.0), vec![(1, 0)]);
        assert_eq!(run(&[&[f64::NAN]], 1.0), vec![]);
        assert_eq!(run(&[], 1.0), vec![]);
        // (0, 0) alone costs 0.5 + 1.0 for the row left over; the two other pairs cost 1.2.
        assert_eq!(run(&[&[0.5, 0.6], &[0.6, 5.0]], 1.0), vec![(0, 1), (1, 0)]);
    }

    #[test]
    fn more_rows_than_columns_and_separate_groups() {
        // Three tracks, two detections; and an unrelated pair far away (its own group).
        let costs: &[&[f64]] = &[&[0.3, 0.2, 9.0], &[0.1, 0.4, 9.0], &[0.05, 9.0, 9.0], &[9.0, 9.0, 0.7]];
        assert_eq!(run(costs, 1.0), vec![(0, 1), (2, 0), (3, 2)]);
    }
}
