from maelstrom_go_test.cli import main

main()
