//! Runs the real binary. cargo builds it before this test and names it in CARGO_BIN_EXE_*;
//! cargo-maelstrom.toml adds it to the container at that same path.

use std::io::Write;
use std::process::{Command, Stdio};

fn run(input: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ledger-cli"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ledger-cli");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn prints_balances_and_total() {
    let output = run("cash 10\nbank 2.5\ncash -1\n");
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "bank               2.50\ncash               9.00\ntotal             11.50\n"
    );
}

#[test]
fn bad_input_exits_1_with_the_line() {
    let output = run("cash ten\n");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(output.stderr).unwrap(),
        "ledger-cli: line 1: unexpected character 't' in amount\n"
    );
}
