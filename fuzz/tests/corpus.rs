//! Replays every input of `fuzz/corpus/<target>/` (the seeds, and every crash a fuzzing
//! run found, kept as a regression) and the Stripe fixtures through the fuzz targets: a
//! plain `cargo test` checks on every machine what AFL++ checked on one.

use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_input_and_fixture_runs_through_its_target_without_panicking() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixtures = files(&root.join("../fixtures/stripe-events"));
    assert!(!fixtures.is_empty());
    for (name, target) in fuzz::TARGETS {
        let corpus = files(&root.join("corpus").join(name));
        assert!(!corpus.is_empty(), "fuzz/corpus/{name} holds no seed");
        for input in corpus.iter().chain(&fixtures) {
            let data = std::fs::read(input).unwrap();
            let run = std::panic::catch_unwind(|| target(&data));
            assert!(run.is_ok(), "{name} panicked on {}", input.display());
        }
    }
}

#[test]
fn a_body_signed_with_the_secret_is_verified_by_the_signature_target() {
    // The harness's one success path must be reachable, or fuzzing it proves little.
    let secret = ingest::signature::WebhookSecret::new(fuzz::SECRET).unwrap();
    let body = br#"{"id":"evt_1","object":"event"}"#;
    let header = ingest::signature::sign(&secret, fuzz::NOW, body);
    let webhook = ingest::signature::UnverifiedWebhook {
        signature_headers: vec![header.as_bytes()],
        body: bytes::Bytes::from_static(body),
    };
    assert!(webhook.verify(&[secret], fuzz::NOW, 300).is_ok());
}
