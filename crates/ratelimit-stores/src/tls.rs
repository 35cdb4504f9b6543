//! TLS uses rustls with the `ring` provider (pure Rust + asm, easy to cross-compile);
//! it has to be installed as the process default once before any client is built.

use std::sync::Once;

pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means another library installed a provider first; that one is used then.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
