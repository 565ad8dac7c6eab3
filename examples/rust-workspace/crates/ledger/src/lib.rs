//! A ledger: lines of `account amount`, `#` comments, balances per account.

use std::collections::BTreeMap;
use std::fmt;
use units::Cents;

#[derive(Debug, PartialEq, Eq)]
pub struct Error {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for Error {}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    balances: BTreeMap<String, Cents>,
    entries: usize,
}

impl Ledger {
    pub fn parse(text: &str) -> Result<Ledger, Error> {
        let mut ledger = Ledger::default();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let error = |message: String| Error { line: index + 1, message };
            let (account, amount) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| error("expected `account amount`".to_string()))?;
            let amount: Cents = amount.parse().map_err(|e| error(format!("{e}")))?;
            *ledger.balances.entry(account.to_string()).or_default() =
                ledger.balance(account) + amount;
            ledger.entries += 1;
        }
        Ok(ledger)
    }

    pub fn balance(&self, account: &str) -> Cents {
        self.balances.get(account).copied().unwrap_or_default()
    }

    pub fn total(&self) -> Cents {
        self.balances.values().copied().sum()
    }

    pub fn entries(&self) -> usize {
        self.entries
    }

    pub fn accounts(&self) -> impl Iterator<Item = (&str, Cents)> {
        self.balances.iter().map(|(k, v)| (k.as_str(), *v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        let ledger = Ledger::parse("# header\n\ncash 1.00 # lunch money\n").unwrap();
        assert_eq!(ledger.entries(), 1);
        assert_eq!(ledger.balance("cash"), Cents(100));
    }
}
