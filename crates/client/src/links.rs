//! What the chat window does with a URL it is asked to load — a link clicked in a reply, a
//! `target=_blank`, a redirect. Replies come from an agent and may quote anything, so the web view
//! stays on the app's own pages: web and mail links open in the person's browser / mail client,
//! and everything else (`file:`, `javascript:`, `data:`, other apps' schemes) is refused.

use url::Url;

/// The decision for one URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkPolicy {
    /// The app's own page: load it in the web view.
    App,
    /// Open it with the system's handler (browser, mail client), never in the web view.
    Outside(Url),
    /// Load it nowhere; the reason is for the log.
    Refuse(String),
}

/// Schemes handed to the system.
const OUTSIDE_SCHEMES: [&str; 3] = ["https", "http", "mailto"];

/// Decide for `url`. The app's own origins: `tauri://localhost` (Linux, macOS),
/// `http(s)://tauri.localhost` (Windows), and a loopback dev server when `dev_origin` is set.
#[must_use]
pub fn classify(url: &Url, dev_origin: Option<&Url>) -> LinkPolicy {
    let host = url.host_str().unwrap_or_default();
    let is_app = match url.scheme() {
        "tauri" => host == "localhost",
        "http" | "https" => host == "tauri.localhost",
        _ => false,
    };
    if is_app || dev_origin.is_some_and(|d| d.origin() == url.origin()) {
        return LinkPolicy::App;
    }
    if OUTSIDE_SCHEMES.contains(&url.scheme()) {
        if url.scheme() != "mailto" && host.is_empty() {
            return LinkPolicy::Refuse(format!("a {} link without a host", url.scheme()));
        }
        if url.username() != "" || url.password().is_some() {
            // `https://bank.example@evil.example/` reads as the bank and goes to evil
            return LinkPolicy::Refuse("a link with credentials in it".into());
        }
        return LinkPolicy::Outside(url.clone());
    }
    LinkPolicy::Refuse(format!("the {} scheme", url.scheme()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(s: &str) -> LinkPolicy {
        classify(&Url::parse(s).unwrap(), None)
    }

    #[test]
    fn the_apps_pages_load_web_and_mail_go_outside_the_rest_is_refused() {
        assert_eq!(decide("tauri://localhost/index.html"), LinkPolicy::App);
        assert_eq!(decide("http://tauri.localhost/index.html"), LinkPolicy::App);
        for outside in [
            "https://example.com/a?b=c#d",
            "http://example.com/",
            "mailto:someone@example.com",
        ] {
            assert!(
                matches!(decide(outside), LinkPolicy::Outside(u) if u.as_str() == outside),
                "{outside}"
            );
        }
        for refused in [
            "file:///etc/passwd",
            "javascript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "tauri://evil.example/",
            "https://user:pw@example.com/",
            "https://bank.example@evil.example/",
            "clawtray://pair?code=1",
            "smb://host/share",
        ] {
            assert!(
                matches!(decide(refused), LinkPolicy::Refuse(_)),
                "{refused} must be refused"
            );
        }
    }

    #[test]
    fn a_dev_server_counts_as_the_app_only_on_its_own_origin() {
        let dev = Url::parse("http://127.0.0.1:5173/").unwrap();
        let at = |s: &str| classify(&Url::parse(s).unwrap(), Some(&dev));
        assert_eq!(at("http://127.0.0.1:5173/index.html"), LinkPolicy::App);
        assert!(matches!(
            at("http://127.0.0.1:5174/"),
            LinkPolicy::Outside(_)
        ));
    }
}
