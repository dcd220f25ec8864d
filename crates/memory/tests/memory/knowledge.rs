//! The knowledge base on the fixture folder: per-organisation files, chunks that remember file and heading,
//! search with limits.

use mentorfy_memory::KnowledgeBase;

fn fixtures() -> std::path::PathBuf {
    std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/knowledge"))
}

#[test]
fn loads_each_organisations_markdown_and_finds_chunks_with_file_and_heading() {
    let kb = KnowledgeBase::load(fixtures(), super::embedder()).unwrap();
    let mut orgs: Vec<&str> = kb.organisations().collect();
    orgs.sort_unstable();
    assert_eq!(orgs, ["acme", "other-org"]);
    assert_eq!(kb.chunk_count("acme"), 6, "{kb:?}");
    let hits = kb.search("acme", "is the deposit refundable?", 3, None);
    assert_eq!(hits[0].file, "pricing.md");
    assert_eq!(hits[0].heading, "Pricing > Deposits and refunds");
    assert!(hits[0].text.starts_with("A deposit of 50 dollars"));
    let cover = kb.search("acme", "cover-ups", 1, None);
    assert_eq!((cover[0].file.as_str(), cover[0].heading.as_str()), ("faq.md", "Do you do cover-ups?"));
    assert!(kb.search("other-org", "deposit refundable", 5, None).is_empty(), "organisations are isolated");
    assert!(kb.search("nobody", "deposit", 5, None).is_empty());
    let budget = kb.search("acme", "studio tattoo deposit aftercare", 10, Some(30));
    assert!(budget.iter().map(|h| h.tokens).sum::<usize>() <= 30);
}

#[test]
fn a_missing_folder_is_an_empty_knowledge_base() {
    let kb = KnowledgeBase::load(fixtures().join("absent"), None).unwrap();
    assert_eq!(kb.organisations().count(), 0);
    assert!(kb.search("acme", "anything", 5, None).is_empty());
}
