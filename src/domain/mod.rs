//! Pure types and rules: no I/O.

pub(crate) mod account;
pub(crate) mod conversation;
pub(crate) mod events;
pub(crate) mod knowledge;
pub(crate) mod knowledge_import;
pub(crate) mod labels;
pub(crate) mod mcp;
pub(crate) mod message;
pub(crate) mod phone;
pub(crate) mod plans;
pub(crate) mod policy;
pub(crate) mod privacy;
pub(crate) mod retention;
pub(crate) mod review;

/// The values a migration's `CHECK (column IN ('a', 'b', …))` allows, in its order: the
/// tests hold each state enum to the table it is stored in.
#[cfg(test)]
pub(crate) fn check_constraint_values<'a>(migration: &'a str, column: &str) -> Vec<&'a str> {
    let list = migration
        .split(&format!("CHECK ({column} IN ("))
        .nth(1)
        .and_then(|rest| rest.split("))").next())
        .unwrap_or_else(|| panic!("the migration constrains {column}"));
    list.split(',')
        .map(|v| v.trim().trim_matches('\''))
        .collect()
}
