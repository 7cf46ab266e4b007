//! The signed token in an "I'll take it" link: the lead's keys and an
//! expiry, with an HMAC-SHA256 over both, as URL-safe base64. The token is
//! the capability to take the lead: it is checked in constant time and
//! never logged, and nothing in it is trusted before its MAC is checked.
//!
//! Layout (before base64): version byte `1`, expiry as Unix seconds (8
//! bytes, big-endian), the PartitionKey's length (2 bytes, big-endian), the
//! PartitionKey, the RowKey, then the 32-byte MAC over everything before it.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::OffsetDateTime;

use crate::config::{TakeSecret, TakeSettings};
use crate::lead::{Lead, LeadKey};

type HmacSha256 = Hmac<Sha256>;

const VERSION: u8 = 1;
const MAC_BYTES: usize = 32;
const HEAD_BYTES: usize = 1 + 8 + 2;
/// Keeps a MAC made for a take link from being valid for anything else
/// signed with the same key some day.
const CONTEXT: &[u8] = b"lead-notifier take link\0";
/// Longer text is not a token this version makes (two keys of 1 KiB each,
/// escaped as UTF-8, fit well within it).
const MAX_TOKEN_CHARS: usize = 16 * 1024;

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub lead: LeadKey,
    pub expires: OffsetDateTime,
}

/// Why a token is refused. The text names no part of the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the link is incomplete or damaged")]
    Malformed,
    #[error("the link's signature does not match")]
    Forged,
    #[error("the link has expired")]
    Expired,
}

/// When a link made for a lead written at `at` expires: `at + ttl`, rounded
/// up to the next midnight UTC, so every destination and every run that
/// alerts the lead (the real-time webhook knows no row timestamp yet and
/// uses the time it stored the row) makes the same link.
pub fn expiry(at: OffsetDateTime, ttl: Duration) -> OffsetDateTime {
    let end = at + ttl;
    let midnight = end.replace_time(time::Time::MIDNIGHT);
    if midnight == end {
        end
    } else {
        midnight + time::Duration::DAY
    }
}

/// The link for the lead `lead`, written at `at`.
pub fn link(settings: &TakeSettings, lead: &LeadKey, at: OffsetDateTime) -> String {
    let token = sign(&settings.secret, lead, expiry(at, settings.ttl));
    settings.link(&token)
}

/// Gives `lead` its link when take links are on; `now` stands in for a
/// lead without a row timestamp (posted in real time).
pub fn attach(settings: Option<&TakeSettings>, lead: &mut Lead, now: OffsetDateTime) {
    if let Some(settings) = settings {
        lead.take_url = Some(link(settings, &lead.key, lead.timestamp.unwrap_or(now)));
    }
}

/// The token for `lead`, valid until `expires`.
pub fn sign(secret: &TakeSecret, lead: &LeadKey, expires: OffsetDateTime) -> String {
    let pk = lead.partition_key.as_bytes();
    // Table storage keys are at most 1 KiB: a longer one is not a stored
    // lead, and cutting it only makes a token that finds nothing.
    let pk = &pk[..pk.len().min(usize::from(u16::MAX))];
    let mut bytes = Vec::with_capacity(HEAD_BYTES + pk.len() + lead.row_key.len() + MAC_BYTES);
    bytes.push(VERSION);
    bytes.extend_from_slice(&expires.unix_timestamp().to_be_bytes());
    bytes.extend_from_slice(&(pk.len() as u16).to_be_bytes());
    bytes.extend_from_slice(pk);
    bytes.extend_from_slice(lead.row_key.as_bytes());
    let tag = mac(secret, &bytes).finalize().into_bytes();
    bytes.extend_from_slice(&tag);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Checks `token` (as found in the link) at time `now`.
pub fn verify(secret: &TakeSecret, token: &str, now: OffsetDateTime) -> Result<Token, TokenError> {
    if token.len() > MAX_TOKEN_CHARS {
        return Err(TokenError::Malformed);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| TokenError::Malformed)?;
    if bytes.len() < HEAD_BYTES + MAC_BYTES {
        return Err(TokenError::Malformed);
    }
    let (signed, tag) = bytes.split_at(bytes.len() - MAC_BYTES);
    mac(secret, signed)
        .verify_slice(tag)
        .map_err(|_| TokenError::Forged)?;
    if signed[0] != VERSION {
        return Err(TokenError::Malformed);
    }
    let mut seconds = [0u8; 8];
    seconds.copy_from_slice(&signed[1..9]);
    let expires = OffsetDateTime::from_unix_timestamp(i64::from_be_bytes(seconds))
        .map_err(|_| TokenError::Malformed)?;
    if now >= expires {
        return Err(TokenError::Expired);
    }
    let pk_len = usize::from(u16::from_be_bytes([signed[9], signed[10]]));
    let keys = &signed[HEAD_BYTES..];
    if pk_len > keys.len() {
        return Err(TokenError::Malformed);
    }
    let (pk, rk) = keys.split_at(pk_len);
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| TokenError::Malformed);
    Ok(Token {
        lead: LeadKey {
            partition_key: text(pk)?,
            row_key: text(rk)?,
        },
        expires,
    })
}

