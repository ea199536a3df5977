//! Access tokens as a relying party sees them: verifiable with the published JWKS by a
//! standard JWT library, and every kind of bad token refused.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};
use testkit::app_tests;

use crate::helpers::*;

fn claims_for(sub: &str, aud: &str, exp_offset: i64) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"sub": sub, "roles": ["admin"], "iss": "commercex", "aud": aud,
           "iat": now, "exp": now + exp_offset, "jti": uuid::Uuid::now_v7().to_string()})
}

fn sign(key_pem: &[u8], kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_pem(key_pem).unwrap()).unwrap()
}

app_tests! {
    async fn an_access_token_verifies_against_the_published_jwks(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let (access, _) = app.signed_up("kim@example.com").await;
        let response = app.get("/.well-known/jwks.json", None).await;
        assert_eq!(response.status(), 200);
        let jwks: JwkSet = response.json().await.unwrap();
        let header = jsonwebtoken::decode_header(&access).unwrap();
        assert_eq!(header.alg, Algorithm::EdDSA);
        let kid = header.kid.expect("tokens name their key");
        let jwk = jwks.find(&kid).expect("the token's key is published");
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&["commercex-api"]);
        validation.set_issuer(&["commercex"]);
        let data = jsonwebtoken::decode::<Value>(&access, &DecodingKey::from_jwk(jwk).unwrap(), &validation).unwrap();
        for claim in ["sub", "roles", "iss", "aud", "exp", "iat", "jti"] {
            assert!(data.claims.get(claim).is_some(), "claim {claim}");
        }
        assert_eq!(data.claims["exp"].as_i64().unwrap() - data.claims["iat"].as_i64().unwrap(), 900);
        app.stop().await;
    }

    async fn bad_access_tokens_are_refused(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let (access, _) = app.signed_up("lee@example.com").await;
        let me: Value = app.get("/api/v1/users/me", Some(&access)).await.json().await.unwrap();
        let sub = me["id"].as_str().unwrap();
        let kid = jsonwebtoken::decode_header(&access).unwrap().kid.unwrap();
        let our_key = std::fs::read(app.signing_key_path()).unwrap();

        let (head, rest) = access.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let escalated = URL_SAFE_NO_PAD.encode(claims_for(sub, "commercex-api", 600).to_string());
        let tampered = format!("{head}.{escalated}.{signature}");
        let alg_none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT", "kid": kid}).to_string()),
            escalated
        );
        let wrong_audience = sign(&our_key, &kid, &claims_for(sub, "someone-else", 600));
        let expired = sign(&our_key, &kid, &claims_for(sub, "commercex-api", -3600));
        let foreign_key = platform::auth::SigningKey::generate();
        let foreign = foreign_key.sign(&claims_for(sub, "commercex-api", 600)).unwrap();
        let hs256 = jsonwebtoken::encode(
            &Header { kid: Some(kid.clone()), ..Header::new(Algorithm::HS256) },
            &claims_for(sub, "commercex-api", 600),
            &EncodingKey::from_secret(b"guess"),
        )
        .unwrap();

        let missing = app.get("/api/v1/users/me", None).await;
        problem(missing, 401).await;
        for (what, token) in [
            ("garbage", "not.a.token".to_owned()),
            ("tampered", tampered),
            ("alg none", alg_none),
            ("wrong audience", wrong_audience),
            ("expired", expired),
            ("signed by another key", foreign),
            ("HS256", hs256),
        ] {
            let response = app.get("/api/v1/users/me", Some(&token)).await;
            assert_eq!(response.status(), 401, "{what} token accepted");
            problem(response, 401).await;
        }
        // Our own key with good claims still works: the refusals above are about the tokens.
        let good = sign(&our_key, &kid, &claims_for(sub, "commercex-api", 600));
        assert_eq!(app.get("/api/v1/users/me", Some(&good)).await.status(), 200);
        app.stop().await;
    }
}
