//! The storefront as a browser meets it: pages rendered by the server from the public API,
//! a session in an encrypted cookie, forms that only our own pages can send.

use reqwest::{Method, StatusCode, header};
use serde_json::Value;
use testkit::{app_tests, backend_tests};

use crate::helpers::*;

const SHIPPING: [(&str, &str); 5] = [
    ("name", "Ada Lovelace"),
    ("line1", "12 Analytical Way"),
    ("city", "London"),
    ("postal_code", "N1 9GU"),
    ("country", "GB"),
];

/// Puts `quantity` of the product in the browser's cart from its product page, once the page
/// shows it in stock.
pub async fn add_to_cart(browser: &mut Browser, product: &str, quantity: &str) {
    let page = browser
        .page_saying(&format!("/products/{product}"), "available")
        .await;
    let csrf = page.csrf();
    let added = browser
        .post(
            "/cart",
            &[
                ("csrf", &csrf),
                ("product_id", product),
                ("quantity", quantity),
            ],
        )
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER);
    assert_eq!(added.location(), Some("/cart"));
}

/// Checks out the cart with `card`; the order's page address.
pub async fn check_out(browser: &mut Browser, card: &str) -> String {
    let form = browser.get("/checkout").await;
    assert_eq!(form.status, 200, "{}", form.text());
    let (csrf, key) = (form.csrf(), form.hidden("key").unwrap());
    let mut fields = vec![
        ("csrf", csrf.as_str()),
        ("key", key.as_str()),
        ("card", card),
    ];
    fields.extend(SHIPPING);
    let placed = browser.post("/checkout", &fields).await;
    assert_eq!(placed.status, StatusCode::SEE_OTHER, "{}", placed.text());
    placed.location().unwrap().to_owned()
}

/// A signed-up customer with `quantity` of a new product (`units` in stock) in the cart:
/// their browser and the product's id.
pub async fn customer_with_a_cart(
    app: &TestApp,
    sku: &str,
    units: i64,
    quantity: &str,
) -> (Browser, String) {
    let admin = app.admin_token().await;
    let product = app.orderable_product(&admin, sku, units).await;
    let mut browser = Browser::new(app);
    browser
        .sign_up(
            "Cy Customer",
            &format!("{}@example.com", sku.to_lowercase()),
            "/",
        )
        .await;
    add_to_cart(&mut browser, &product, quantity).await;
    (browser, product)
}

app_tests! {
    async fn a_customer_browses_fills_a_cart_signs_up_checks_out_and_sees_the_order_confirmed(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let admin = app.admin_token().await;
        let lamp = app.orderable_product(&admin, "LAMP-1", 10).await;
        let desk = app.orderable_product(&admin, "DESK-1", 10).await;
        let mut browser = Browser::new(&app);

        let home = browser.get("/").await;
        assert_eq!(home.status, 200);
        assert!(home.text().contains("Product LAMP-1") && home.text().contains("Product DESK-1"));
        let found = browser.get("/?q=LAMP-1").await;
        assert!(found.text().contains("Product LAMP-1") && !found.text().contains("Product DESK-1"), "{}", found.text());
        let priced = browser.get("/?min_price=14.50&max_price=15").await;
        assert!(priced.text().contains("Product LAMP-1") && priced.text().contains("Product DESK-1"));
        assert!(browser.get("/?max_price=14.99").await.text().contains("No products match."));
        assert!(browser.get("/?min_price=cheap").await.text().contains("a price is a number such as 20 or 19.99"));
        let product = browser.page_saying(&format!("/products/{lamp}"), "10 available").await;
        assert!(product.text().contains("15.00 EUR"));

        add_to_cart(&mut browser, &lamp, "2").await;
        add_to_cart(&mut browser, &desk, "1").await;
        let cart = browser.get("/cart").await;
        assert!(cart.text().contains("Total: 45.00 EUR"), "{}", cart.text());

        // Checking out asks who is buying first, and comes back.
        let checkout = browser.get("/checkout").await;
        assert_eq!(checkout.status, StatusCode::SEE_OTHER);
        assert_eq!(checkout.location(), Some("/login?next=%2Fcheckout"));
        browser.sign_up("Ada Lovelace", "ada@example.com", "/checkout").await;
        let order = check_out(&mut browser, "tok_visa").await;

        let confirmed = browser.page_saying(&order, "data-status=\"confirmed\"").await;
        assert!(confirmed.text().contains("Payment captured, order confirmed"), "{}", confirmed.text());
        assert!(confirmed.text().contains("Total: 45.00 EUR"));
        // Inventory commits the held units when it hears the order confirmed.
        wait_for("the units off the shelf", || async { app.levels(&lamp).await == (8, 0) }).await;
        assert!(browser.get("/cart").await.text().contains("The cart is empty"));
        let mine = browser.get("/orders").await;
        assert!(mine.text().contains("Confirmed") && mine.text().contains("Product DESK-1"));
        app.stop().await;
    }
}

