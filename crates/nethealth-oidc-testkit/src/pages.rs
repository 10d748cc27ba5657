//! The HTML pages: login and consent in one form, the error page, and the logged-out page.
//!
//! The markup is stable on purpose: [`Browser`](crate::Browser) reads it. Field names follow IdentityServer3's
//! views (`scopes`, `RememberConsent`, `button=yes|no`, `idsrv.xsrf`).

use crate::model::scope_display;

/// Escapes text for HTML content and double-quoted attributes.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Undoes [`escape`].
pub(crate) fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

const STYLE: &str = "body{font-family:sans-serif;max-width:40em;margin:2em auto;color:#222}\
    .error-message{color:#a00;border:1px solid #a00;padding:.5em;margin:1em 0}\
    fieldset{margin:1em 0}label{display:block;margin:.3em 0}.desc{color:#666;font-size:.9em;margin-left:1.6em}\
    button{margin-right:1em;padding:.4em 1em}";

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} - Net Health Accounts</title>\
         <style>{STYLE}</style></head>\n<body><header><h1>Net Health Accounts</h1></header>\n<main>\n{body}\n</main></body></html>\n",
        escape(title)
    )
}

/// What the login and consent page shows.
pub(crate) struct ConsentPage<'a> {
    pub(crate) action: &'a str,
    pub(crate) signin: &'a str,
    pub(crate) xsrf: &'a str,
    pub(crate) client_name: &'a str,
    pub(crate) scopes: &'a [String],
    pub(crate) username: &'a str,
    pub(crate) error: Option<&'a str>,
}

impl ConsentPage<'_> {
    pub(crate) fn render(&self) -> String {
        let mut body = String::new();
        body.push_str(&format!(
            "<h2>{} is requesting your permission</h2>\n",
            escape(self.client_name)
        ));
        if let Some(error) = self.error {
            body.push_str(&format!(
                "<div class=\"error-message\" role=\"alert\">{}</div>\n",
                escape(error)
            ));
        }
        body.push_str(&format!(
            "<form method=\"post\" action=\"{}\">\n\
             <input type=\"hidden\" name=\"idsrv.xsrf\" value=\"{}\">\n\
             <input type=\"hidden\" name=\"signin\" value=\"{}\">\n",
            escape(self.action),
            escape(self.xsrf),
            escape(self.signin)
        ));
        body.push_str(&format!(
            "<fieldset><legend>Log in</legend>\n\
             <label>Username <input type=\"text\" name=\"username\" value=\"{}\" autofocus></label>\n\
             <label>Password <input type=\"password\" name=\"password\" value=\"\"></label>\n</fieldset>\n",
            escape(self.username)
        ));
        body.push_str(
            "<fieldset><legend>Permissions</legend>\n<p>Uncheck the permissions you do not wish to grant.</p>\n",
        );
        for scope in self.scopes {
            let (name, description) = scope_display(scope);
            let name = if name.is_empty() {
                scope.as_str()
            } else {
                name
            };
            if scope == "openid" {
                // Required: shown checked and disabled; its value travels in a hidden input.
                body.push_str(&format!(
                    "<label><input type=\"checkbox\" value=\"{0}\" checked disabled> <strong>{1}</strong> (required)</label>\n\
                     <input type=\"hidden\" name=\"scopes\" value=\"{0}\">\n",
                    escape(scope),
                    escape(name)
                ));
            } else {
                body.push_str(&format!(
                    "<label><input type=\"checkbox\" name=\"scopes\" value=\"{}\" checked> <strong>{}</strong></label>\n",
                    escape(scope),
                    escape(name)
                ));
            }
            if !description.is_empty() {
                body.push_str(&format!(
                    "<div class=\"desc\">{}</div>\n",
                    escape(description)
                ));
            }
        }
        body.push_str(
            "<label><input type=\"checkbox\" name=\"RememberConsent\" value=\"true\"> <strong>Remember my decision</strong></label>\n\
             </fieldset>\n\
             <button type=\"submit\" name=\"button\" value=\"yes\">Yes, Allow</button>\n\
             <button type=\"submit\" name=\"button\" value=\"no\">No, Do Not Allow</button>\n\
             </form>",
        );
        layout("Login and permissions", &body)
    }
}

/// IdentityServer3's error page (shown when the site cannot redirect back to the client).
pub(crate) fn error_page(message: &str) -> String {
    layout(
        "Error",
        &format!(
            "<h2>Error</h2>\n<p>There was an error processing your request.</p>\n\
             <div class=\"error-message\" role=\"alert\">{}</div>",
            escape(message)
        ),
    )
}

/// The page after end-session without a redirect.
pub(crate) fn logged_out_page() -> String {
    layout(
        "Logged out",
        "<h2>Logout</h2>\n<p>You are now logged out.</p>",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_round_trips() {
        let text = "a<b>&\"c\"'d'&amp;";
        assert_eq!(
            escape(text),
            "a&lt;b&gt;&amp;&quot;c&quot;&#39;d&#39;&amp;amp;"
        );
        assert_eq!(unescape(&escape(text)), text);
    }

    #[test]
    fn page_lists_scopes_and_buttons() {
        let scopes = vec!["openid".to_owned(), "patients.read".to_owned()];
        let page = ConsentPage {
            action: "/connect/consent",
            signin: "s\"1",
            xsrf: "x",
            client_name: "<App>",
            scopes: &scopes,
            username: "",
            error: Some("Invalid username or password"),
        }
        .render();
        assert!(page.contains("&lt;App&gt; is requesting your permission"));
        assert!(page.contains("value=\"s&quot;1\""));
        assert!(page.contains("Yes, Allow"));
        assert!(page.contains("No, Do Not Allow"));
        assert!(page.contains("Remember my decision"));
        assert!(page.contains("name=\"scopes\" value=\"patients.read\" checked"));
        assert!(page.contains("<input type=\"hidden\" name=\"scopes\" value=\"openid\">"));
    }
}
