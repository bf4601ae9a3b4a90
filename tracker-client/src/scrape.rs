//! Scrape (BEP 48): the scrape URL derived from an announce URL, and the
//! `files` dictionary of the response.

use std::collections::BTreeMap;

use crate::announce::{
    count, decode_dict, http_base, invalid, percent_encode_into, ResponseError, UrlError,
};

/// Swarm counts for one torrent, as a tracker reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScrapeStats {
    /// Seeders (`complete`).
    pub complete: u32,
    /// Times the torrent was downloaded to completion (`downloaded`).
    pub downloaded: u32,
    /// Leechers (`incomplete`).
    pub incomplete: u32,
}

/// A scrape response: counts per info-hash. A tracker may leave out hashes
/// it does not know, or add ones it was not asked about.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScrapeResponse {
    /// Counts by info-hash.
    pub files: BTreeMap<[u8; 20], ScrapeStats>,
}

/// The scrape URL of an HTTP(S) announce URL (BEP 48): the last path
/// segment must start with `announce`, which becomes `scrape`; the rest of
/// the segment and the query are kept.
///
/// ```
/// use rustico_tracker_client::scrape_url;
/// assert_eq!(scrape_url("http://t.test/x/announce.php?pk=1")?, "http://t.test/x/scrape.php?pk=1");
/// assert!(scrape_url("http://t.test/a").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn scrape_url(announce_url: &str) -> Result<String, UrlError> {
    let mut parsed = url::Url::parse(announce_url).map_err(|e| UrlError::Invalid {
        url: announce_url.to_owned(),
        reason: e.to_string(),
    })?;
    match parsed.scheme() {
        "http" | "https" => {}
        other => {
            return Err(UrlError::UnsupportedScheme {
                scheme: other.to_owned(),
            })
        }
    }
    let path = parsed.path().to_owned();
    let (dir, last) = path.rsplit_once('/').unwrap_or(("", &path));
    let Some(rest) = last.strip_prefix("announce") else {
        return Err(UrlError::NoScrape {
            last_segment: last.to_owned(),
        });
    };
    parsed.set_path(&format!("{dir}/scrape{rest}"));
    parsed.set_fragment(None);
    Ok(parsed.into())
}

/// The full scrape request URL for some info-hashes: the scrape URL of
/// `announce_url` with one `info_hash=` parameter per hash.
pub fn scrape_request_url(
    announce_url: &str,
    info_hashes: &[[u8; 20]],
) -> Result<String, UrlError> {
    let mut url = http_base(&scrape_url(announce_url)?)?;
    for (i, hash) in info_hashes.iter().enumerate() {
        if i > 0 {
            url.push('&');
        }
        url.push_str("info_hash=");
        percent_encode_into(&mut url, hash);
    }
    Ok(url)
}

/// Parses an HTTP scrape response body: `d5:filesd<20-byte hash>d8:completei..e...eee`.
/// Counts a tracker leaves out are zero; unknown keys are ignored.
pub fn parse_scrape_response(body: &[u8]) -> Result<ScrapeResponse, ResponseError> {
    let root = decode_dict(body)?;
    let files = root
        .get(b"files")
        .ok_or(ResponseError::MissingKey { key: "files" })?;
    let dict = files
        .as_dict()
        .ok_or_else(|| invalid("files", files, "a dictionary"))?;
    let mut response = ScrapeResponse::default();
    for (hash, stats) in dict.iter() {
        let hash: [u8; 20] = hash
            .try_into()
            .map_err(|_| invalid("files", stats, "a value under a 20-byte info-hash key"))?;
        if stats.as_dict().is_none() {
            return Err(invalid("files", stats, "a dictionary of counts"));
        }
        let field = |key: &'static str| {
            stats
                .get(key.as_bytes())
                .map(|v| count(v, key))
                .transpose()
                .map(Option::unwrap_or_default)
        };
        response.files.insert(
            hash,
            ScrapeStats {
                complete: field("complete")?,
                downloaded: field("downloaded")?,
                incomplete: field("incomplete")?,
            },
        );
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bep48_examples() {
        for (announce, scrape) in [
            (
                "http://example.com/announce",
                Ok("http://example.com/scrape"),
            ),
            (
                "http://example.com/x/announce",
                Ok("http://example.com/x/scrape"),
            ),
            (
                "http://example.com/announce.php",
                Ok("http://example.com/scrape.php"),
            ),
            ("http://example.com/a", Err("a")),
            (
                "http://example.com/announce?x2%0644",
                Ok("http://example.com/scrape?x2%0644"),
            ),
            (
                "http://example.com/announce?x=2/4",
                Ok("http://example.com/scrape?x=2/4"),
            ),
            ("http://example.com/x%064announce", Err("x%064announce")),
            (
                "https://example.com/announce#f",
                Ok("https://example.com/scrape"),
            ),
        ] {
            let got = scrape_url(announce);
            match scrape {
                Ok(want) => assert_eq!(got.as_deref(), Ok(want), "{announce}"),
                Err(last) => assert_eq!(
                    got,
                    Err(UrlError::NoScrape {
                        last_segment: last.into()
                    }),
                    "{announce}"
                ),
            }
        }
        assert_eq!(
            scrape_url("udp://t.test:1/announce"),
            Err(UrlError::UnsupportedScheme {
                scheme: "udp".into()
            })
        );
    }

    #[test]
    fn scrape_request_url_byte_exact() {
        assert_eq!(
            scrape_request_url(
                "http://t.test/announce?pk=1",
                &[[0xab; 20], *b"aaaaaaaaaaaaaaaaaaa "]
            )
            .unwrap(),
            format!(
                "http://t.test/scrape?pk=1&info_hash={}&info_hash={}%20",
                "%AB".repeat(20),
                "a".repeat(19)
            )
        );
    }

    #[test]
    fn files_every_field() {
        let body = b"d5:filesd20:AAAAAAAAAAAAAAAAAAAAd8:completei5e10:downloadedi50e10:incompletei10e4:name1:xe\
            20:BBBBBBBBBBBBBBBBBBBBd10:incompletei1eee5:flagsd20:min_request_intervali900eee";
        let r = parse_scrape_response(body).unwrap();
        assert_eq!(r.files.len(), 2);
        assert_eq!(
            r.files[&[b'A'; 20]],
            ScrapeStats {
                complete: 5,
                downloaded: 50,
                incomplete: 10
            }
        );
        assert_eq!(
            r.files[&[b'B'; 20]],
            ScrapeStats {
                complete: 0,
                downloaded: 0,
                incomplete: 1
            }
        );
    }

    #[test]
    fn bad_scrape_bodies() {
        assert_eq!(
            parse_scrape_response(b"d14:failure reason4:nopee"),
            Err(ResponseError::Failure {
                reason: "nope".into()
            })
        );
        assert_eq!(
            parse_scrape_response(b"de"),
            Err(ResponseError::MissingKey { key: "files" })
        );
        assert!(matches!(
            parse_scrape_response(b"d5:filesd3:abcdeee"),
            Err(ResponseError::InvalidValue {
                key: "files",
                offset: 14,
                ..
            })
        ));
        assert!(matches!(
            parse_scrape_response(b"d5:filesd20:AAAAAAAAAAAAAAAAAAAAd8:completei-1eeee"),
            Err(ResponseError::InvalidValue {
                key: "complete",
                ..
            })
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = parse_scrape_response(&body);
        }
    }
}
