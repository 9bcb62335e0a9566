//! Properties of the input rules, checked on generated input: what a serial
//! and a product code may be, and that a serial search finds exactly the
//! serials that contain the query, whatever characters it holds.

use proptest::prelude::*;
use store::testing::TestDatabase;
use store::prelude::*;
use store::{NewProduct, PageRequest, validate};

proptest! {
    #[test]
    fn serials_of_1_to_128_non_control_characters_are_accepted(serial in "[^\\p{Cc}]{1,128}") {
        prop_assert!(validate::serial(&serial).is_ok());
    }

    #[test]
    fn a_control_character_anywhere_is_refused(head in "[^\\p{Cc}]{0,60}", control in "\\p{Cc}", tail in "[^\\p{Cc}]{0,60}") {
        let serial = format!("{head}{control}{tail}");
        prop_assert!(validate::serial(&serial).is_err());
    }

    #[test]
    fn more_than_128_characters_are_refused(serial in "[^\\p{Cc}]{129,200}") {
        prop_assert!(validate::serial(&serial).is_err());
    }

    #[test]
    fn product_codes_follow_their_grammar(code in "[a-z0-9][a-z0-9._-]{0,63}") {
        prop_assert!(validate::is_product_code(&code));
    }

    #[test]
    fn anything_outside_the_code_grammar_is_refused(head in "[a-z0-9]{0,10}", bad in "[^a-z0-9._-]", tail in "[a-z0-9]{0,10}") {
        let code = format!("{head}{bad}{tail}");
        prop_assert!(!validate::is_product_code(&code));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// LIKE's own wildcards, quotes and unicode in a query are only text.
    #[test]
    fn a_search_finds_exactly_the_serials_containing_the_query(
        serials in prop::collection::btree_set("[a-zA-Z0-9%_\\\\' é🔑-]{1,12}", 1..25),
        query in "[a-zA-Z0-9%_\\\\' é-]{1,3}",
    ) {
        search_finds_exactly(serials, query)?;
    }

    /// Queries of three characters or more go through the trigram index
    /// (migration 0003): cut them out of a serial, in another case, so that
    /// they match.
    #[test]
    fn a_longer_search_cut_from_a_serial_finds_exactly_the_serials_containing_it(
        serials in prop::collection::btree_set("[a-zA-Z0-9%_\\\\' é🔑\"-]{3,16}", 1..25),
        pick in any::<prop::sample::Index>(),
        start in 0usize..8,
        len in 3usize..9,
    ) {
        let serial: Vec<char> = pick.get(&serials.iter().collect::<Vec<_>>()).chars().collect();
        let start = start.min(serial.len() - 3);
        let end = (start + len).min(serial.len());
        let query: String = serial[start..end].iter().collect::<String>().to_ascii_uppercase();
        search_finds_exactly(serials, query)?;
    }
}

fn search_finds_exactly(serials: std::collections::BTreeSet<String>, query: String) -> Result<(), TestCaseError> {
    {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            // Both backends: SQLite's FTS5 and LIKE, PostgreSQL's pg_trgm and ILIKE.
            for db in [Some(TestDatabase::sqlite()), TestDatabase::postgres().await].into_iter().flatten() {
                let store = db.open().await;
                store.create_organization("acme").await.unwrap();
                let org = store.organization_by_name("acme").await.unwrap().id;
                let product = NewProduct { code: "editor".into(), name: "Editor".into(), seats: 0, auto_assign: false };
                store.add_product(org, &product, store::Actor::Operator).await.unwrap();
                for serial in &serials {
                    store.check_in(org, "editor", serial).await.unwrap();
                }
                let found: Vec<String> =
                    store.devices(org, Some(&query), &PageRequest::first(100)).await.unwrap().items.into_iter().map(|d| d.serial).collect();
                let expected: Vec<String> = serials
                    .iter()
                    .filter(|s| s.to_ascii_lowercase().contains(&query.to_ascii_lowercase()))
                    .cloned()
                    .collect();
                prop_assert_eq!(found, expected, "on {}", store.backend_name());
            }
            Ok(())
        })?;
    }
    Ok(())
}
