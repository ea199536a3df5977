//! A browser, as far as the storefront's server sees one: it keeps the session cookie,
//! follows nothing by itself (tests look at each redirect), and posts forms.

use reqwest::{Client, StatusCode, header};

use super::TestApp;

pub struct Browser {
    http: Client,
    base: String,
    /// The session cookie, `name=value`, as the last answer set it.
    pub cookie: Option<String>,
}

/// A page as the browser got it.
pub struct Page {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    /// Where a redirect points.
    pub fn location(&self) -> Option<&str> {
        self.headers
            .get(header::LOCATION)
            .and_then(|value| value.to_str().ok())
    }

    /// The form token the page's forms carry.
    pub fn csrf(&self) -> String {
        self.hidden("csrf").expect("a form with a token")
    }

    /// The value of the first hidden input named `name`, as a browser reads it (entities
    /// decoded).
    pub fn hidden(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&marker)? + marker.len();
        let end = self.body[start..].find('"')? + start;
        let mut value = self.body[start..end].to_owned();
        for (entity, character) in [
            ("&quot;", "\""),
            ("&#34;", "\""),
            ("&#39;", "'"),
            ("&lt;", "<"),
            ("&gt;", ">"),
            ("&amp;", "&"),
        ] {
            value = value.replace(entity, character);
        }
        Some(value)
    }

    /// The page's text with its tags taken out and spaces folded, for assertions on what a
    /// visitor reads.
    pub fn text(&self) -> String {
        let mut text = String::new();
        let mut in_tag = false;
        for c in self.body.chars() {
            match c {
                '<' => in_tag = true,
                '>' => {
                    in_tag = false;
                    text.push(' ');
                }
                c if !in_tag => text.push(c),
                _ => {}
            }
        }
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

impl Browser {
    pub fn new(app: &TestApp) -> Self {
        let http = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client");
        // Distributed, the storefront is a process of its own.
        let addr = match &app.deployment {
            Some(deployment) => deployment.named("web")[0].addr.clone(),
            None => app.addr.to_string(),
        };
        Self {
            http,
            base: format!("http://{addr}"),
            cookie: None,
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    /// Posts a form, as a page of the same site does.
    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("sec-fetch-site", "same-origin")
            .form(form);
        self.send(request).await
    }

    pub async fn send(&mut self, mut request: reqwest::RequestBuilder) -> Page {
        if let Some(cookie) = &self.cookie {
            request = request.header(header::COOKIE, cookie);
        }
        let response = request.send().await.expect("a page");
        if let Some(set) = response.headers().get(header::SET_COOKIE) {
            let set = set.to_str().expect("a cookie");
            self.cookie = set.split(';').next().map(str::to_owned);
        }
        Page {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.expect("a body"),
        }
    }

    /// A request of the browser's own making, with its cookie (for requests a page would not
    /// send).
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    /// Signs in through the login form; lands on `/`.
    pub async fn sign_in(&mut self, email: &str, password: &str) {
        let form = self.get("/login").await;
        let csrf = form.csrf();
        let signed_in = self
            .post(
                "/login",
                &[
                    ("csrf", &csrf),
                    ("email", email),
                    ("password", password),
                    ("next", "/"),
                ],
            )
            .await;
        assert_eq!(
            signed_in.status,
            StatusCode::SEE_OTHER,
            "{}",
            signed_in.text()
        );
    }

    /// The page at `path` once it says `words`, or its HTML holds them (what a saga or a
    /// projection gets to in its own time).
    pub async fn page_saying(&mut self, path: &str, words: &str) -> Page {
        let mut page = self.get(path).await;
        for _ in 0..200 {
            if page.text().contains(words) || page.body.contains(words) {
                return page;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            page = self.get(path).await;
        }
        panic!("{path} never said {words}: {}", page.text());
    }

    /// Creates an account through the sign-up form and lands signed in on `then`.
    pub async fn sign_up(&mut self, name: &str, email: &str, then: &str) {
        let form = self.get(&format!("/signup?next={then}")).await;
        let csrf = form.csrf();
        let signed_up = self
            .post(
                "/signup",
                &[
                    ("csrf", &csrf),
                    ("name", name),
                    ("email", email),
                    ("password", super::PASSWORD),
                    ("next", then),
                ],
            )
            .await;
        assert_eq!(
            signed_up.status,
            StatusCode::SEE_OTHER,
            "{}",
            signed_up.text()
        );
        assert_eq!(signed_up.location(), Some(then));
    }
}
