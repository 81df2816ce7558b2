//! ES256 JSON Web Tokens (RFC 7515/7519, compact form), signed and verified with ring: the service-account
//! token issuer's key, its `kid` and JWK, and the checks every token's registered claims must pass.
//!
//! This knows nothing of service accounts: `serviceaccounts` decides what goes into the claims and what a
//! verified token means.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use serde_json::{json, Value};

/// What a P-256 public key's SubjectPublicKeyInfo DER starts with (id-ecPublicKey, prime256v1, a 66-byte bit
/// string), before the 65 bytes of the uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// How far clocks may disagree: a token is accepted this long after `exp` and before `nbf`/`iat`, as upstream
/// (go-jose's default leeway).
pub const LEEWAY_SECONDS: i64 = 60;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("not a compact JWS")]
    Malformed,
    #[error("unsupported algorithm {0:?}")]
    Algorithm(String),
    #[error("signed by an unknown key {0:?}")]
    UnknownKey(String),
    #[error("invalid signature")]
    Signature,
    #[error("issuer {0:?} is not this server")]
    Issuer(String),
    #[error("the audience does not include {0:?}")]
    Audience(String),
    #[error("expired")]
    Expired,
    #[error("not valid yet")]
    NotYetValid,
}

/// The issuer's ECDSA P-256 key.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    kid: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

/// A new P-256 private key as PEM (`PRIVATE KEY`, PKCS#8), for the data directory.
pub fn generate_pkcs8_pem() -> String {
    let document = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .expect("the system random source works");
    let encoded = base64::engine::general_purpose::STANDARD.encode(document.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

impl SigningKey {
    /// The key from PKCS#8 PEM, as `generate_pkcs8_pem` writes it (and as openssl writes P-256 keys).
    pub fn from_pkcs8_pem(pem: &str) -> Result<SigningKey, String> {
        use rustls::pki_types::pem::PemObject;
        let der = rustls::pki_types::PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| format!("not a PKCS#8 PEM private key: {e}"))?;
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.secret_pkcs8_der(), &rng)
            .map_err(|e| format!("not an ECDSA P-256 key: {e}"))?;
        let spki = spki_der(pair.public_key().as_ref());
        // Upstream's key id: the unpadded base64url SHA-256 of the PKIX (SubjectPublicKeyInfo) DER.
        let kid = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, &spki));
        Ok(SigningKey { pair, kid, rng })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK (RFC 7517), as upstream serves it in `/openid/v1/jwks`.
    pub fn jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        json!({
            "use": "sig",
            "kty": "EC",
            "kid": self.kid(),
            "crv": "P-256",
            "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        })
    }

    /// `claims` signed: `base64url(header).base64url(claims).base64url(r‖s)`.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "kid": self.kid});
        let mut token = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("JSON serializes"));
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("JSON serializes")));
        let signature = self.pair.sign(&self.rng, token.as_bytes()).expect("ECDSA signing does not fail");
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature.as_ref()));
        token
    }

    /// The claims of a token this key signed; checks the header and the signature only (see `check_claims`).
    pub fn verify(&self, token: &str) -> Result<Value, JwtError> {
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| JwtError::Malformed);
        let header: Value = serde_json::from_slice(&decode(header)?).map_err(|_| JwtError::Malformed)?;
        match header["alg"].as_str() {
            Some("ES256") => {}
            other => return Err(JwtError::Algorithm(other.unwrap_or_default().to_string())),
        }
        if let Some(kid) = header.get("kid") {
            if kid.as_str() != Some(self.kid.as_str()) {
                return Err(JwtError::UnknownKey(kid.as_str().unwrap_or_default().to_string()));
            }
        }
        let signed = &token[..token.len() - signature.len() - 1];
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.pair.public_key().as_ref())
            .verify(signed.as_bytes(), &decode(signature)?)
            .map_err(|_| JwtError::Signature)?;
        let claims: Value = serde_json::from_slice(&decode(claims)?).map_err(|_| JwtError::Malformed)?;
        if !claims.is_object() {
            return Err(JwtError::Malformed);
        }
        Ok(claims)
    }
}

/// The SubjectPublicKeyInfo DER of an uncompressed P-256 point.
fn spki_der(point: &[u8]) -> Vec<u8> {
    [&P256_SPKI_PREFIX[..], point].concat()
}

