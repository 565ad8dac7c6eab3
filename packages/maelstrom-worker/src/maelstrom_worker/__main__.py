from maelstrom_worker.cli import main

main()
