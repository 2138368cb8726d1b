//! "Did you mean": the names closest to one the user typed.

/// Edit distance (insertions, deletions, substitutions) between `a` and `b`.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// Up to `n` distinct names of `names` closest to `typed`, where a name is
/// compared by its prefix of `typed`'s length (a prefix is what the user
/// meant to type), ties broken by order of appearance.
pub(crate) fn closest(typed: &str, names: &[&str], n: usize) -> Vec<String> {
    let len = typed.chars().count();
    let mut scored: Vec<(usize, usize, String)> = Vec::new();
    for (order, name) in names.iter().enumerate() {
        let prefix: String = name.chars().take(len).collect();
        let prefix = prefix.trim_end_matches('.').to_string();
        if scored.iter().any(|(_, _, p)| *p == prefix) {
            continue;
        }
        scored.push((distance(typed, &prefix), order, prefix));
    }
    scored.sort();
    scored.into_iter().take(n).map(|(_, _, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_edits() {
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("model.9", "model.9"), 0);
    }

    #[test]
    fn closest_compares_prefixes() {
        let names = [
            "model.0.conv0",
            "model.9.cv1",
            "model.19.m.0",
            "model.22.dec",
        ];
        let c = closest("model.9x", &names, 2);
        assert_eq!(c, ["model.9", "model.0"]);
        assert_eq!(closest("nosuchlayer", &[], 3), Vec::<String>::new());
    }
}
