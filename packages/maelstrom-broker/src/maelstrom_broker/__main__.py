from maelstrom_broker.cli import main

main()
