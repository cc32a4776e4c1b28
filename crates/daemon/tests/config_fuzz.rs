//! Fuzzing the lifeboatd config parser: arbitrary text, and the shipped example with bytes
//! flipped, cut or inserted, gives a config or a list of problems, never a panic (a SIGHUP
//! reload of a half-written file must not take the service down).
//!
//! `PROPTEST_CASES=100000 cargo test --release --workspace --test config_fuzz` runs
//! longer than the suite's default 256 cases.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use lifeboat_daemon::config::Config;
use proptest::prelude::*;

const EXAMPLE: &str = include_str!("../../../examples/lifeboatd.toml");

fn env() -> BTreeMap<String, String> {
    [("LIFEBOAT_TOKEN".to_string(), "t".to_string())].into()
}

proptest! {
    #[test]
    fn arbitrary_text_is_a_config_or_problems(text in "\\PC{0,400}") {
        let _ = Config::parse(&text, Path::new("fuzz.toml"), &env(), &lifeboat::backends());
    }

    #[test]
    fn a_damaged_example_is_a_config_or_problems(
        at in any::<usize>(),
        cut in any::<bool>(),
        insert in "[\\[\\]=\"'#a-z0-9 \\n.*/@-]{0,12}",
    ) {
        let mut text = EXAMPLE.to_string();
        let mut i = at % (text.len() + 1);
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        if cut {
            text.truncate(i);
        } else {
            text.insert_str(i, &insert);
        }
        let _ = Config::parse(&text, Path::new("fuzz.toml"), &env(), &lifeboat::backends());
    }
}

#[test]
fn the_example_parses() {
    let parsed =
        Config::parse(EXAMPLE, Path::new("examples/lifeboatd.toml"), &env(), &lifeboat::backends());
    assert!(parsed.is_ok(), "{:?}", parsed.err());
}