fn mac(secret: &TakeSecret, signed: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length.
    let mut mac = match HmacSha256::new_from_slice(secret.expose()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    };
    mac.update(CONTEXT);
    mac.update(signed);
    mac
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn secret(byte: u8) -> TakeSecret {
        TakeSecret::from_bytes(&[byte; 32])
    }

    fn lead() -> LeadKey {
        LeadKey {
            partition_key: "9:2F28:2F2018".into(),
            row_key: "a/b#c?é|".into(),
        }
    }

    const NOW: OffsetDateTime = datetime!(2026-12-05 20:00 UTC);
    const LATER: OffsetDateTime = datetime!(2027-01-05 00:00 UTC);

    #[test]
    fn a_token_gives_back_its_lead() {
        let token = sign(&secret(1), &lead(), LATER);
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let read = verify(&secret(1), &token, NOW).unwrap();
        assert_eq!(read.lead, lead());
        assert_eq!(read.expires, LATER);
        assert_eq!(
            sign(&secret(1), &lead(), LATER),
            token,
            "one lead, one link"
        );
    }

    #[test]
    fn tampered_truncated_foreign_and_expired_tokens_are_refused() {
        let token = sign(&secret(1), &lead(), LATER);
        assert_eq!(verify(&secret(2), &token, NOW), Err(TokenError::Forged));
        assert_eq!(verify(&secret(1), &token, LATER), Err(TokenError::Expired));
        for cut in [1, 10, token.len() / 2, token.len() - 1] {
            let short = &token[..token.len() - cut];
            assert!(verify(&secret(1), short, NOW).is_err(), "cut {cut}");
        }
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for i in [0, 5, 12, bytes.len() - 1] {
            bytes[i] ^= 1;
            let changed = URL_SAFE_NO_PAD.encode(&bytes);
            assert_eq!(verify(&secret(1), &changed, NOW), Err(TokenError::Forged));
            bytes[i] ^= 1;
        }
        // Another lead's keys with this lead's MAC.
        let other = LeadKey {
            partition_key: "9:2F28:2F2018".into(),
            row_key: "other".into(),
        };
        let mut spliced = URL_SAFE_NO_PAD
            .decode(sign(&secret(1), &other, LATER))
            .unwrap();
        let at = spliced.len() - MAC_BYTES;
        spliced.truncate(at);
        spliced.extend_from_slice(&bytes[bytes.len() - MAC_BYTES..]);
        let spliced = URL_SAFE_NO_PAD.encode(spliced);
        assert_eq!(verify(&secret(1), &spliced, NOW), Err(TokenError::Forged));
        assert_eq!(verify(&secret(1), "", NOW), Err(TokenError::Malformed));
        assert_eq!(verify(&secret(1), "***", NOW), Err(TokenError::Malformed));
    }

    #[test]
    fn expiry_is_the_same_all_day() {
        let ttl = Duration::from_secs(30 * 86_400);
        let morning = expiry(datetime!(2026-12-05 00:00:01 UTC), ttl);
        let evening = expiry(datetime!(2026-12-05 23:59:59 UTC), ttl);
        assert_eq!(morning, evening);
        assert_eq!(morning, datetime!(2027-01-05 00:00 UTC));
        assert_eq!(
            expiry(datetime!(2026-12-05 00:00 UTC), ttl),
            datetime!(2027-01-04 00:00 UTC)
        );
    }
}
