//! Regenerates `routing/tests/golden/*.conf` from the `*.json` inputs beside them.
//!
//! Tests never write golden files; run `hack/routing-golden.sh` (or
//! `cargo run -p routing --example render_golden`) after an intended change
//! to the renderer, then review the diff.

use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    inputs.sort();
    for input in inputs {
        let cfg: routing::RouterConfig = serde_json::from_str(&std::fs::read_to_string(&input)?)?;
        let rendered = routing::render(&cfg)?;
        let out = input.with_extension("conf");
        std::fs::write(&out, &rendered.main)?;
        println!("wrote {}", out.display());
    }
    Ok(())
}
