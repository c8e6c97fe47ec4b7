//! Turning a pasted FAQ (CSV, Markdown or plain text) into knowledge entries the admin
//! reviews before anything is saved.
//!
//! - **CSV**: `title,body` or `title,body,kind` per row (RFC 4180 quoting; a first row
//!   `title,body…` is a header and skipped).
//! - **Markdown**: each heading (`#`…`######`) or bold line (`**…**`) starts an entry; the
//!   lines under it are its body.
//! - **Plain text**: paragraphs (separated by blank lines); a paragraph's first line is the
//!   title when it is short or ends in "?", otherwise its first sentence.
//!
//! Bodies longer than an entry may be are split at paragraph or sentence ends into parts
//! titled "… (2)", "… (3)". At most [`MAX_ENTRIES`] entries come out of one import.

use super::knowledge::KnowledgeKind;

pub(crate) const MAX_TITLE: usize = 200;
pub(crate) const MAX_BODY: usize = 8000;
/// A chunk aims at this size (a long document becomes several entries).
const CHUNK: usize = 1200;
pub(crate) const MAX_ENTRIES: usize = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Csv,
    Markdown,
    Text,
}

impl Format {
    pub(crate) fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "csv" => Format::Csv,
            "markdown" => Format::Markdown,
            "text" => Format::Text,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Draft {
    pub(crate) title: String,
    pub(crate) body: String,
    pub(crate) kind: KnowledgeKind,
}

/// The entries in `input`, at most [`MAX_ENTRIES`].
pub(crate) fn parse(input: &str, format: Format) -> Vec<Draft> {
    let input = input.replace("\r\n", "\n");
    let raw: Vec<(String, String, KnowledgeKind)> = match format {
        Format::Csv => csv(&input),
        Format::Markdown => markdown(&input),
        Format::Text => text(&input),
    };
    let mut out = Vec::new();
    for (title, body, kind) in raw {
        let title = clip(title.trim(), MAX_TITLE);
        let body = body.trim().to_owned();
        if title.is_empty() || body.is_empty() {
            continue;
        }
        let parts = chunk(&body);
        let n = parts.len();
        for (i, part) in parts.into_iter().enumerate() {
            let title = if n > 1 {
                clip(&format!("{title} ({})", i + 1), MAX_TITLE)
            } else {
                title.clone()
            };
            out.push(Draft {
                title,
                body: part,
                kind,
            });
        }
    }
    out.truncate(MAX_ENTRIES);
    out
}

fn clip(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Splits a long body at paragraph, then sentence ends, into parts of about [`CHUNK`]
/// characters (never more than [`MAX_BODY`]).
fn chunk(body: &str) -> Vec<String> {
    if body.chars().count() <= CHUNK {
        return vec![body.to_owned()];
    }
    let mut pieces: Vec<String> = Vec::new();
    for para in body.split("\n\n") {
        if para.chars().count() <= CHUNK {
            pieces.push(para.trim().to_owned());
        } else {
            let mut cur = String::new();
            for sentence in para.split_inclusive(['.', '?', '!']) {
                if !cur.is_empty() && cur.chars().count() + sentence.chars().count() > CHUNK {
                    pieces.push(cur.trim().to_owned());
                    cur.clear();
                }
                cur.push_str(sentence);
            }
            if !cur.trim().is_empty() {
                pieces.push(cur.trim().to_owned());
            }
        }
    }
    let mut out: Vec<String> = Vec::new();
    for p in pieces.into_iter().filter(|p| !p.is_empty()) {
        match out.last_mut() {
            Some(last) if last.chars().count() + p.chars().count() + 2 <= CHUNK => {
                last.push_str("\n\n");
                last.push_str(&p);
            }
            _ => out.push(p),
        }
    }
    out.into_iter().map(|p| clip(&p, MAX_BODY)).collect()
}

fn csv(input: &str) -> Vec<(String, String, KnowledgeKind)> {
    let rows = csv_rows(input);
    let mut out = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        if i == 0
            && row.first().is_some_and(|c| {
                matches!(
                    c.trim().to_lowercase().as_str(),
                    "title" | "titulo" | "título" | "pergunta" | "question"
                )
            })
        {
            continue;
        }
        if row.len() < 2 {
            continue;
        }
        let kind = row
            .get(2)
            .and_then(|k| KnowledgeKind::parse(k.trim()))
            .unwrap_or(KnowledgeKind::Faq);
        out.push((row[0].clone(), row[1].clone(), kind));
    }
    out
}

/// RFC 4180 rows: fields separated by commas (or semicolons, as spreadsheets in Brazil
/// write them), quoted fields may hold separators, new lines and doubled quotes.
fn csv_rows(input: &str) -> Vec<Vec<String>> {
    let sep = {
        let first = input.lines().next().unwrap_or("");
        if first.matches(';').count() > first.matches(',').count() {
            ';'
        } else {
            ','
        }
    };
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = input.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    field.push('"');
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                field.push(c);
            }
        } else if c == '"' && field.trim().is_empty() {
            field.clear();
            quoted = true;
        } else if c == sep {
            row.push(std::mem::take(&mut field));
        } else if c == '\n' {
            row.push(std::mem::take(&mut field));
            if row.iter().any(|f| !f.trim().is_empty()) {
                rows.push(std::mem::take(&mut row));
            }
            row.clear();
        } else {
            field.push(c);
        }
    }
    row.push(field);
    if row.iter().any(|f| !f.trim().is_empty()) {
        rows.push(row);
    }
    rows
}

