from cargo_maelstrom.cli import main

main()
