//! Upstash's `#!lua flags=allow-key-locking` shebang, which stock Redis rejects.
//!
//! Scripts are rewritten without the flag before Redis sees them, and the client keeps using the
//! SHA1 of the script it sent: EVALSHA / EVALSHA_RO / SCRIPT EXISTS are translated through a map
//! from the original SHA1 to the rewritten one, and SCRIPT LOAD answers with the original SHA1.

use std::collections::HashMap;
use std::sync::Mutex;

use sha1::{Digest, Sha1};

const UPSTASH_ONLY_FLAG: &str = "allow-key-locking";

/// Lower-case hex SHA1, the form Redis uses for script hashes.
pub fn sha1_hex(bytes: &[u8]) -> String {
    let digest = Sha1::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The script without the Upstash-only flag, or `None` when there is nothing to strip.
/// Other flags are kept; an emptied `flags=` is dropped, leaving a plain `#!lua` line.
pub fn strip_key_locking(script: &[u8]) -> Option<Vec<u8>> {
    if !script.starts_with(b"#!lua") {
        return None;
    }
    let line_end = script
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(script.len());
    let first_line = std::str::from_utf8(&script[..line_end]).ok()?;
    let (first_line, carriage_return) = match first_line.strip_suffix('\r') {
        Some(line) => (line, "\r"),
        None => (first_line, ""),
    };
    let mut changed = false;
    let mut tokens: Vec<String> = Vec::new();
    for token in first_line.split(' ').filter(|t| !t.is_empty()) {
        match token.strip_prefix("flags=") {
            Some(list) => {
                let kept: Vec<&str> = list
                    .split(',')
                    .filter(|f| {
                        let strip = f.trim() == UPSTASH_ONLY_FLAG;
                        changed |= strip;
                        !strip && !f.is_empty()
                    })
                    .collect();
                if !kept.is_empty() {
                    tokens.push(format!("flags={}", kept.join(",")));
                }
            }
            None => tokens.push(token.to_string()),
        }
    }
    if !changed {
        return None;
    }
    let mut out = tokens.join(" ").into_bytes();
    out.extend_from_slice(carriage_return.as_bytes());
    out.extend_from_slice(&script[line_end..]);
    Some(out)
}

/// Original SHA1 → SHA1 of the rewritten script, for every script this server rewrote.
#[derive(Default)]
pub struct ShaMap {
    rewritten: Mutex<HashMap<String, String>>,
}

impl ShaMap {
    /// Rewrites `script` if needed and remembers the mapping; returns the script to send and,
    /// when rewritten, the original SHA1.
    pub fn prepare_script(&self, script: &[u8]) -> (Vec<u8>, Option<String>) {
        match strip_key_locking(script) {
            Some(stripped) => {
                let original = sha1_hex(script);
                let mapped = sha1_hex(&stripped);
                if let Ok(mut map) = self.rewritten.lock() {
                    map.insert(original.clone(), mapped);
                }
                (stripped, Some(original))
            }
            None => (script.to_vec(), None),
        }
    }

    /// The SHA1 to send to Redis instead of a client-supplied one, if this server rewrote that
    /// script (`None`: send it as it is).
    pub fn translate(&self, sha: &[u8]) -> Option<Vec<u8>> {
        let text = std::str::from_utf8(sha).ok()?;
        let map = self.rewritten.lock().ok()?;
        // Clients send the lower-case form Redis itself uses; only other spellings need a copy.
        let mapped = if text.bytes().any(|b| b.is_ascii_uppercase()) {
            map.get(&text.to_ascii_lowercase())
        } else {
            map.get(text)
        };
        mapped.map(|m| m.as_bytes().to_vec())
    }

    /// SCRIPT FLUSH emptied Redis' cache, so the mapping is stale.
    pub fn clear(&self) {
        if let Ok(mut map) = self.rewritten.lock() {
            map.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_only_the_upstash_flag() {
        assert_eq!(
            strip_key_locking(b"#!lua flags=allow-key-locking\nreturn 1").unwrap(),
            b"#!lua\nreturn 1"
        );
        assert_eq!(
            strip_key_locking(b"#!lua flags=no-writes,allow-key-locking\nreturn 1").unwrap(),
            b"#!lua flags=no-writes\nreturn 1"
        );
        assert_eq!(
            strip_key_locking(b"#!lua name=x flags=allow-key-locking\r\nreturn 1").unwrap(),
            b"#!lua name=x\r\nreturn 1"
        );
        assert!(strip_key_locking(b"#!lua flags=no-writes\nreturn 1").is_none());
        assert!(strip_key_locking(b"return 1 -- flags=allow-key-locking").is_none());
        assert!(strip_key_locking(b"local x = 1\n#!lua flags=allow-key-locking").is_none());
    }

    #[test]
    fn maps_original_sha_to_rewritten_sha() {
        let map = ShaMap::default();
        let script = b"#!lua flags=allow-key-locking\nreturn 1";
        let (sent, original) = map.prepare_script(script);
        let original = original.unwrap();
        assert_eq!(original, sha1_hex(script));
        assert_eq!(
            map.translate(original.to_uppercase().as_bytes()),
            Some(sha1_hex(&sent).into_bytes())
        );
        assert_eq!(
            map.translate(original.as_bytes()),
            Some(sha1_hex(&sent).into_bytes())
        );
        map.clear();
        assert_eq!(map.translate(original.as_bytes()), None);
    }
}
