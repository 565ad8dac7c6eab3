//! `ledger-cli [FILE]`: print each account's balance, then the total. Reads stdin without FILE.

use std::io::Read;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut text = String::new();
    let read = match std::env::args_os().nth(1) {
        Some(path) => std::fs::read_to_string(&path).map(|t| text = t),
        None => std::io::stdin().read_to_string(&mut text).map(|_| ()),
    };
    if let Err(err) = read {
        eprintln!("ledger-cli: {err}");
        return ExitCode::from(2);
    }
    match ledger::Ledger::parse(&text) {
        Ok(ledger) => {
            for (account, balance) in ledger.accounts() {
                println!("{account:<12} {balance:>10}");
            }
            println!("{:<12} {:>10}", "total", ledger.total());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("ledger-cli: {err}");
            ExitCode::from(1)
        }
    }
}
