//! Majority arithmetic with no Raft types beyond indexes: the pure bottom layer.

use super::types::Index;

/// The largest index that a majority of `match_indexes` have reached (Raft §5.3, §5.4).
///
/// `match_indexes` holds one value per voter. Sorting descending, the value at position
/// `len / 2` is held by `len / 2 + 1` voters, which is a majority.
pub fn majority_index(match_indexes: &mut [Index]) -> Index {
    assert!(
        !match_indexes.is_empty(),
        "a cluster has at least one voter"
    );
    match_indexes.sort_unstable_by(|a, b| b.cmp(a));
    match_indexes[match_indexes.len() / 2]
}

/// How many votes make a majority of `voters`.
pub fn majority(voters: usize) -> usize {
    assert!(voters > 0, "a cluster has at least one voter");
    voters / 2 + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The dumb reference: the largest candidate index that at least a majority have reached.
    fn dumb_majority_index(match_indexes: &[Index]) -> Index {
        let need = majority(match_indexes.len());
        let mut best = Index(0);
        for &candidate in match_indexes {
            let count = match_indexes.iter().filter(|&&m| m >= candidate).count();
            if count >= need && candidate > best {
                best = candidate;
            }
        }
        best
    }

    #[test]
    fn majority_of_three_is_the_median() {
        assert_eq!(
            majority_index(&mut [Index(5), Index(1), Index(3)]),
            Index(3)
        );
        assert_eq!(majority(3), 2);
        assert_eq!(majority(4), 3);
        assert_eq!(majority(1), 1);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
        #[test]
        fn majority_index_matches_dumb_reference(raw in prop::collection::vec(0u64..20, 1..10)) {
            let mut fast: Vec<Index> = raw.iter().map(|&i| Index(i)).collect();
            let dumb = dumb_majority_index(&fast);
            prop_assert_eq!(majority_index(&mut fast), dumb);
        }
    }
}
