//! Deterministic sharding of a selection, so that the `I`-th of `N` machines of a job array
//! (Slurm, Kubernetes Jobs) processes its own disjoint part and the parts together are the whole.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// The `index`-th of `count` disjoint parts of a list (0-based `index < count`).
///
/// Items are dealt round-robin: position `p` of the list belongs to shard `p % count`, so the parts
/// are disjoint, cover the list, differ in size by at most one, and each keeps the list's order.
/// The part depends only on the list and `(index, count)`, never on timing or the machine.
///
/// ```
/// use cnn_explain::eval::Shard;
/// let shard: Shard = "1/3".parse()?;
/// assert_eq!(shard.select(&[10, 11, 12, 13, 14, 15, 16]), [11, 14]);
/// let all: Vec<i32> = (0..3).flat_map(|i| Shard::new(i, 3).unwrap().select(&[1, 2, 3, 4])).collect();
/// assert_eq!(all.len(), 4);
/// assert!("3/3".parse::<Shard>().is_err());
/// # Ok::<(), cnn_explain::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shard {
    /// Which part, `0..count`.
    pub index: usize,
    /// Number of parts (at least 1).
    pub count: usize,
}

impl Shard {
    /// Part `index` of `count`; an error unless `count >= 1` and `index < count`.
    pub fn new(index: usize, count: usize) -> Result<Shard> {
        if count == 0 {
            return Err(Error::invalid("shard", "the number of shards must be at least 1"));
        }
        if index >= count {
            return Err(Error::invalid(
                "shard",
                format!(
                    "shard index {index} is out of range for {count} shards (valid: 0..={})",
                    count - 1
                ),
            ));
        }
        Ok(Shard { index, count })
    }

    /// The whole list as one part (`0/1`).
    pub fn whole() -> Shard {
        Shard { index: 0, count: 1 }
    }

    /// Whether position `position` of the list belongs to this part.
    pub fn contains(&self, position: usize) -> bool {
        self.count > 0 && position % self.count == self.index
    }

    /// This part of `items`, in the list's order.
    pub fn select<T: Clone>(&self, items: &[T]) -> Vec<T> {
        items
            .iter()
            .enumerate()
            .filter(|(p, _)| self.contains(*p))
            .map(|(_, t)| t.clone())
            .collect()
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = Error;

    /// Parses `I/N` (0-based `I`), as in `--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT`.
    fn from_str(s: &str) -> Result<Shard> {
        let bad = || {
            Error::invalid(
                "shard",
                format!("`{s}` is not of the form I/N with 0 <= I < N (for example 0/4)"),
            )
        };
        let (i, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let i = i.trim().parse::<usize>().map_err(|_| bad())?;
        let n = n.trim().parse::<usize>().map_err(|_| bad())?;
        Shard::new(i, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_disjoint_and_cover_the_list() {
        let items: Vec<usize> = (0..11).collect();
        let mut seen = Vec::new();
        for i in 0..4 {
            let part = Shard::new(i, 4).unwrap().select(&items);
            assert!(part.windows(2).all(|w| w[0] < w[1]));
            seen.extend(part);
        }
        seen.sort();
        assert_eq!(seen, items);
        assert_eq!(Shard::new(2, 4).unwrap().select(&items), [2, 6, 10]);
        assert!("a/2".parse::<Shard>().is_err());
        assert!("1/0".parse::<Shard>().is_err());
        assert_eq!("2/5".parse::<Shard>().unwrap(), Shard { index: 2, count: 5 });
    }
}
