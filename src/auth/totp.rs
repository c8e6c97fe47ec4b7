//! Time-based one-time passwords (RFC 6238): SHA-1, 6 digits, 30-second steps, one step of
//! skew, and a code accepted at most once (the last used step is stored).

use totp_rs::{Algorithm, Secret, TOTP};

pub(crate) const ISSUER: &str = "SigmaAI";

pub(crate) fn new_secret() -> Vec<u8> {
    use rand::RngCore;
    // 160 bits, as RFC 4226 recommends.
    let mut s = vec![0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut s);
    s
}

fn totp(secret: &[u8], account: &str) -> anyhow::Result<TOTP> {
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        30,
        secret.to_vec(),
        Some(ISSUER.to_owned()),
        account.to_owned(),
    )
    .map_err(|e| anyhow::anyhow!("totp: {e}"))
}

/// The secret as base32, for typing into an authenticator app by hand.
pub(crate) fn secret_base32(secret: &[u8]) -> String {
    Secret::Raw(secret.to_vec()).to_encoded().to_string()
}

/// The `otpauth://` URI an authenticator app scans.
pub(crate) fn otpauth_uri(secret: &[u8], account: &str) -> anyhow::Result<String> {
    Ok(totp(secret, account)?.get_url())
}

/// An SVG QR code of the URI (rendered by us: no third-party QR service sees the secret).
pub(crate) fn qr_svg(uri: &str) -> anyhow::Result<String> {
    let code = qrcode::QrCode::new(uri.as_bytes())?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build())
}

/// Checks `code` at `unix_time`. Returns the matched time step if valid and newer than
/// `last_step` (so a code can't be replayed), else `None`.
pub(crate) fn verify(
    secret: &[u8],
    code: &str,
    unix_time: u64,
    last_step: Option<i64>,
) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = totp(secret, "x").ok()?;
    let step_now = (unix_time / 30) as i64;
    for step in [step_now - 1, step_now, step_now + 1] {
        if step < 0 {
            continue;
        }
        let candidate = t.generate(step as u64 * 30);
        let same: bool =
            subtle::ConstantTimeEq::ct_eq(candidate.as_bytes(), code.as_bytes()).into();
        if same && last_step.is_none_or(|last| step > last) {
            return Some(step);
        }
    }
    None
}

/// The current code (tests and the enrolment check use it).
#[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
pub(crate) fn code_at(secret: &[u8], unix_time: u64) -> String {
    totp(secret, "x")
        .map(|t| t.generate(unix_time))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_verify_once_within_skew() {
        let s = new_secret();
        let now = 1_700_000_000;
        let code = code_at(&s, now);
        let step = verify(&s, &code, now, None).unwrap();
        assert_eq!(verify(&s, &code, now, Some(step)), None, "replay accepted");
        assert!(
            verify(&s, &code, now + 30, None).is_some(),
            "one step of skew"
        );
        assert!(verify(&s, &code, now + 95, None).is_none(), "too old");
        assert!(verify(&s, "12345", now, None).is_none());
        assert!(
            otpauth_uri(&s, "ana@clinic.com")
                .unwrap()
                .starts_with("otpauth://totp/")
        );
        assert!(qr_svg("otpauth://totp/x").unwrap().contains("<svg"));
    }
}