/// The registered claims' checks: `iss` is `issuer`, `aud` (a string or a list) contains `audience`, and `now`
/// (Unix seconds) is within `nbf`/`iat` … `exp`, give or take `LEEWAY_SECONDS`. `exp` is required.
pub fn check_claims(claims: &Value, issuer: &str, audience: &str, now: i64) -> Result<(), JwtError> {
    let iss = claims["iss"].as_str().unwrap_or_default();
    if iss != issuer {
        return Err(JwtError::Issuer(iss.to_string()));
    }
    let audiences = match &claims["aud"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&audience) {
        return Err(JwtError::Audience(audience.to_string()));
    }
    let exp = claims["exp"].as_i64().ok_or(JwtError::Expired)?;
    if now > exp + LEEWAY_SECONDS {
        return Err(JwtError::Expired);
    }
    for field in ["nbf", "iat"] {
        if claims[field].as_i64().is_some_and(|t| now + LEEWAY_SECONDS < t) {
            return Err(JwtError::NotYetValid);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

    fn key() -> SigningKey {
        SigningKey::from_pkcs8_pem(&generate_pkcs8_pem()).unwrap()
    }

    fn claims(now: i64) -> Value {
        json!({"iss": ISSUER, "aud": [ISSUER], "sub": "system:serviceaccount:ns:sa", "iat": now, "nbf": now, "exp": now + 3600})
    }

    #[test]
    fn a_signed_token_verifies_and_carries_its_claims() {
        let key = key();
        let token = key.sign(&claims(1_700_000_000));
        assert_eq!(token.split('.').count(), 3);
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header, json!({"alg": "ES256", "kid": key.kid()}));
        let verified = key.verify(&token).unwrap();
        assert_eq!(verified, claims(1_700_000_000));
        assert_eq!(check_claims(&verified, ISSUER, ISSUER, 1_700_000_100), Ok(()));
        // The same key loaded again (a restart) verifies it too and has the same kid.
        let pem = generate_pkcs8_pem();
        let (first, again) = (SigningKey::from_pkcs8_pem(&pem).unwrap(), SigningKey::from_pkcs8_pem(&pem).unwrap());
        assert_eq!(first.kid(), again.kid());
        assert!(again.verify(&first.sign(&claims(0))).is_ok());
    }

    #[test]
    fn the_kid_is_the_sha256_of_the_public_key_der_and_the_jwk_holds_the_point() {
        let key = key();
        let point = key.pair.public_key().as_ref().to_vec();
        assert_eq!((point.len(), point[0]), (65, 4));
        let spki = spki_der(&point);
        assert_eq!(spki.len(), 91);
        let digest = ring::digest::digest(&ring::digest::SHA256, &spki);
        assert_eq!(key.kid(), URL_SAFE_NO_PAD.encode(digest));
        let jwk = key.jwk();
        assert_eq!(
            (jwk["kty"].as_str(), jwk["crv"].as_str(), jwk["alg"].as_str()),
            (Some("EC"), Some("P-256"), Some("ES256"))
        );
        let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
        let y = URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap();
        assert_eq!([&[4u8][..], &x, &y].concat(), point);
    }

    #[test]
    fn an_openssl_key_loads_with_the_kid_openssl_computes() {
        // `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256` (a key made for this test only), and
        // `openssl pkey -pubout -outform DER | openssl dgst -sha256 -binary | base64url`.
        let pem = "-----BEGIN PRIVATE KEY-----\n\
            MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgy02p95ghjedENaLy\n\
            Oqw0DJZ0bwG6jT17yOMp8jWT4qGhRANCAASiDsQ78z9DpyEBynI6Sfl+LIGtHRNc\n\
            vIi0kKAlcLa4t6ksI9reePsG2o2n03661n4avr6qQWTBxB6HVq6zu2kF\n\
            -----END PRIVATE KEY-----\n";
        let key = SigningKey::from_pkcs8_pem(pem).unwrap();
        assert_eq!(key.kid(), "6MxvzCh9RXKTOi6CIbsM3oAuobA2mfANXpIAJq-yUuo");
        assert!(SigningKey::from_pkcs8_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err());
    }

    #[test]
    fn a_tampered_token_is_refused() {
        let key = key();
        let token = key.sign(&claims(1_700_000_000));
        let parts: Vec<&str> = token.split('.').collect();
        // Other claims under the original signature.
        let mut forged = claims(1_700_000_000);
        forged["sub"] = json!("system:serviceaccount:kube-system:admin");
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(key.verify(&format!("{}.{body}.{}", parts[0], parts[2])), Err(JwtError::Signature));
        // A flipped signature bit.
        let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        signature[10] ^= 1;
        let flipped = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(signature));
        assert_eq!(key.verify(&flipped), Err(JwtError::Signature));
        // Signed by another key.
        assert!(matches!(key.verify(&self::key().sign(&claims(0))), Err(JwtError::UnknownKey(_))));
        // alg none, and garbage.
        let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        assert_eq!(key.verify(&format!("{none}.{}.", parts[1])), Err(JwtError::Algorithm("none".into())));
        assert_eq!(key.verify("a.b"), Err(JwtError::Malformed));
        assert_eq!(key.verify("!!.??.**"), Err(JwtError::Malformed));
        assert_eq!(key.verify(&format!("{token}.x")), Err(JwtError::Malformed));
    }

    #[test]
    fn an_expired_or_future_token_is_refused_beyond_the_leeway() {
        let now = 1_700_000_000;
        let token = claims(now);
        assert_eq!(check_claims(&token, ISSUER, ISSUER, now + 3600 + LEEWAY_SECONDS), Ok(()));
        assert_eq!(check_claims(&token, ISSUER, ISSUER, now + 3600 + LEEWAY_SECONDS + 1), Err(JwtError::Expired));
        assert_eq!(check_claims(&token, ISSUER, ISSUER, now - LEEWAY_SECONDS), Ok(()));
        assert_eq!(check_claims(&token, ISSUER, ISSUER, now - LEEWAY_SECONDS - 1), Err(JwtError::NotYetValid));
        let mut no_exp = token.clone();
        no_exp.as_object_mut().unwrap().remove("exp");
        assert_eq!(check_claims(&no_exp, ISSUER, ISSUER, now), Err(JwtError::Expired));
    }

    #[test]
    fn a_token_for_another_audience_or_issuer_is_refused() {
        let now = 1_700_000_000;
        let mut token = claims(now);
        token["aud"] = json!(["https://vault.example", "https://kubernetes.default.svc"]);
        assert_eq!(check_claims(&token, ISSUER, ISSUER, now), Err(JwtError::Audience(ISSUER.into())));
        token["aud"] = json!(ISSUER);
        assert_eq!(check_claims(&token, ISSUER, ISSUER, now), Ok(()), "a single audience may be a string");
        token["iss"] = json!("https://elsewhere");
        assert_eq!(check_claims(&token, ISSUER, ISSUER, now), Err(JwtError::Issuer("https://elsewhere".into())));
    }
}