fn markdown(input: &str) -> Vec<(String, String, KnowledgeKind)> {
    let mut out = Vec::new();
    let mut title: Option<String> = None;
    let mut body = String::new();
    for line in input.lines() {
        let t = line.trim();
        let heading = t
            .strip_prefix('#')
            .map(|h| h.trim_start_matches('#').trim())
            .or_else(|| {
                t.strip_prefix("**")
                    .and_then(|h| h.strip_suffix("**"))
                    .map(str::trim)
            });
        if let Some(h) = heading.filter(|h| !h.is_empty()) {
            if let Some(prev) = title.take() {
                out.push((prev, std::mem::take(&mut body), KnowledgeKind::Faq));
            }
            body.clear();
            title = Some(h.to_owned());
        } else if title.is_some() {
            body.push_str(line);
            body.push('\n');
        }
    }
    if let Some(prev) = title {
        out.push((prev, body, KnowledgeKind::Faq));
    }
    out
}

fn text(input: &str) -> Vec<(String, String, KnowledgeKind)> {
    let mut out = Vec::new();
    for para in input.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        let (first, rest) = para.split_once('\n').unwrap_or((para, ""));
        let first = first.trim();
        if !rest.trim().is_empty() && (first.ends_with('?') || first.chars().count() <= 80) {
            out.push((first.to_owned(), rest.to_owned(), KnowledgeKind::Faq));
            continue;
        }
        // One block: its first sentence names it.
        let end = para
            .char_indices()
            .find(|(_, c)| matches!(c, '.' | '?' | '!'))
            .map_or(para.len(), |(i, c)| i + c.len_utf8());
        let title: String = para[..end].chars().take(80).collect();
        out.push((title, para.to_owned(), KnowledgeKind::Faq));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_header_quotes_kinds_and_semicolons() {
        let d = parse(
            "title,body,kind\n\"Horário\",\"Seg a sex, 8h às 18h\",hours\nPix,\"Aceitamos \"\"Pix\"\"\nsem taxa\"\n,sem título\n",
            Format::Csv,
        );
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].title, "Horário");
        assert_eq!(d[0].body, "Seg a sex, 8h às 18h");
        assert_eq!(d[0].kind, KnowledgeKind::Hours);
        assert_eq!(d[1].body, "Aceitamos \"Pix\"\nsem taxa");
        assert_eq!(d[1].kind, KnowledgeKind::Faq);
        let d = parse("Convênios;Unimed, Amil;faq\n", Format::Csv);
        assert_eq!(d[0].body, "Unimed, Amil");
    }

    #[test]
    fn markdown_headings_and_bold_lines_start_entries() {
        let d = parse(
            "Intro ignored\n# FAQ\n## Vocês abrem sábado?\nSim, das 8h às 12h.\n\n**Estacionamento**\nHá estacionamento ao lado.\n",
            Format::Markdown,
        );
        let titles: Vec<&str> = d.iter().map(|e| e.title.as_str()).collect();
        assert_eq!(titles, vec!["Vocês abrem sábado?", "Estacionamento"]);
        assert_eq!(d[0].body, "Sim, das 8h às 12h.");
    }

    #[test]
    fn plain_text_paragraphs_and_long_documents_are_chunked() {
        let d = parse(
            "Vocês atendem convênio?\nSim: Unimed e Amil.\n\nO estacionamento fica ao lado. Custa R$ 10.",
            Format::Text,
        );
        assert_eq!(d[0].title, "Vocês atendem convênio?");
        assert_eq!(d[0].body, "Sim: Unimed e Amil.");
        assert_eq!(d[1].title, "O estacionamento fica ao lado.");
        let long = "Uma frase comprida sobre o tratamento. ".repeat(100);
        let d = parse(&format!("Tratamentos\n{long}"), Format::Text);
        assert!(d.len() >= 3, "{}", d.len());
        assert_eq!(d[1].title, "Tratamentos (2)");
        assert!(d.iter().all(|e| e.body.chars().count() <= CHUNK));
    }
}
