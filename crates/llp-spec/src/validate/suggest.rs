//! "Did you mean …?" for misspelled keys and names.

use strsim::jaro_winkler;

/// The candidate closest to `word`, if it is close enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (c, jaro_winkler(&lower, &c.to_ascii_lowercase())))
        // 0.8 accepts `memroy`→`memory` and `gpucount`→`gpuCount`, rejects unrelated words.
        .filter(|(_, score)| *score >= 0.8)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, _)| c)
}

/// ` Did you mean `x`?` or the empty string.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    closest(word, candidates)
        .map(|c| format!(" Did you mean `{c}`?"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_finds_the_intended_key() {
        let keys = ["name", "image", "memory", "cpu", "gpuCount", "volumeMounts"];
        assert_eq!(closest("memroy", keys), Some("memory"));
        assert_eq!(closest("gpucount", keys), Some("gpuCount"));
        assert_eq!(closest("volumeMount", keys), Some("volumeMounts"));
        assert_eq!(closest("imgae", keys), Some("image"));
    }

    #[test]
    fn an_unrelated_word_suggests_nothing() {
        assert_eq!(closest("zzzz", ["name", "image", "memory"]), None);
    }
}
