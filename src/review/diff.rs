//! A word-level diff between the AI's draft and what staff approved, kept for provenance.

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Same(String),
    Removed(String),
    Added(String),
}

/// How many words an edit added plus removed (0: unchanged).
pub(crate) fn changed_words(before: &str, after: &str) -> i32 {
    words(before, after)
        .iter()
        .map(|op| match op {
            Op::Same(_) => 0,
            Op::Removed(s) | Op::Added(s) => s.split_whitespace().count(),
        })
        .sum::<usize>()
        .try_into()
        .unwrap_or(i32::MAX)
}

/// Longest-common-subsequence diff over whitespace-separated words (drafts are short).
pub(crate) fn words(before: &str, after: &str) -> Vec<Op> {
    let a: Vec<&str> = before.split_whitespace().collect();
    let b: Vec<&str> = after.split_whitespace().collect();
    // Bound the work for pathological inputs; drafts are a few hundred words at most.
    if a.len() * b.len() > 4_000_000 {
        return vec![Op::Removed(before.to_owned()), Op::Added(after.to_owned())];
    }
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    let mut push = |op: Op| match (out.last_mut(), op) {
        (Some(Op::Same(s)), Op::Same(w))
        | (Some(Op::Removed(s)), Op::Removed(w))
        | (Some(Op::Added(s)), Op::Added(w)) => {
            s.push(' ');
            s.push_str(&w);
        }
        (_, op) => out.push(op),
    };
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            push(Op::Same(a[i].to_owned()));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            push(Op::Removed(a[i].to_owned()));
            i += 1;
        } else {
            push(Op::Added(b[j].to_owned()));
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_show_as_removed_and_added_runs() {
        let d = words(
            "Abrimos sábado das 8h às 12h.",
            "Abrimos sábado das 9h às 13h.",
        );
        assert_eq!(
            d,
            vec![
                Op::Same("Abrimos sábado das".into()),
                Op::Removed("8h".into()),
                Op::Added("9h".into()),
                Op::Same("às".into()),
                Op::Removed("12h.".into()),
                Op::Added("13h.".into()),
            ]
        );
        assert_eq!(words("a b", "a b"), vec![Op::Same("a b".into())]);
    }
}
