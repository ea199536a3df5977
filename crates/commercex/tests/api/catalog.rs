use std::collections::HashSet;

use reqwest::Method;
use serde_json::{Value, json};
use testkit::app_tests;

use crate::helpers::*;

fn names(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect()
}

app_tests! {
    async fn only_admins_create_products(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let body = product("HP-1", "Studio headphones", 9900, "audio");
        problem(app.send(Method::POST, "/api/v1/products", None, Some(&body)).await, 401).await;
        let (customer, _) = app.signed_up("shopper@example.com").await;
        problem(app.send(Method::POST, "/api/v1/products", Some(&customer), Some(&body)).await, 403).await;

        let admin = app.admin_token().await;
        let response = app.send(Method::POST, "/api/v1/products", Some(&admin), Some(&body)).await;
        assert_eq!(response.status(), 201);
        assert!(response.headers().contains_key("etag"));
        let created: Value = response.json().await.unwrap();
        assert_eq!(created["sku"], "HP-1");
        assert_eq!(created["price"], json!({"amount": 9900, "currency": "EUR"}));
        assert_eq!(created["attributes"], json!({"color": "black"}));
        assert_eq!(created["available"], 0);

        problem(app.send(Method::POST, "/api/v1/products", Some(&admin), Some(&body)).await, 409).await;
        let bad = json!({"sku": "bad sku!", "name": "", "price": {"amount": 0, "currency": "XYZ"}, "category": "Audio"});
        let errors = problem(app.send(Method::POST, "/api/v1/products", Some(&admin), Some(&bad)).await, 422).await;
        let fields: HashSet<&str> = errors["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert_eq!(fields, HashSet::from(["/sku", "/name", "/price/currency", "/category"]));
        let free = json!({"sku": "F-1", "name": "Free", "price": {"amount": 0, "currency": "EUR"}, "category": "audio"});
        let errors = problem(app.send(Method::POST, "/api/v1/products", Some(&admin), Some(&free)).await, 422).await;
        assert_eq!(errors["errors"][0]["field"], "/price/amount");
        app.stop().await;
    }

    async fn products_are_read_with_etags(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let admin = app.admin_token().await;
        let created = app.create_product(&admin, &product("CAM-1", "Camera", 45000, "photo")).await;
        let path = format!("/api/v1/products/{}", created["id"].as_str().unwrap());
        let response = app.get(&path, None).await;
        assert_eq!(response.status(), 200);
        let etag = response.headers()["etag"].to_str().unwrap().to_owned();
        let cached = app.client.get(app.url(&path)).header("if-none-match", &etag).send().await.unwrap();
        assert_eq!(cached.status(), 304);
        let changed = app.client.get(app.url(&path)).header("if-none-match", "\"0-0\"").send().await.unwrap();
        assert_eq!(changed.status(), 200);
        problem(app.get(&format!("/api/v1/products/{}", uuid::Uuid::now_v7()), None).await, 404).await;
        problem(app.get("/api/v1/products/not-a-uuid", None).await, 404).await;
        app.stop().await;
    }

    async fn patches_use_optimistic_concurrency(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let admin = app.admin_token().await;
        let created = app.create_product(&admin, &product("LAMP-1", "Desk lamp", 3500, "home")).await;
        let path = format!("/api/v1/products/{}", created["id"].as_str().unwrap());
        let etag = app.get(&path, None).await.headers()["etag"].to_str().unwrap().to_owned();

        let patch = json!({"price": {"amount": 2900, "currency": "EUR"}, "name": "Desk lamp (sale)"});
        let response = app.client.patch(app.url(&path)).bearer_auth(&admin).header("if-match", &etag).json(&patch).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let new_etag = response.headers()["etag"].to_str().unwrap().to_owned();
        assert_ne!(new_etag, etag);
        let updated: Value = response.json().await.unwrap();
        assert_eq!(updated["price"]["amount"], 2900);
        assert_eq!(updated["description"], created["description"], "untouched fields stay");

        let stale = app.client.patch(app.url(&path)).bearer_auth(&admin).header("if-match", &etag)
            .json(&json!({"name": "Lost update"})).send().await.unwrap();
        problem(stale, 412).await;

        assert_eq!(app.get(&path, None).await.json::<Value>().await.unwrap()["name"], "Desk lamp (sale)");
        // Stock moving in between is not someone else's edit: the save goes through.
        let id = created["id"].as_str().unwrap();
        let stock = format!("/api/v1/inventory/{id}");
        wait_for("the stock record", || async { app.get(&stock, None).await.status() == 200 }).await;
        let adjusted = app.send(Method::POST, &format!("{stock}/adjustments"), Some(&admin), Some(&json!({"delta": 4, "reason": "delivery"}))).await;
        assert_eq!(adjusted.status(), 200);
        wait_for("the availability", || async { app.get(&path, None).await.json::<Value>().await.unwrap()["available"] == 4 }).await;
        let after_stock = app.client.patch(app.url(&path)).bearer_auth(&admin).header("if-match", &new_etag)
            .json(&json!({"name": "Desk lamp (sale!)"})).send().await.unwrap();
        assert_eq!(after_stock.status(), 200, "{}", after_stock.text().await.unwrap());

        problem(app.send(Method::PATCH, &path, Some(&admin), Some(&json!({}))).await, 422).await;
        problem(app.send(Method::PATCH, &path, Some(&admin), Some(&json!({"price": {"amount": -1, "currency": "EUR"}}))).await, 422).await;
        let (customer, _) = app.signed_up("patcher@example.com").await;
        problem(app.send(Method::PATCH, &path, Some(&customer), Some(&json!({"name": "Mine"}))).await, 403).await;
        app.stop().await;
    }

    async fn archived_products_disappear_for_customers(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let admin = app.admin_token().await;
        let created = app.create_product(&admin, &product("OLD-1", "Old phone", 10000, "phones")).await;
        let id = created["id"].as_str().unwrap().to_owned();
        let path = format!("/api/v1/products/{id}");
        let (customer, _) = app.signed_up("archive@example.com").await;
        problem(app.send(Method::DELETE, &path, Some(&customer), None).await, 403).await;
        assert_eq!(app.send(Method::DELETE, &path, Some(&admin), None).await.status(), 204);
        problem(app.get(&path, None).await, 404).await;
        problem(app.get(&path, Some(&customer)).await, 404).await;
        let seen_by_admin: Value = app.get(&path, Some(&admin)).await.json().await.unwrap();
        assert_eq!(seen_by_admin["archived"], true);
        assert!(app.list("category=phones").await["items"].as_array().unwrap().is_empty());
        problem(app.send(Method::DELETE, &path, Some(&admin), None).await, 404).await;
        problem(app.send(Method::PATCH, &path, Some(&admin), Some(&json!({"name": "Back"}))).await, 404).await;

        wait_for("the catalog events", || async {
            let types: Vec<String> = app.published(&id).await.iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect();
            types == ["commercex.product.created.v1", "commercex.product.archived.v1"]
        }).await;
        app.stop().await;
    }

    async fn listings_filter_sort_and_search(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        filter_sort_and_search(&app).await;
        app.stop().await;
    }

    async fn paging_returns_every_product_once_while_products_are_added(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        page_while_products_are_added(&app).await;
        app.stop().await;
    }

    async fn search_follows_every_change_to_a_product(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let admin = app.admin_token().await;
        let id = app.stocked_product(&admin, "GLOBE-1", 0).await;
        assert_eq!(app.found("q=globe").await, [id.as_str()], "searched once: an index is built");
        let path = format!("/api/v1/products/{id}");
        let patch = json!({"name": "Terrestrial orb", "description": "The world, turning", "price": {"amount": 900, "currency": "EUR"}});
        assert_eq!(app.send(Method::PATCH, &path, Some(&admin), Some(&patch)).await.status(), 200);
        assert!(app.found("q=globe").await.is_empty(), "the old words are gone");
        assert_eq!(app.found("q=orb&max_price=900").await, [id.as_str()], "the new name and price are found");
        assert!(app.found("q=orb&in_stock=true").await.is_empty());
        let delivery = json!({"delta": 5, "reason": "delivery"});
        let adjusted = app.send(Method::POST, &format!("/api/v1/inventory/{id}/adjustments"), Some(&admin), Some(&delivery)).await;
        assert_eq!(adjusted.status(), 200);
        wait_for("the stock in search", || async { app.found("q=orb&in_stock=true").await == [id.as_str()] }).await;
        assert_eq!(app.list("q=orb").await["items"][0]["available"], 5);
        assert_eq!(app.send(Method::DELETE, &path, Some(&admin), None).await.status(), 204);
        assert!(app.found("q=orb").await.is_empty(), "archived products are not found");
        app.stop().await;
    }
}

testkit::server_database_tests! {
    async fn search_hears_what_other_processes_commit(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        let admin = app.admin_token().await;
        let id = app.stocked_product(&admin, "GLOBE-2", 0).await;
        wait_for("the product in search", || async { app.found("q=globe").await == [id.as_str()] }).await;
        // Written past the catalog and without an event, as another process or a fix by hand
        // would: only the database can tell the index.
        let db = app.database("catalog").await;
        rename(&db, &id, "Terrestrial orb").await;
        wait_for("the new name in search", || async { app.found("q=orb").await == [id.as_str()] }).await;
        assert!(app.found("q=globe").await.is_empty(), "the old name is gone");
        // What changes while the index cannot hear is read again once it hears again (the
        // database answers meanwhile). The rename lands while the listener waits to retry.
        let [listener] = listening(&db, "catalog_product_changed").await[..] else {
            panic!("one catalog listens for product changes");
        };
        let cut: Vec<(bool,)> = sqlx::query_as("SELECT pg_terminate_backend($1)")
            .bind(listener)
            .fetch_all(db.pool())
            .await
            .unwrap();
        assert_eq!(cut, [(true,)]);
        rename(&db, &id, "Celestial sphere").await;
        wait_for("a new listener", || async {
            listening(&db, "catalog_product_changed").await.iter().any(|&pid| pid != listener)
        })
        .await;
        wait_for("the name given while unheard, in search", || async {
            app.found("q=sphere").await == [id.as_str()]
        })
        .await;
        assert!(app.found("q=orb").await.is_empty());
        app.stop().await;
    }
}

/// Renames product `id`, and describes it by its name, straight in the catalog's table.
async fn rename(db: &platform::db::Db, id: &str, name: &str) {
    let renamed = sqlx::query(
        "UPDATE products SET name = $1, search_name = $2, description = $1, \
         search_description = $2, version = version + 1 WHERE id = $3",
    )
    .bind(name)
    .bind(name.to_lowercase())
    .bind(id)
    .execute(db.pool())
    .await
    .unwrap();
    assert_eq!(renamed.rows_affected(), 1);
}

/// Listed and searched through SQL (FTS5 on SQLite, pg_trgm on PostgreSQL), as a catalog
/// whose index is off or outgrown is, where the tests above list and search in memory.
const SEARCH_IN_THE_DATABASE: &[&str] = &["--search-in-memory", "false"];

testkit::backend_tests! {
    async fn searched_in_the_database_filters_sorts_and_ranks_as_in_memory(storage: TestStorage) {
        let app = spawn_app_with(&storage, SEARCH_IN_THE_DATABASE).await;
        filter_sort_and_search(&app).await;
        app.stop().await;
    }

    async fn searched_in_the_database_pages_as_in_memory(storage: TestStorage) {
        let app = spawn_app_with(&storage, SEARCH_IN_THE_DATABASE).await;
        page_while_products_are_added(&app).await;
        app.stop().await;
    }
}

async fn filter_sort_and_search(app: &TestApp) {
    let admin = app.admin_token().await;
    let mut created = Vec::new();
    for (sku, name, amount, category) in [
        ("A1", "Wireless headphones", 19900, "audio"),
        ("A2", "Bookshelf speaker", 24900, "audio"),
        ("A3", "Headphone stand", 2900, "audio"),
        ("P1", "Phone case", 1900, "phones"),
        ("P2", "Charger", 2500, "phones"),
    ] {
        let body = app
            .create_product(&admin, &product(sku, name, amount, category))
            .await;
        created.push(body);
    }
    // Newest first, ties (products created within one millisecond) by id: from the
    // products' own timestamps, as a fast build creates several in one millisecond.
    let newest_first = {
        let key = |p: &Value| {
            let at = chrono::DateTime::parse_from_rfc3339(p["created_at"].as_str().unwrap())
                .unwrap()
                .timestamp_millis();
            (std::cmp::Reverse(at), p["id"].as_str().unwrap().to_owned())
        };
        created.sort_by_key(key);
        created
            .iter()
            .take(2)
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let cheap_first = app.list("sort=price").await;
    assert_eq!(
        names(&cheap_first),
        [
            "Phone case",
            "Charger",
            "Headphone stand",
            "Wireless headphones",
            "Bookshelf speaker"
        ]
    );
    assert_eq!(
        names(&app.list("sort=-price&category=audio").await),
        [
            "Bookshelf speaker",
            "Wireless headphones",
            "Headphone stand"
        ]
    );
    assert_eq!(
        names(&app.list("sort=name&max_price=2900").await),
        ["Charger", "Headphone stand", "Phone case"]
    );
    assert_eq!(
        names(&app.list("min_price=2500&max_price=20000&sort=price").await),
        ["Charger", "Headphone stand", "Wireless headphones"]
    );
    assert_eq!(
        names(&app.list("sort=-created_at&limit=2").await),
        newest_first
    );

    // Relevance: a word in the name outranks a word only in the description.
    let cushions = json!({"sku": "A4", "name": "Ear cushions", "description": "Soft replacement cushions for headphones",
                          "price": {"amount": 1500, "currency": "EUR"}, "category": "audio"});
    app.create_product(&admin, &cushions).await;
    // "Headphone stand" is a near miss of "headphones" in its name; the cushions only
    // mention headphones in their description.
    assert_eq!(
        names(&app.list("q=headphones").await),
        ["Wireless headphones", "Headphone stand", "Ear cushions"]
    );
    assert_eq!(
        names(&app.list("q=soft%20cushions").await),
        ["Ear cushions"]
    );
    // A typo still finds it, the name match first.
    assert_eq!(
        names(&app.list("q=hedphones").await),
        ["Wireless headphones", "Ear cushions"]
    );
    assert!(
        names(&app.list("q=xylophone").await).is_empty(),
        "near misses need most trigrams"
    );
    assert_eq!(names(&app.list("q=PHONE%20case").await), ["Phone case"]);
    assert!(names(&app.list("q=nothing-like-this").await).is_empty());
    let hostile = app.list("q=%27%3B%20DROP%20TABLE%20products%3B%20--").await;
    assert!(hostile["items"].is_array());
    assert_eq!(
        app.list("").await["items"].as_array().unwrap().len(),
        6,
        "the table survived"
    );
    assert!(
        app.list("in_stock=true").await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    for bad in [
        "limit=0",
        "limit=101",
        "sort=cheapest",
        "cursor=garbage",
        "min_price=500&max_price=100",
        "min_price=-1",
        "category=Not%20A%20Slug",
        "limit=ten",
        "colour=red",
    ] {
        problem(app.get(&format!("/api/v1/products?{bad}"), None).await, 422).await;
    }
    let page = app.list("sort=price&limit=2").await;
    let cursor = page["next_cursor"].as_str().unwrap();
    problem(
        app.get(&format!("/api/v1/products?sort=name&cursor={cursor}"), None)
            .await,
        422,
    )
    .await;
    // Made by hand: the sort is right, the key (a name where a price belongs) is not.
    let forged = {
        use base64::Engine as _;
        let json = json!({"s": "price", "k": "zzz", "id": uuid::Uuid::now_v7()}).to_string();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    };
    let errors = problem(
        app.get(
            &format!("/api/v1/products?sort=price&cursor={forged}"),
            None,
        )
        .await,
        422,
    )
    .await;
    assert_eq!(errors["errors"][0]["field"], "cursor", "{errors}");
}

async fn page_while_products_are_added(app: &TestApp) {
    let admin = app.admin_token().await;
    let mut originals = HashSet::new();
    for n in 0..23 {
        // Repeated prices and names make the id tie-breaker matter.
        let body = product(
            &format!("S-{n}"),
            &format!("Speaker {}", n % 4),
            1000 + (n % 5) * 100,
            "audio",
        );
        originals.insert(
            app.create_product(&admin, &body).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    for (round, sort) in [
        "price",
        "-price",
        "name",
        "-created_at",
        "relevance&q=speaker",
    ]
    .into_iter()
    .enumerate()
    {
        let mut added = 0;
        let ids = app
            .walk(&format!("sort={sort}&limit=4"), async || {
                added += 1;
                let body = product(&format!("NEW-{round}-{added}"), "Speaker 2", 1200, "audio");
                app.create_product(&admin, &body).await;
            })
            .await;
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{sort}: a product came twice");
        assert!(
            originals.iter().all(|id| unique.contains(id)),
            "{sort}: a product was skipped"
        );
    }
}
