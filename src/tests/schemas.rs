//! The providers' published request schemas (`tests/fixtures/schemas/`, see the README
//! there), for checking what our clients really sent to the local provider servers.

use serde_json::Value;

pub(super) const OPENAI: &str = "openai-chat-completions-request.json";
pub(super) const ANTHROPIC: &str = "anthropic-messages-request.json";

/// The schema's complaints about `body` (empty when it validates).
pub(super) fn errors(schema_file: &str, body: &Value) -> Vec<String> {
    let path = format!(
        "{}/tests/fixtures/schemas/{schema_file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let schema: Value = serde_json::from_str(&text).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}
