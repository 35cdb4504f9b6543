//! Request bodies → Redis commands, converting JSON arguments the way Upstash does.

use std::borrow::Cow;

use serde_json::value::RawValue;

/// One Redis command: the name and its arguments, as raw bytes. An argument written verbatim in
/// the request body (a number, a string without escapes) is borrowed from it, not copied: a
/// `/pipeline` of 32 rate-limit scripts has about 200 arguments.
pub type Command<'a> = Vec<Cow<'a, [u8]>>;

/// A body that cannot become Redis commands; the text is sent back as `{"error": …}` with 400.
#[derive(Debug, PartialEq)]
pub struct BadBody(pub String);

/// `["SET", "k", "v"]` → one command.
pub fn parse_command(body: &[u8]) -> Result<Command<'_>, BadBody> {
    let raw: Vec<&RawValue> = serde_json::from_slice(body).map_err(|e| {
        BadBody(format!(
            "ERR the body must be a JSON array of command arguments, e.g. [\"SET\",\"key\",\"value\"] ({e})"
        ))
    })?;
    command_from_raw(&raw)
}

/// `[["SET","k","v"],["GET","k"]]` → several commands (for `/pipeline` and `/multi-exec`).
pub fn parse_commands(body: &[u8]) -> Result<Vec<Command<'_>>, BadBody> {
    let raw: Vec<Vec<&RawValue>> = serde_json::from_slice(body).map_err(|e| {
        BadBody(format!(
            "ERR the body must be a JSON array of commands, e.g. [[\"SET\",\"key\",\"value\"],[\"GET\",\"key\"]] ({e})"
        ))
    })?;
    if raw.is_empty() {
        return Err(BadBody("ERR the command list is empty".into()));
    }
    raw.iter().map(|c| command_from_raw(c)).collect()
}

fn command_from_raw<'a>(raw: &[&'a RawValue]) -> Result<Command<'a>, BadBody> {
    if raw.is_empty() {
        return Err(BadBody("ERR empty command".into()));
    }
    raw.iter().map(|v| argument(v.get())).collect()
}

/// Strings become their UTF-8 bytes, numbers their JSON text (what `String(n)` gives in JS, as
/// the client wrote it), booleans "true"/"false". Null, objects and arrays are refused.
fn argument(text: &str) -> Result<Cow<'_, [u8]>, BadBody> {
    match text.as_bytes().first() {
        // Without a backslash the string's bytes are the text between the quotes (serde_json
        // validated it while reading the body: an unescaped quote or control character would
        // have failed there), so the second parse is only needed for escapes.
        Some(b'"') if text.len() >= 2 && !text.contains('\\') => {
            Ok(Cow::Borrowed(&text.as_bytes()[1..text.len() - 1]))
        }
        Some(b'"') => serde_json::from_str::<String>(text)
            .map(|decoded| Cow::Owned(decoded.into_bytes()))
            .map_err(|e| BadBody(format!("ERR invalid string argument: {e}"))),
        Some(b't') | Some(b'f') => Ok(Cow::Borrowed(text.as_bytes())),
        Some(b'-') | Some(b'0'..=b'9') => Ok(Cow::Borrowed(text.as_bytes())),
        Some(b'n') => Err(BadBody(
            "ERR null is not a valid command argument".into(),
        )),
        Some(b'{') | Some(b'[') => Err(BadBody(
            "ERR objects and nested arrays are not valid command arguments; send strings or numbers"
                .into(),
        )),
        _ => Err(BadBody("ERR invalid command argument".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_json_scalars_like_upstash() {
        let cmd = parse_command(br#"["set","k",1.5,"ex",10,true,false,"\u00e9"]"#).unwrap();
        let text: Vec<String> = cmd
            .iter()
            .map(|a| String::from_utf8(a.to_vec()).unwrap())
            .collect();
        assert_eq!(text, ["set", "k", "1.5", "ex", "10", "true", "false", "é"]);
    }

    #[test]
    fn strings_with_and_without_escapes_decode_alike() {
        let cmd = parse_command(br#"["set","plain \u00e9 \"q\" \\ \n","caf\u00e9",""]"#).unwrap();
        assert_eq!(&*cmd[1], "plain \u{e9} \"q\" \\ \n".as_bytes());
        assert_eq!(&*cmd[2], "caf\u{e9}".as_bytes());
        assert_eq!(&*cmd[3], b"");
        let spaced = parse_command(b"[ \"set\" ,\n\t\"k\" , \"v\" ]").unwrap();
        assert_eq!(spaced, [&b"set"[..], b"k", b"v"]);
        // Raw control characters inside a string are invalid JSON, escaped or not.
        assert!(parse_command(b"[\"set\",\"a\x01b\"]").is_err());
        assert_eq!(
            &*parse_command("[\"set\",\"caf\u{e9}\"]".as_bytes()).unwrap()[1],
            "caf\u{e9}".as_bytes()
        );
    }

    #[test]
    fn keeps_large_integers_exactly_as_written() {
        let cmd = parse_command(br#"["set","k",12345678901234567890]"#).unwrap();
        assert_eq!(&*cmd[2], b"12345678901234567890");
    }

    #[test]
    fn refuses_null_objects_arrays_and_empty_commands() {
        assert!(parse_command(br#"["set","k",null]"#).is_err());
        assert!(parse_command(br#"["set","k",{"a":1}]"#).is_err());
        assert!(parse_command(br#"["set","k",["x"]]"#).is_err());
        assert!(parse_command(br#"[]"#).is_err());
        assert!(parse_command(br#"{"cmd":"get"}"#).is_err());
        assert!(parse_command(b"not json").is_err());
        assert!(parse_commands(br#"[]"#).is_err());
        assert!(parse_commands(br#"["get","k"]"#).is_err());
        assert!(parse_commands(br#"[["get","k"],[]]"#).is_err());
    }
}
