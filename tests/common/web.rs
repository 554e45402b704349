//! Web forms over plain HTTP (reqwest): the CSRF tokens the console and portal forms carry.

/// The CSRF field of a page's form.
pub fn csrf_of(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("csrf field")
        .to_owned()
}

/// A login form's CSRF pair from `GET url`: the cookie (`name=value`) and the form field.
pub async fn login_form(http: &reqwest::Client, url: &str) -> (String, String) {
    let r = http.get(url).send().await.expect("login page");
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("login cookie")
        .to_owned();
    let page = r.text().await.expect("html");
    (cookie, csrf_of(&page))
}
