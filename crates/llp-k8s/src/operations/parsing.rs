//! YAML is parsed off the async threads, a few documents at a time. A parse holds memory in
//! proportion to its input (the parser's budget is a small multiple of it, see
//! [`llp_spec::parse`]), so bounding the parses at once bounds what they hold together:
//! many hostile bodies sent at once wait their turn instead of taking the service's memory.

use super::Error;
use tokio::sync::Semaphore;

/// YAML documents parsed at once.
pub const PARSES_AT_ONCE: usize = 4;

static PARSES: Semaphore = Semaphore::const_new(PARSES_AT_ONCE);

/// Runs `parse` on a blocking thread once fewer than [`PARSES_AT_ONCE`] others run.
pub async fn parse<T: Send + 'static>(parse: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
    let _turn = PARSES.acquire().await.map_err(|_| Error::Unavailable {
        dependency: "the YAML parser",
    })?;
    tokio::task::spawn_blocking(parse)
        .await
        .map_err(|_| Error::Unavailable {
            dependency: "the YAML parser",
        })
}
