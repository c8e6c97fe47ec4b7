//! Stripe over its REST API with our own small client (base URL configurable, so tests talk
//! to a local server speaking Stripe's wire format), and webhook signature verification.

use std::time::Duration;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The API version every request pins (`Stripe-Version`), so an account upgrade in Stripe's
/// dashboard cannot change the shapes we parse. The tests' fixtures are this version's
/// (stripe/openapi `fixtures3.json`). Webhook endpoints must be created with it too.
pub(crate) const STRIPE_VERSION: &str = "2026-07-29.dahlia";

/// Stripe signs webhooks with a timestamp; older than this (either way) is refused.
pub(crate) const SIGNATURE_TOLERANCE_SECS: i64 = 300;

#[derive(Debug, thiserror::Error)]
pub(crate) enum StripeError {
    #[error("Stripe is unreachable: {0}")]
    Unavailable(String),
    #[error("Stripe refused the request ({status}): {message}")]
    Rejected { status: u16, message: String },
}

pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    key: SecretString,
}

impl Client {
    pub(crate) fn new(base: &str, key: SecretString) -> Result<Client, StripeError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| StripeError::Unavailable(e.to_string()))?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_owned(),
            key,
        })
    }

    /// One API call. POSTs carry `idempotency_key`: Stripe answers a repeat of the same key
    /// with the first answer instead of acting twice.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        form: &[(&str, String)],
        idempotency_key: Option<&str>,
    ) -> Result<Value, StripeError> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(self.key.expose_secret())
            .header("Stripe-Version", STRIPE_VERSION);
        if let Some(k) = idempotency_key {
            req = req.header("Idempotency-Key", k);
        }
        req = if method == reqwest::Method::GET {
            req.query(form)
        } else {
            req.form(form)
        };
        let resp = req.send().await.map_err(|e| {
            StripeError::Unavailable(if e.is_timeout() {
                "timeout".into()
            } else {
                "connection failed".into()
            })
        })?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(body)
        } else {
            let message = body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .chars()
                .take(300)
                .collect();
            Err(StripeError::Rejected {
                status: status.as_u16(),
                message,
            })
        }
    }

    /// A Checkout session for a subscription to `price`; returns the URL to send the owner to.
    /// `idempotency_key` names the owner's action: a double-submitted form sends the same key
    /// and gets the same session.
    pub(crate) async fn checkout(
        &self,
        price: &str,
        tenant_id: &str,
        customer: Option<&str>,
        success_url: &str,
        cancel_url: &str,
        idempotency_key: &str,
    ) -> Result<String, StripeError> {
        let mut form = vec![
            ("mode", "subscription".to_owned()),
            ("line_items[0][price]", price.to_owned()),
            ("line_items[0][quantity]", "1".to_owned()),
            ("client_reference_id", tenant_id.to_owned()),
            ("metadata[tenant_id]", tenant_id.to_owned()),
            (
                "subscription_data[metadata][tenant_id]",
                tenant_id.to_owned(),
            ),
            ("success_url", success_url.to_owned()),
            ("cancel_url", cancel_url.to_owned()),
        ];
        if let Some(c) = customer {
            form.push(("customer", c.to_owned()));
        }
        let v = self
            .call(
                reqwest::Method::POST,
                "/v1/checkout/sessions",
                &form,
                Some(idempotency_key),
            )
            .await?;
        v["url"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| StripeError::Unavailable("no checkout URL in the response".into()))
    }

    /// The customer portal (change plan, payment method, cancel).
    pub(crate) async fn portal(
        &self,
        customer: &str,
        return_url: &str,
    ) -> Result<String, StripeError> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/v1/billing_portal/sessions",
                &[
                    ("customer", customer.to_owned()),
                    ("return_url", return_url.to_owned()),
                ],
                // A portal session is harmless to repeat; one key per request still keeps a
                // retried request from creating two.
                Some(&uuid::Uuid::new_v4().to_string()),
            )
            .await?;
        v["url"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| StripeError::Unavailable("no portal URL in the response".into()))
    }

    pub(crate) async fn invoices(&self, customer: &str) -> Result<Vec<Value>, StripeError> {
        let v = self
            .call(
                reqwest::Method::GET,
                "/v1/invoices",
                &[
                    ("customer", customer.to_owned()),
                    ("limit", "12".to_owned()),
                ],
                None,
            )
            .await?;
        Ok(v["data"].as_array().cloned().unwrap_or_default())
    }
}

/// Verifies `Stripe-Signature: t=…,v1=…` over `"{t}.{raw body}"` (HMAC-SHA256 with the
/// endpoint secret), with the 5-minute timestamp tolerance against `now`.
pub(crate) fn verify_signature(secret: &str, header: Option<&str>, body: &[u8], now: i64) -> bool {
    let Some(header) = header else { return false };
    let mut t: Option<i64> = None;
    let mut sigs: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse().ok(),
            Some(("v1", v)) => {
                if let Ok(b) = hex::decode(v) {
                    sigs.push(b);
                }
            }
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if (now - t).abs() > SIGNATURE_TOLERANCE_SECS || secret.is_empty() {
        return false;
    }
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    sigs.iter()
        .any(|s| bool::from(s.as_slice().ct_eq(expected.as_slice())))
}

/// Signs a payload as Stripe does (tests and local tools).
#[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
pub(crate) fn sign(secret: &str, body: &[u8], t: i64) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The idempotency key of one checkout action: the tenant, the plan and the id of the page
/// the owner submitted from (a double submission of that page repeats all three).
pub(crate) fn checkout_key(tenant_id: &str, plan: &str, action_id: &str) -> String {
    use sha2::Digest;
    let mut h = Sha256::new();
    for part in [tenant_id, plan, action_id] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    format!("checkout-{}", hex::encode(&h.finalize()[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_with_tolerance() {
        let body = br#"{"id":"evt_1"}"#;
        let h = sign("whsec_test", body, 1_000_000);
        assert!(verify_signature("whsec_test", Some(&h), body, 1_000_100));
        assert!(
            !verify_signature("whsec_test", Some(&h), body, 1_000_400),
            "stale"
        );
        assert!(!verify_signature("whsec_other", Some(&h), body, 1_000_100));
        assert!(!verify_signature(
            "whsec_test",
            Some(&h),
            br#"{"id":"evt_2"}"#,
            1_000_100
        ));
        assert!(!verify_signature("whsec_test", None, body, 1_000_100));
        assert!(!verify_signature(
            "whsec_test",
            Some("t=1000000"),
            body,
            1_000_100
        ));
    }

    #[test]
    fn checkout_keys_name_one_action() {
        let k = checkout_key("t1", "clinic", "a1");
        assert_eq!(k, checkout_key("t1", "clinic", "a1"));
        assert_ne!(k, checkout_key("t1", "clinic", "a2"));
        assert_ne!(k, checkout_key("t1", "enterprise", "a1"));
        assert!(k.len() <= 255, "Stripe's limit");
    }
}
