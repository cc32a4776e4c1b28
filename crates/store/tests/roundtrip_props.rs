//! Property: any byte stream stored and read back is identical.
#![allow(clippy::unwrap_used)]

use lifeboat_core::{Kind, MemoryBackup, NoProgress};
use lifeboat_store::{BackupOptions, Repository};
use proptest::prelude::*;
use tokio::io::AsyncReadExt;

fn stream() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        proptest::collection::vec(any::<u8>(), 0..64),
        proptest::collection::vec(any::<u8>(), 0..3_000_000),
        (any::<u8>(), 0usize..4_000_000).prop_map(|(b, n)| vec![b; n]),
        (proptest::collection::vec(any::<u8>(), 1..300), 1usize..20_000)
            .prop_map(|(unit, times)| unit.repeat(times)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn stored_streams_read_back_identical(data in stream()) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let back = rt.block_on(async {
            let repo = Repository::init("memory://").await.unwrap();
            let src = MemoryBackup { name: "p".into(), kind: Kind::DIR, data: data.clone() };
            let snap = repo.backup(&src, &BackupOptions::default(), &NoProgress).await.unwrap();
            let again = repo.backup(&src, &BackupOptions::default(), &NoProgress).await.unwrap();
            assert_eq!(again.manifest().stored, 0);
            let mut out = Vec::new();
            lifeboat_core::Snapshot::open(&snap).await.unwrap().read_to_end(&mut out).await.unwrap();
            out
        });
        prop_assert_eq!(back, data);
    }
}
