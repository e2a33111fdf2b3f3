//! The one rule for names users give plugins, jobs and secrets.

/// The longest name, in bytes.
const MAX_NAME_LEN: usize = 64;

/// Checks a plugin, job or secret name: 1-64 of `A-Z a-z 0-9 . _ -`,
/// starting with a letter or digit.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".to_string());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "is {} characters long; the limit is {MAX_NAME_LEN}",
            name.len()
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!("{name:?} must start with a letter or digit"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "{name:?} contains {bad:?}; use letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}
