//! A minimal Markdown renderer for model cards: headings, paragraphs, bullet lists, pipe tables,
//! and inline `code`, **bold** and *emphasis*. Every character of the source is HTML-escaped;
//! links keep their text only. Nothing else (raw HTML, images) is interpreted.

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
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

/// Inline markup of one line of text.
fn inline(s: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut bold = false;
    let mut em = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '`' {
            if let Some(end) = chars[i + 1..].iter().position(|&x| x == '`') {
                let code: String = chars[i + 1..i + 1 + end].iter().collect();
                out.push_str(&format!("<code>{}</code>", escape(&code)));
                i += end + 2;
                continue;
            }
        }
        if c == '*' && chars.get(i + 1) == Some(&'*') {
            out.push_str(if bold { "</strong>" } else { "<strong>" });
            bold = !bold;
            i += 2;
            continue;
        }
        if c == '*' && (em || chars.get(i + 1).is_some_and(|n| !n.is_whitespace())) {
            out.push_str(if em { "</em>" } else { "<em>" });
            em = !em;
            i += 1;
            continue;
        }
        if c == '[' {
            // [text](url) → text
            let rest: String = chars[i..].iter().collect();
            if let Some(close) = rest.find("](") {
                if let Some(end) = rest[close..].find(')') {
                    out.push_str(&inline(&rest[1..close]));
                    i += rest[..close + end + 1].chars().count();
                    continue;
                }
            }
        }
        out.push_str(&escape(&c.to_string()));
        i += 1;
    }
    if em {
        out.push_str("</em>");
    }
    if bold {
        out.push_str("</strong>");
    }
    out
}

fn cells(line: &str) -> Vec<String> {
    let t = line.trim().trim_start_matches('|').trim_end_matches('|');
    t.split('|').map(|c| c.trim().to_string()).collect()
}

fn is_separator(line: &str) -> bool {
    let t = line.trim();
    t.starts_with('|') && t.chars().all(|c| matches!(c, '|' | '-' | ':' | ' '))
}

/// Renders `md` to HTML.
/// The alt text of a line that is one image, `![alt](file)`.
fn image_alt(t: &str) -> Option<&str> {
    let rest = t.strip_prefix("![")?;
    let (alt, tail) = rest.split_once("](")?;
    tail.ends_with(')').then_some(alt)
}

pub fn to_html(md: &str) -> String {
    let lines: Vec<&str> = md.lines().collect();
    let mut out = String::new();
    let mut para: Vec<&str> = Vec::new();
    let flush = |para: &mut Vec<&str>, out: &mut String| {
        if !para.is_empty() {
            out.push_str(&format!("<p>{}</p>\n", inline(&para.join(" "))));
            para.clear();
        }
    };
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let t = line.trim();
        if t.is_empty() {
            flush(&mut para, &mut out);
            i += 1;
        } else if let Some(level) = (1..=6).find(|&n| t.starts_with(&format!("{} ", "#".repeat(n)))) {
            flush(&mut para, &mut out);
            // Card headings sit below the page's own (h2/h3): shift them down.
            let h = (level + 2).min(6);
            out.push_str(&format!("<h{h}>{}</h{h}>\n", inline(t[level + 1..].trim())));
            i += 1;
        } else if t.starts_with('|') && lines.get(i + 1).is_some_and(|l| is_separator(l)) {
            flush(&mut para, &mut out);
            out.push_str("<table><thead><tr>");
            for c in cells(t) {
                out.push_str(&format!("<th>{}</th>", inline(&c)));
            }
            out.push_str("</tr></thead><tbody>");
            i += 2;
            while i < lines.len() && lines[i].trim().starts_with('|') {
                out.push_str("<tr>");
                for c in cells(lines[i]) {
                    out.push_str(&format!("<td>{}</td>", inline(&c)));
                }
                out.push_str("</tr>");
                i += 1;
            }
            out.push_str("</tbody></table>\n");
        } else if let Some(alt) = image_alt(t) {
            // A picture beside the card (its learning curve): named, not fetched.
            flush(&mut para, &mut out);
            out.push_str(&format!("<p><em>Picture: {} (a PNG beside the card in tags/)</em></p>\n", escape(alt)));
            i += 1;
        } else if t.starts_with("- ") || t.starts_with("* ") {
            flush(&mut para, &mut out);
            out.push_str("<ul>");
            while i < lines.len() && (lines[i].trim().starts_with("- ") || lines[i].trim().starts_with("* ")) {
                out.push_str(&format!("<li>{}</li>", inline(&lines[i].trim()[2..])));
                i += 1;
            }
            out.push_str("</ul>\n");
        } else {
            para.push(t);
            i += 1;
        }
    }
    flush(&mut para, &mut out);
    out
}