// The rest on the embedded runtime: the pages are the same code in both.
backend_tests! {
    async fn a_declined_card_ends_in_a_cancellation_the_customer_can_read(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let (mut browser, lamp) = customer_with_a_cart(&app, "LAMP-2", 3, "1").await;
        let order = check_out(&mut browser, "tok_chargeDeclined").await;
        let cancelled = browser.page_saying(&order, "data-status=\"cancelled\"").await;
        assert!(cancelled.text().contains("The payment was declined."), "{}", cancelled.text());
        // Nothing stays held back for it (inventory releases the hold on order.cancelled).
        wait_for("the hold released", || async { app.levels(&lamp).await == (3, 0) }).await;
        app.stop().await;
    }

    async fn a_customer_cancels_a_confirmed_order_from_the_list_and_it_is_refunded(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let (mut browser, lamp) = customer_with_a_cart(&app, "LAMP-3", 5, "2").await;
        let order = check_out(&mut browser, "tok_visa").await;
        browser.page_saying(&order, "data-status=\"confirmed\"").await;
        let list = browser.get("/orders").await;
        let csrf = list.csrf();
        let cancelled = browser.post(&format!("{order}/cancel"), &[("csrf", &csrf)]).await;
        assert_eq!(cancelled.location(), Some(order.as_str()));
        let page = browser.page_saying(&order, "Refunded").await;
        assert!(page.text().contains("You cancelled it."), "{}", page.text());
        wait_for("the stock back", || async { app.levels(&lamp).await == (5, 0) }).await;
        app.stop().await;
    }

    async fn checkout_problems_are_shown_beside_their_fields_and_nothing_is_ordered(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let (mut browser, lamp) = customer_with_a_cart(&app, "LAMP-4", 5, "1").await;
        let form = browser.get("/checkout").await;
        let (csrf, key) = (form.csrf(), form.hidden("key").unwrap());
        let refused = browser
            .post("/checkout", &[("csrf", &csrf), ("key", &key), ("card", "tok_visa"), ("name", "Di"),
                ("line1", "1 Road"), ("city", ""), ("postal_code", "12345"), ("country", "Atlantis")])
            .await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(refused.body.contains("id=\"city-problem\"") && refused.body.contains("id=\"country-problem\""), "{}", refused.body);
        assert!(refused.body.contains("value=\"Atlantis\""), "what was typed is kept");
        let (token, _) = app.signed_up("someone-else@example.com").await;
        assert_eq!(app.levels(&lamp).await, (5, 0));
        let orders: Value = app.get("/api/v1/orders", Some(&token)).await.json().await.unwrap();
        assert_eq!(orders["items"], serde_json::json!([]));
        // The cart is kept for the next try.
        assert!(browser.get("/cart").await.text().contains("Product LAMP-4"));
        app.stop().await;
    }

    async fn forms_not_sent_from_our_pages_change_nothing(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let admin = app.admin_token().await;
        let lamp = app.stocked_product(&admin, "LAMP-5", 5).await;
        let mut browser = Browser::new(&app);
        let csrf = browser.page_saying(&format!("/products/{lamp}"), "5 available").await.csrf();
        // A token from another session, or none that matches: refused.
        let forged = browser.post("/cart", &[("csrf", "not-the-token"), ("product_id", &lamp), ("quantity", "1")]).await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN);
        // The right token, but the browser says another site sent it: refused too.
        let request = browser
            .request(Method::POST, "/cart")
            .header("sec-fetch-site", "cross-site")
            .form(&[("csrf", csrf.as_str()), ("product_id", &lamp), ("quantity", "1")]);
        assert_eq!(browser.send(request).await.status, StatusCode::FORBIDDEN);
        assert!(browser.get("/cart").await.text().contains("The cart is empty"));
        app.stop().await;
    }

    async fn pages_forbid_inline_script_and_the_session_is_an_encrypted_http_only_cookie(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let mut browser = Browser::new(&app);
        let home = browser.get("/").await;
        let policy = home.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"), "{policy}");
        assert_eq!(home.headers[header::X_FRAME_OPTIONS], "DENY");
        let set = home.headers[header::SET_COOKIE].to_str().unwrap().to_ascii_lowercase();
        assert!(set.contains("httponly") && set.contains("samesite=lax") && set.contains("path=/"), "{set}");
        browser.sign_up("Eve Example", "eve@example.com", "/").await;
        let signed_in = browser.get("/").await;
        assert!(signed_in.text().contains("Eve Example"));
        // Neither the page nor the cookie shows the API's tokens or the account.
        let cookie = browser.cookie.clone().unwrap();
        // Every access token this platform issues starts with the same header (algorithm,
        // key id). Not three base64 characters: `eyJ` turned up by chance in the cookie's
        // random ciphertext once.
        let admin = app.admin_token().await;
        let token_header = admin.split('.').next().unwrap();
        assert!(token_header.len() > 20, "{token_header}");
        for shown in [&signed_in.body, &cookie] {
            assert!(!shown.contains(token_header) && !shown.contains("eve@example.com"), "{shown}");
        }
        // A cookie changed by the browser is not a session: a fresh, signed-out one.
        browser.cookie = Some(format!("{cookie}x"));
        assert!(!browser.get("/").await.text().contains("Eve Example"));
        app.stop().await;
    }

    async fn signing_out_ends_the_session_and_a_copy_of_its_cookie_with_it(storage: TestStorage) {
        // Access tokens renewed on every page: a copied cookie is only as good as its session.
        let app = spawn_app_with(&storage, &["--access-token-ttl", "1s"]).await;
        let mut browser = Browser::new(&app);
        browser.sign_up("Fay", "fay@example.com", "/").await;
        assert_eq!(browser.get("/orders").await.status, 200, "renewed, still signed in");
        let copy = browser.cookie.clone();
        let csrf = browser.get("/orders").await.csrf();
        let out = browser.post("/logout", &[("csrf", &csrf)]).await;
        assert_eq!(out.location(), Some("/"));
        assert_eq!(browser.get("/orders").await.status, StatusCode::SEE_OTHER);
        browser.cookie = copy;
        let replayed = browser.get("/orders").await;
        assert_eq!(replayed.location(), Some("/login?next=%2Forders"));
        app.stop().await;
    }

    async fn unknown_products_and_orders_are_pages_that_say_so(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let mut browser = Browser::new(&app);
        for path in ["/products/not-an-id", "/products/0190a0b2-0000-7000-8000-000000000000"] {
            let page = browser.get(path).await;
            assert_eq!(page.status, 404, "{path}");
            assert!(page.text().contains("Not found"));
        }
        browser.sign_up("Gus", "gus@example.com", "/").await;
        assert_eq!(browser.get("/orders/0190a0b2-0000-7000-8000-000000000000").await.status, 404);
        assert!(browser.get("/assets/app.css").await.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/css"));
        app.stop().await;
    }
}
