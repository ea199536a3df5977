//! Hostile clients: customers calling admin operations, JSON built to hurt a parser, text
//! that a database could choke on and search strings that look like SQL. Each is refused
//! with a 4xx problem (or answered harmlessly) and changes nothing. Stolen and forged tokens
//! are in tokens.rs and auth.rs, other people's orders in checkout.rs.

use reqwest::Method;
use serde_json::{Value, json};
use testkit::app_tests;

use crate::helpers::*;

/// The number of products a listing shows.
async fn product_count(app: &TestApp) -> usize {
    app.list("limit=100").await["items"]
        .as_array()
        .unwrap()
        .len()
}

app_tests! {
    async fn a_flood_of_logins_is_turned_away_with_503_not_taken_on(storage: TestStorage) {
        let app = spawn_app_with(&storage, &["--trusted-proxies", "127.0.0.0/8,::1/128"]).await;
        app.register("flood@example.com").await;
        // Far more than the cores and the queue behind them can take at once, each for its
        // own account from its own address, so that no throttle stops them before the hash.
        let logins = (0..150).map(|n| {
            app.client
                .post(app.url("/api/v1/auth/login"))
                .header("x-forwarded-for", format!("198.51.100.{n}"))
                .json(&json!({"email": format!("flood{n}@example.com"), "password": PASSWORD}))
                .send()
        });
        let answers = futures::future::join_all(logins).await;
        let mut turned_away = 0;
        for answer in answers {
            let answer = answer.unwrap();
            match answer.status().as_u16() {
                // Checked, against the decoy hash: no such account.
                401 => {}
                503 => {
                    assert_eq!(answer.headers()["retry-after"], "1");
                    let body: Value = answer.json().await.unwrap();
                    assert_eq!(body["status"], 503, "{body}");
                    turned_away += 1;
                }
                other => panic!("a login answered {other}"),
            }
        }
        assert!(turned_away > 0, "nothing was turned away: the work is not bounded");
        // Once the flood has passed, logging in works again.
        assert_eq!(app.login("flood@example.com", PASSWORD).await.status(), 200);
        app.stop().await;
    }

    async fn customers_are_refused_every_admin_operation_and_change_nothing(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let admin = app.admin_token().await;
        let id = app.stocked_product(&admin, "GUARDED-1", 5).await;
        let (customer, _) = app.signed_up("mallory@example.com").await;
        let mallory: Value = app.get("/api/v1/users/me", Some(&customer)).await.json().await.unwrap();
        let product_path = format!("/api/v1/products/{id}");
        // Compared whole below: first let the catalog's availability catch up with the stock.
        wait_for("the availability", || async {
            app.get(&product_path, None).await.json::<Value>().await.unwrap()["available"] == 5
        })
        .await;
        let before: Value = app.get(&product_path, None).await.json().await.unwrap();
        let letter = uuid::Uuid::now_v7();
        let operations = [
            (Method::POST, "/api/v1/products".to_owned(), Some(product("FREE-1", "Free lunch", 1, "misc"))),
            (Method::PATCH, product_path.clone(), Some(json!({"name": "Pwned", "price": {"amount": 1, "currency": "EUR"}}))),
            (Method::DELETE, product_path.clone(), None),
            (Method::POST, format!("/api/v1/inventory/{id}/adjustments"), Some(json!({"delta": 1000, "reason": "free stock"}))),
            (Method::GET, format!("/api/v1/inventory/{id}/ledger"), None),
            (Method::GET, "/api/v1/admin/dlq/payments".to_owned(), None),
            (Method::GET, format!("/api/v1/admin/dlq/payments/{letter}"), None),
            (Method::POST, format!("/api/v1/admin/dlq/payments/{letter}/replay"), None),
            (Method::POST, format!("/api/v1/admin/dlq/payments/{letter}/discard"), None),
            (Method::GET, "/api/v1/admin/orders".to_owned(), None),
            (Method::GET, "/api/v1/admin/orders/summary".to_owned(), None),
            (Method::GET, "/api/v1/admin/payments/summary".to_owned(), None),
            (Method::GET, "/api/v1/admin/events/orders".to_owned(), None),
            (Method::GET, "/api/v1/admin/users?q=admin".to_owned(), None),
            (Method::PUT, format!("/api/v1/admin/users/{}/admin", mallory["id"].as_str().unwrap()), Some(json!({"admin": true}))),
        ];
        for (method, path, body) in &operations {
            let as_customer = app.send(method.clone(), path, Some(&customer), body.as_ref()).await;
            assert_eq!(as_customer.status(), 403, "{method} {path} as a customer");
            problem(as_customer, 403).await;
            let anonymous = app.send(method.clone(), path, None, body.as_ref()).await;
            assert_eq!(anonymous.status(), 401, "{method} {path} signed out");
            problem(anonymous, 401).await;
        }
        let after: Value = app.get(&product_path, None).await.json().await.unwrap();
        assert_eq!(after, before, "the product is untouched");
        assert_eq!(app.levels(&id).await, (5, 0), "the stock is untouched");
        assert_eq!(product_count(&app).await, 1, "no product was created");
        let still: Value = app.get("/api/v1/users/me", Some(&customer)).await.json().await.unwrap();
        assert_eq!(still["roles"], json!(["customer"]), "no one promoted themselves");
        app.stop().await;
    }

    async fn json_built_to_hurt_is_refused_and_stores_nothing(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let admin = app.admin_token().await;
        let register = app.url("/api/v1/auth/register");
        let send_raw = |url: String, body: String| {
            let client = app.client.clone();
            async move { client.post(url).header("content-type", "application/json").body(body).send().await.unwrap() }
        };
        // Nesting far deeper than any request needs: as the whole body, in a typed field and
        // in a free-form one (product attributes), where only the parser's depth limit stops it.
        let deep = |depth: usize| format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
        let deep_array = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        let deep_field = format!(r#"{{"email": {}, "password": "x", "name": "x"}}"#, deep(5000));
        for body in [deep_array, deep_field] {
            let response = send_raw(register.clone(), body).await;
            let status = response.status().as_u16();
            assert!([400, 422].contains(&status), "{status}");
            problem(response, status).await;
        }
        let mut deep_product = product("DEEP-1", "Deep", 1000, "misc");
        deep_product["attributes"] = json!("PLACEHOLDER");
        let deep_product = deep_product.to_string().replace(r#""PLACEHOLDER""#, &deep(5000));
        let created = app.client.post(app.url("/api/v1/products")).bearer_auth(&admin)
            .header("content-type", "application/json").body(deep_product).send().await.unwrap();
        let status = created.status().as_u16();
        assert!([400, 422].contains(&status), "{status}");
        problem(created, status).await;
        // Wrong shapes and hostile scalars.
        for body in [
            json!({"email": {"$gt": ""}, "password": PASSWORD, "name": "Injected"}),
            json!({"email": ["a@example.com"], "password": PASSWORD, "name": "Listed"}),
            json!({"email": "nul@example.com", "password": PASSWORD, "name": "Nul\u{0}byte"}),
            json!({"email": "nul\u{0}@example.com", "password": PASSWORD, "name": "Nul"}),
            json!({"email": "big@example.com", "password": PASSWORD, "name": "x".repeat(100_000)}),
        ] {
            let response = app.post_json("/api/v1/auth/register", &body).await;
            let status = response.status().as_u16();
            assert!([400, 413, 422].contains(&status), "{status} for {body}");
            problem(response, status).await;
        }
        let huge_number = r#"{"delta": 1e400, "reason": "overflow"}"#;
        let stock_path = format!("/api/v1/inventory/{}/adjustments", uuid::Uuid::now_v7());
        let overflow = app.client.post(app.url(&stock_path)).bearer_auth(&admin)
            .header("content-type", "application/json").body(huge_number).send().await.unwrap();
        assert!(overflow.status().is_client_error(), "{}", overflow.status());
        // A product whose text a database could choke on.
        let mut nul_product = product("NUL-1", "Lamp\u{0}", 1000, "misc");
        let created = app.send(Method::POST, "/api/v1/products", Some(&admin), Some(&nul_product)).await;
        problem(created, 422).await;
        nul_product["name"] = json!("Lamp");
        nul_product["attributes"] = json!({"colour\u{0}": "black"});
        let created = app.send(Method::POST, "/api/v1/products", Some(&admin), Some(&nul_product)).await;
        problem(created, 422).await;

        assert_eq!(app.login("nul@example.com", PASSWORD).await.status(), 401, "no account was made");
        assert_eq!(app.login("big@example.com", PASSWORD).await.status(), 401, "no account was made");
        assert_eq!(product_count(&app).await, 0, "no product was made");
        app.stop().await;
    }

    async fn search_strings_that_look_like_sql_find_nothing_and_break_nothing(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let admin = app.admin_token().await;
        app.create_product(&admin, &product("LAMP-1", "Desk lamp", 2500, "lighting")).await;
        for hostile in [
            "' OR '1'='1",
            "'; DROP TABLE products; --",
            "\" OR 1=1 --",
            "lamp' UNION SELECT password_hash FROM users.users --",
            "1; SELECT pg_sleep(5)",
            "%",
            "_",
            "%%%%",
            "\\",
            "nul\u{0}byte",
        ] {
            for parameter in ["q", "category", "cursor"] {
                let url = reqwest::Url::parse_with_params(&app.url("/api/v1/products"), [(parameter, hostile)]).unwrap();
                let response = app.client.get(url).send().await.unwrap();
                let status = response.status().as_u16();
                if status == 200 {
                    let page: Value = response.json().await.unwrap();
                    let names: Vec<&str> = page["items"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
                    // A query without a word is no search (wildcards never reach the SQL):
                    // the whole listing; one with words matches none of them here.
                    let wordless = parameter == "q" && !hostile.chars().any(char::is_alphanumeric);
                    let expected: &[&str] = if wordless { &["Desk lamp"] } else { &[] };
                    assert_eq!(names, expected, "{parameter}={hostile:?}");
                } else {
                    assert!([400, 422].contains(&status), "{status} for {parameter}={hostile:?}");
                    problem(response, status).await;
                }
            }
        }
        let hostile_sort = app.get("/api/v1/products?sort=price;DROP%20TABLE%20products", None).await;
        problem(hostile_sort, 422).await;
        assert_eq!(app.list("q=lamp").await["items"][0]["name"], "Desk lamp", "the catalog still works");
        assert_eq!(product_count(&app).await, 1);
        app.stop().await;
    }
}
