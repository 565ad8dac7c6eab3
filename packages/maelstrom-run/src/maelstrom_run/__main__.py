from maelstrom_run.cli import main

main()
