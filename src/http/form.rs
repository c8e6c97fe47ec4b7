//! A submitted form's errors, each tied to its field, so a page can show them all at once:
//! a summary at the top linking to each field, the message beside the field, and the field
//! marked `aria-invalid` and described by its message (issue 23).

/// (field name, message key) in the order the form lists its fields.
#[derive(Debug, Default)]
pub(crate) struct FieldErrors(Vec<(&'static str, &'static str)>);

impl FieldErrors {
    pub(crate) fn add(&mut self, field: &'static str, key: &'static str) {
        if !self.has(field) {
            self.0.push((field, key));
        }
    }

    /// Adds the error of a check that failed.
    pub(crate) fn check(&mut self, field: &'static str, r: Result<(), &'static str>) {
        if let Err(key) = r {
            self.add(field, key);
        }
    }

    pub(crate) fn has(&self, field: &str) -> bool {
        self.0.iter().any(|(f, _)| *f == field)
    }

    /// The message key for a field, if it has an error.
    pub(crate) fn get(&self, field: &str) -> Option<&'static str> {
        self.0.iter().find(|(f, _)| *f == field).map(|(_, k)| *k)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &(&'static str, &'static str)> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_error_per_field_in_order() {
        let mut e = FieldErrors::default();
        e.check("title", Ok(()));
        e.add("body", "form.body.empty");
        e.add("title", "form.title.empty");
        e.add("body", "form.body.long");
        assert_eq!(e.get("body"), Some("form.body.empty"));
        assert_eq!(
            e.iter().map(|(f, _)| *f).collect::<Vec<_>>(),
            ["body", "title"]
        );
        assert!(!e.has("other") && !e.is_empty());
    }
}
