from qctl.cli import main

main()
