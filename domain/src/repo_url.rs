//! The one comparable form of a repository URL, so a checkout's remote finds its registered repo.

/// A URL reduced to what identifies a repository: no surrounding spaces, trailing `/` or `.git`.
pub fn normalize_url(url: &str) -> &str {
    let trimmed = url.trim().trim_end_matches('/');
    trimmed.strip_suffix(".git").unwrap_or(trimmed)
}

#[cfg(test)]
mod tests {
    use super::normalize_url;

    #[test]
    fn urls_compare_without_trailing_git_or_slash() {
        assert_eq!(normalize_url("git://h/r.git"), "git://h/r");
        assert_eq!(normalize_url("git://h/r/"), "git://h/r");
        assert_eq!(normalize_url(" https://h/r "), "https://h/r");
    }
}
