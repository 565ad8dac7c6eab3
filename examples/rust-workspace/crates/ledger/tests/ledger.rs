use ledger::Ledger;
use units::Cents;

#[test]
fn balances_accumulate_per_account() {
    let ledger = Ledger::parse("cash 10\ncash -2.50\nbank 100\n").unwrap();
    assert_eq!(ledger.balance("cash"), Cents(750));
    assert_eq!(ledger.balance("bank"), Cents(10_000));
    assert_eq!(ledger.balance("nowhere"), Cents(0));
    assert_eq!(ledger.total(), Cents(10_750));
}

#[test]
fn errors_name_the_line() {
    let err = Ledger::parse("cash 1\ncash one\n").unwrap_err();
    assert_eq!(err.to_string(), "line 2: unexpected character 'o' in amount");
    let err = Ledger::parse("lonely\n").unwrap_err();
    assert_eq!(err.line, 1);
}

// The file reaches the container through a glob layer in cargo-maelstrom.toml, which puts
// crates/ledger/tests/data/ at /tests/data/; the working directory is "/" there and the package
// root under plain `cargo test`, so the same relative path works in both.
#[test]
fn reads_the_sample_ledger() {
    let text = std::fs::read_to_string("tests/data/sample.ledger").expect("sample ledger");
    let ledger = Ledger::parse(&text).unwrap();
    assert_eq!(ledger.entries(), 5);
    assert_eq!(ledger.balance("checking"), Cents(123_456));
    assert_eq!(ledger.total(), Cents(0));
}
