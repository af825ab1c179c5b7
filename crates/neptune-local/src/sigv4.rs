//! Optional SigV4 checking, as a cluster with IAM database authentication does (service
//! `neptune-db`). The signature is recomputed with `aws-sigv4`, the crate the SDKs sign with,
//! over the headers the client says it signed, and compared.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_smithy_runtime_api::client::identity::Identity;
use http::HeaderMap;

/// The one access key the server accepts.
#[derive(Debug, Clone)]
pub struct SigV4Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// How far a request's clock may be from ours, as AWS allows.
const MAX_SKEW_SECONDS: i64 = 15 * 60;

struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Option<Authorization<'_>> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (key, value) = part.trim().split_once('=')?;
        match key {
            "Credential" => credential = Some(value),
            "SignedHeaders" => signed = Some(value),
            "Signature" => signature = Some(value),
            _ => {}
        }
    }
    let mut scope = credential?.split('/');
    let (access_key_id, date, region, service, terminator) = (
        scope.next()?,
        scope.next()?,
        scope.next()?,
        scope.next()?,
        scope.next()?,
    );
    (terminator == "aws4_request").then_some(())?;
    Some(Authorization {
        access_key_id,
        date,
        region,
        service,
        signed_headers: signed?.split(';').collect(),
        signature: signature?,
    })
}

/// `yyyyMMddTHHmmssZ` as seconds since the epoch.
fn parse_amz_date(value: &str) -> Option<i64> {
    let b = value.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let n = |from: usize, to: usize| value.get(from..to)?.parse::<i64>().ok();
    let (y, m, d) = (n(0, 4)?, n(4, 6)?, n(6, 8)?);
    let (hh, mm, ss) = (n(9, 11)?, n(11, 13)?, n(13, 15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

impl SigV4Credentials {
    /// Checks a request's signature. `Err` is the message of Neptune's 403 answer.
    pub(crate) fn verify(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), String> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let Some(authorization) = header("authorization") else {
            return Err("Missing Authentication Token".into());
        };
        let auth = parse_authorization(authorization)
            .ok_or("Authorization header requires Credential, SignedHeaders and Signature")?;
        if auth.access_key_id != self.access_key_id {
            return Err("The security token included in the request is invalid".into());
        }
        if auth.service != "neptune-db" {
            return Err(format!(
                "Credential should be scoped to correct service: 'neptune-db', not '{}'",
                auth.service
            ));
        }
        let amz_date = header("x-amz-date").ok_or("Missing X-Amz-Date header")?;
        let time = parse_amz_date(amz_date).ok_or("Malformed X-Amz-Date header")?;
        if !amz_date.starts_with(auth.date) {
            return Err("Credential date does not match X-Amz-Date".into());
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        if (now - time).abs() > MAX_SKEW_SECONDS {
            return Err("Signature expired: the request time is more than 15 minutes away from the server time".into());
        }
        let mut signed: Vec<(&str, &str)> = Vec::new();
        for name in &auth.signed_headers {
            let value = header(name).ok_or_else(|| format!("Signed header {name} is missing"))?;
            signed.push((name, value));
        }
        let session_token = header("x-amz-security-token").map(str::to_owned);
        let identity: Identity = Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            session_token,
            None,
            "neptune-local",
        )
        .into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(auth.region)
            .name("neptune-db")
            .time(std::time::UNIX_EPOCH + std::time::Duration::from_secs(time as u64))
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let request = SignableRequest::new(
            method,
            path_and_query,
            signed.into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| e.to_string())?;
        let expected = sign(request, &params).map_err(|e| e.to_string())?;
        if expected.signature() != auth.signature {
            return Err(
                "The request signature we calculated does not match the signature you \
                        provided. Check your AWS Secret Access Key and signing method."
                    .into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates_convert_to_epoch_seconds() {
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_amz_date("20261121T101500Z"), Some(1_795_256_100));
        assert_eq!(parse_amz_date("2026-11-21"), None);
    }

    #[test]
    fn authorization_headers_parse() {
        let auth = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AKID/20261121/us-east-1/neptune-db/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=abc",
        )
        .unwrap_or_else(|| panic!("parses"));
        assert_eq!(auth.access_key_id, "AKID");
        assert_eq!(auth.region, "us-east-1");
        assert_eq!(auth.signed_headers, ["host", "x-amz-date"]);
        assert_eq!(auth.signature, "abc");
        assert!(parse_authorization("Bearer x").is_none());
    }
}
