from lime_toolkit.cli.app import main

main()
