//! Lists of a whole namespace read a page at a time, as kube-rs's watcher reads its first
//! list: with 10,000 deployments one list of every Service's metadata took the service from
//! 115 to 381 MiB for a moment (docs/performance.md). A page is processed, then dropped.

use kube::api::{ListMeta, ListParams};

/// Items a page (what kube-rs's watcher and kubectl ask for).
pub const PAGE: u32 = 500;

/// `params` with a page size of `PAGE` unless one is set.
pub fn first(params: &ListParams) -> ListParams {
    let params = params.clone();
    if params.limit.is_some() {
        params
    } else {
        params.limit(PAGE)
    }
}

/// The request for the page after the one `listed` answered `asked` with, if there is one.
pub fn next(asked: &ListParams, listed: &ListMeta) -> Option<ListParams> {
    let token = listed.continue_.as_deref().filter(|t| !t.is_empty())?;
    Some(asked.clone().continue_token(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_with_a_continue_token_has_a_next_one_and_the_last_has_none() {
        let asked = first(&ListParams::default().labels("a=b"));
        assert_eq!(asked.limit, Some(PAGE));
        let more = ListMeta {
            continue_: Some("token".into()),
            ..ListMeta::default()
        };
        let next_page = next(&asked, &more).expect("a next page");
        assert_eq!(next_page.continue_token.as_deref(), Some("token"));
        assert_eq!(next_page.label_selector.as_deref(), Some("a=b"), "the same question");
        assert_eq!(next_page.limit, Some(PAGE));
        for last in [None, Some(String::new())] {
            let listed = ListMeta {
                continue_: last,
                ..ListMeta::default()
            };
            assert!(next(&asked, &listed).is_none());
        }
        assert_eq!(
            first(&ListParams::default().limit(2)).limit,
            Some(2),
            "a set page size stays"
        );
    }
}
