//! Conversation labels and contact tags.

/// Labels: comma-separated, trimmed, at most 10 of 30 characters.
pub(crate) fn parse_labels(raw: &str) -> Result<Vec<String>, &'static str> {
    let mut out: Vec<String> = Vec::new();
    for l in raw.split(',').map(str::trim).filter(|l| !l.is_empty()) {
        if l.chars().count() > 30 || l.chars().any(char::is_control) {
            return Err("labels.invalid");
        }
        let l = l.to_lowercase();
        if !out.contains(&l) {
            out.push(l);
        }
    }
    if out.len() > 10 {
        return Err("labels.invalid");
    }
    Ok(out)
}
