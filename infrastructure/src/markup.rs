//! The HTML CRMs keep rich text in (notes, call bodies): our plain text
//! escaped into it, and their HTML read back as plain text.

/// Text with the characters HTML gives a meaning escaped: safe as element
/// content and inside a quoted attribute.
pub fn escape(text: &str) -> String {
    let mut html = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => html.push_str("&amp;"),
            '<' => html.push_str("&lt;"),
            '>' => html.push_str("&gt;"),
            '"' => html.push_str("&quot;"),
            '\'' => html.push_str("&#39;"),
            c => html.push(c),
        }
    }
    html
}

/// Plain text as HTML: escaped, its line breaks kept as `<br>`.
pub fn text_as_html(text: &str) -> String {
    escape(&text.replace("\r\n", "\n").replace('\r', "\n")).replace('\n', "<br>")
}

/// Rich text as plain text: tags dropped (a `<br>` or `<p>` becomes a
/// space), the entities CRMs write decoded, at most `limit` characters.
pub fn plain_text(html: &str, limit: usize) -> String {
    let mut text = String::with_capacity(html.len().min(limit * 2));
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let decoded = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&");
    decoded
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(limit)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_with_its_line_breaks_and_read_back() {
        let text = "Asked about <b>pricing</b> & \"SSO\"'s cost.\r\nCall back in May.";
        let html = text_as_html(text);
        assert_eq!(
            html,
            "Asked about &lt;b&gt;pricing&lt;/b&gt; &amp; &quot;SSO&quot;&#39;s cost.<br>Call back in May."
        );
        assert_eq!(
            plain_text(&html, 500),
            "Asked about <b>pricing</b> & \"SSO\"'s cost. Call back in May."
        );
        assert_eq!(plain_text(&"x".repeat(900), 500).len(), 500);
    }
}
