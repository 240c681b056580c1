//! Reads an inferno flame graph as XML, as a browser does.

use std::path::Path;

/// The frames of an inferno flame graph: each `<g>`'s `<title>`,
/// `name (1,234 ns, 5.6%)`, as (name, count). The file must be well-formed
/// XML.
pub fn svg_frames(path: &Path) -> Vec<(String, u64)> {
    use quick_xml::events::Event;
    let text = std::fs::read_to_string(path).unwrap();
    let mut reader = quick_xml::Reader::from_str(&text);
    let mut titles = Vec::new();
    let mut in_title = false;
    let mut title = String::new();
    loop {
        match reader.read_event() {
            Err(e) => panic!("{} is not well-formed XML: {e}", path.display()),
            Ok(Event::Eof) => break,
            Ok(Event::Start(e)) if e.name().as_ref() == b"title" => {
                in_title = true;
                title.clear();
            }
            Ok(Event::End(e)) if e.name().as_ref() == b"title" => {
                in_title = false;
                titles.push(title.clone());
            }
            Ok(Event::Text(t)) if in_title => title.push_str(&t.decode().unwrap()),
            Ok(Event::GeneralRef(r)) if in_title => {
                let name = r.decode().unwrap();
                match r.resolve_char_ref().unwrap() {
                    Some(c) => title.push(c),
                    None => title.push_str(
                        quick_xml::escape::resolve_xml_entity(&name)
                            .unwrap_or_else(|| panic!("unknown entity &{name};")),
                    ),
                }
            }
            Ok(_) => {}
        }
    }
    titles
        .iter()
        .filter_map(|t| {
            // "name (1,234 ns, 5.6%)": the count is in the last parentheses.
            let open = t.rfind(" (")?;
            let inner = t[open + 2..].strip_suffix(')')?;
            let count = inner.split(' ').next()?.replace(',', "");
            Some((t[..open].to_string(), count.parse().ok()?))
        })
        .collect()
}
